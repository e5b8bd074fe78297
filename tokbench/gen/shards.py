"""Resumable sample shards of a ``gen`` run: one ``.npz`` per finished shard under a run directory.

A run directory is named by the sha256 of everything that changes a shard's contents (sampling
settings and seed, generator spec, settings and weights, judge, device type, batch size), so a re-run
of the same run finds its finished shards and a different run never does. A shard file holds the
judge outputs of its samples (``pool3``, and ``logits_unbiased`` when the judge has them), their
indices and labels, and the run key; it is written to a temporary file and renamed, so it is either
complete or absent. Optional sample dumps (``samples-NNNNN.npz``, ADM's sample-batch layout:
``arr_0`` uint8 N×H×W×3 and ``arr_1`` labels) are for inspection and are never read back.

The determinism probe (``probe_determinism``) draws the first samples of shard 0 again and compares
them, as uint8 pixels, with the same samples drawn earlier: by an earlier run of the same run
directory (its ``probe.npz``), or else a moment before in this run. A generator that ignores its seeds
fails it, and a resumed run then refuses to mix its new shards with the earlier ones.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokbench.errors import StoreError
from tokbench.files import remove_stale_temp_files
from tokbench.hashing import sha256_json

logger = logging.getLogger(__name__)

SHARD_FORMAT = "tokbench-gen-shard/1"
_META_KEYS = ("run_key", "indices", "labels")
#: Samples the determinism probe draws again (the first of shard 0): cheap, and enough for a seedless
#: generator, whose every image differs.
PROBE_SAMPLES = 2
_TEMP_PATTERNS = (".shard-*.partial", ".samples-*.partial")


def run_key(parts: dict[str, Any]) -> str:
    """The sha256 naming a run directory: ``parts`` plus the shard format."""
    return sha256_json({"format": SHARD_FORMAT, **parts})


def rank_shards(num_shards: int, rank: int, world_size: int) -> list[int]:
    """The shards process ``rank`` of ``world_size`` generates: every ``world_size``-th, from ``rank``."""
    return list(range(rank, num_shards, world_size))


def _write_atomically(target: Path, arrays: dict[str, np.ndarray]) -> None:
    remove_stale_temp_files(target.parent, _TEMP_PATTERNS)  # leftovers of killed runs, not live ranks
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class ShardStore:
    """The shard files of one run (``directory / key[:24]``), with the outputs each must hold."""

    def __init__(self, root: Path, key: str, parts: dict[str, Any], outputs: tuple[str, ...]):
        self.key = key
        self.outputs = outputs
        self.directory = Path(root) / key[:24]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            description = self.directory / "run.json"
            if not description.is_file():
                text = json.dumps({"format": SHARD_FORMAT, "key": key, **parts}, indent=2, sort_keys=True)
                description.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            raise StoreError(f"cannot create the gen run directory {self.directory}: {error}") from None

    def path(self, shard: int) -> Path:
        return self.directory / f"shard-{shard:05d}.npz"

    def samples_path(self, shard: int) -> Path:
        return self.directory / f"samples-{shard:05d}.npz"

    def load(self, shard: int, indices: range) -> dict[str, np.ndarray] | None:
        """A finished shard's arrays, or None when it is absent or unusable (then it is regenerated)."""
        path = self.path(shard)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            return self._discard(path, f"unreadable ({error})")
        missing = [name for name in (*_META_KEYS, *self.outputs) if name not in arrays]
        if missing:
            return self._discard(path, f"missing {', '.join(missing)}")
        if str(arrays["run_key"]) != self.key:
            return self._discard(path, "written by another run")
        if not np.array_equal(arrays["indices"], np.arange(indices.start, indices.stop)):
            return self._discard(path, "holds other sample indices")
        if any(arrays[name].shape[0] != len(indices) for name in self.outputs):
            return self._discard(path, "has the wrong number of rows")
        return arrays

    def _discard(self, path: Path, reason: str) -> None:
        logger.warning("gen: shard file %s is %s; it will be regenerated", path, reason)
        path.unlink(missing_ok=True)
        return None

    def save(self, shard: int, indices: range, labels: list[int], outputs: dict[str, np.ndarray]) -> None:
        """Write a finished shard atomically."""
        arrays = {
            "run_key": np.asarray(self.key),
            "indices": np.arange(indices.start, indices.stop, dtype=np.int64),
            "labels": np.asarray(labels, dtype=np.int64),
            **{name: np.ascontiguousarray(outputs[name], dtype=np.float32) for name in self.outputs},
        }
        _write_atomically(self.path(shard), arrays)

    def save_samples(self, shard: int, images: np.ndarray, labels: list[int]) -> None:
        """Dump a shard's uint8 N×H×W×3 samples and labels (ADM sample-batch layout), atomically."""
        _write_atomically(
            self.samples_path(shard), {"arr_0": images, "arr_1": np.asarray(labels, dtype=np.int64)}
        )

    def probe_path(self) -> Path:
        return self.directory / "probe.npz"

    def load_probe(self, indices: range) -> np.ndarray | None:
        """The uint8 probe samples an earlier run saved for ``indices``, or None (absent or unusable)."""
        path = self.probe_path()
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            return self._discard(path, f"unreadable ({error})")
        if set(arrays) != {"run_key", "indices", "samples"} or str(arrays["run_key"]) != self.key:
            return self._discard(path, "not this run's determinism probe")
        if not np.array_equal(arrays["indices"], np.arange(indices.start, indices.stop)):
            return self._discard(path, "a probe of other sample indices")
        return arrays["samples"]

    def save_probe(self, indices: range, samples: np.ndarray) -> None:
        """Keep the probe samples (uint8 N×H×W×3) for later runs of this run directory, atomically."""
        arrays = {
            "run_key": np.asarray(self.key),
            "indices": np.arange(indices.start, indices.stop, dtype=np.int64),
            "samples": samples,
        }
        _write_atomically(self.probe_path(), arrays)


@dataclass(frozen=True)
class DeterminismProbe:
    """Whether re-drawing the probe samples gave the same uint8 pixels, and against what."""

    deterministic: bool
    indices: list[int]
    compared_with: str
    #: Largest absolute difference in uint8 levels (255 when the shapes differ).
    max_difference: int

    def describe(self) -> dict[str, Any]:
        return {
            "samples": self.indices,
            "compared_with": self.compared_with,
            "max_difference": self.max_difference,
        }


def probe_determinism(store: ShardStore, indices: range, draw: Callable[[], np.ndarray]) -> DeterminismProbe:
    """Draw the samples ``indices`` (``draw`` returns them as uint8 N×H×W×3) and compare them with the
    probe an earlier run saved, or, on a first run, save them and compare with a second draw."""
    earlier = store.load_probe(indices)
    drawn = draw()
    if earlier is None:
        store.save_probe(indices, drawn)
        earlier, drawn, against = drawn, draw(), "a second draw in this run"
    else:
        against = "the probe an earlier run of this run directory saved"
    if earlier.shape != drawn.shape:
        difference = 255
    else:
        difference = int(np.abs(earlier.astype(np.int16) - drawn.astype(np.int16)).max(initial=0))
    return DeterminismProbe(difference == 0, list(indices), against, difference)
