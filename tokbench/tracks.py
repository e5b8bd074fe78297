"""Tracks: how a suite is run. ``recon`` (originals → model → reconstructions, in ``tokbench.api``)
is built in; other tracks (``gen``, ``tokbench``, ``prune``, ...) are functions registered here that
take a ``TrackRequest`` and return a ``RunResult`` built with ``tokbench.recording``.

A suite names its track with ``track:``; track-specific protocol settings live under ``settings:``
and are validated by the track itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokbench.adapters.base import Adapter
from tokbench.registry import Registry
from tokbench.runner import RunOptions
from tokbench.suites import SuiteConfig

if TYPE_CHECKING:
    from tokbench.recording import RunResult


@dataclass(frozen=True)
class TrackRequest:
    """Everything ``tokbench.evaluate`` was asked, with the suite already loaded."""

    model: str | Adapter
    suite: SuiteConfig
    data: str | None
    options: RunOptions
    store: Path | None = None
    force: bool = False
    reference: Path | None = None
    cache_features: bool = True
    #: Generator suites: samples to draw (overrides the suite's ``num_samples``), the directory of
    #: resumable shard files (default: the tokbench cache) and whether to dump the samples there.
    num_samples: int | None = None
    work_dir: Path | None = None
    save_samples: bool = False


TrackFunction = Callable[[TrackRequest], "RunResult"]

#: Track name → ``"module:function"`` (lazy) taking a ``TrackRequest`` and returning a ``RunResult``.
TRACKS: Registry[TrackFunction] = Registry("track")
TRACKS.register("prune", "tokbench.pruning.track:run")
TRACKS.register("gen", "tokbench.gen.track:run")
TRACKS.register("vit-reduction", "tokbench.semantic.vit_track:run")
TRACKS.register("tokbench", "tokbench.textface.track:run")
