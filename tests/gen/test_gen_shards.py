"""Shard files: atomic, checked on load, discarded when they do not belong to the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tokbench.gen.shards import ShardStore, run_key


def _store(root: Path, key: str | None = None) -> ShardStore:
    parts = {"model": "m"}
    return ShardStore(root, key or run_key(parts), parts, ("pool3",))


def test_round_trip_and_run_description(tmp_path: Path) -> None:
    store = _store(tmp_path)
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    store.save(1, range(3, 6), [0, 1, 2], {"pool3": features})
    loaded = store.load(1, range(3, 6))
    assert loaded is not None and np.array_equal(loaded["pool3"], features)
    assert loaded["labels"].tolist() == [0, 1, 2]
    assert json.loads((store.directory / "run.json").read_text())["model"] == "m"
    assert not list(store.directory.glob("*.partial"))
    assert store.load(0, range(0, 3)) is None  # never written


def test_foreign_or_damaged_shards_are_discarded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(0, range(0, 2), [0, 1], {"pool3": np.zeros((2, 2), np.float32)})
    assert store.load(0, range(0, 3)) is None  # other indices: discarded
    assert not store.path(0).exists()

    store.save(0, range(0, 2), [0, 1], {"pool3": np.zeros((2, 2), np.float32)})
    other = _store(tmp_path, key=store.key[:24] + "0" * 40)  # same directory, another key
    assert other.load(0, range(0, 2)) is None

    store.path(1).write_bytes(b"not a zip")
    assert store.load(1, range(2, 4)) is None and not store.path(1).exists()


def test_sample_dumps_use_the_adm_layout(tmp_path: Path) -> None:
    store = _store(tmp_path)
    images = np.zeros((2, 4, 4, 3), np.uint8)
    store.save_samples(0, images, [3, 1])
    with np.load(store.samples_path(0)) as data:
        assert data["arr_0"].shape == (2, 4, 4, 3) and data["arr_1"].tolist() == [3, 1]
