"""Fixtures of the gen tests: a tiny random DiT of the real diffusers structure, a tiny ADM-style
reference batch and a small gen suite (8 samples of 4 classes in shards of 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from gen_fixtures import (
    TINY_SUITE,
    CountingGenerator,
    ProjectionJudge,
    register_projection,
    tiny_modules,
    write_reference,
)

from tokbench.suites import SUITE_PATH_ENV


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tiny models' ops are too small to gain from more, and lose a lot
    to oversubscription on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_parts() -> tuple[torch.nn.Module, torch.nn.Module]:
    return tiny_modules()


@pytest.fixture
def tiny_dit(tiny_parts) -> Callable[..., Any]:
    """A factory of tiny DiT adapters (2 DDPM steps, guidance 1.5 by default)."""
    from tokbench.models.dit import DiT

    def make(**settings: Any):
        return DiT.from_modules(*tiny_parts, **{"steps": 2, "guidance_scale": 1.5, **settings})

    return make


@pytest.fixture
def gen_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated cache, offline, the tiny suite on the suite path; returns the tmp directory."""
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "tinygen.yaml").write_text(
        TINY_SUITE.format(name="tinygen", judge="inception-v3-tf", options="resize: tf1-bilinear, ")
    )
    (suites / "tinyproj.yaml").write_text(TINY_SUITE.format(name="tinyproj", judge="projection", options=""))
    monkeypatch.setenv(SUITE_PATH_ENV, str(suites))
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
    return tmp_path


@pytest.fixture
def counting() -> type[CountingGenerator]:
    return CountingGenerator


@pytest.fixture
def reference_writer() -> Callable[..., Path]:
    return write_reference


@pytest.fixture
def projection_judge(gen_env: Path) -> Iterator[type[ProjectionJudge]]:
    """Let the gen track build ``projection`` (suite ``tinyproj``) besides the real judges."""
    from tokbench.judges.registry import JUDGES

    register_projection()
    yield ProjectionJudge
    JUDGES.unregister("projection")
