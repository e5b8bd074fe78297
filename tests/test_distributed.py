"""torch.distributed: two CPU processes (gloo) under torchrun give the single-process result."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tokbench.distributed import Distributed

QUALITY_KEYS = (
    "psnr",
    "psnr_ci95",
    "ssim",
    "ms_ssim",
    "lpips",
    "fid",
    "kid",
    "bits_per_pixel",
    "bytes_per_image",
)


def test_shards_partition_the_items_in_a_stride() -> None:
    items = list(range(11))
    shards = [Distributed(rank=r, world_size=3).shard(items) for r in range(3)]
    assert sorted(x for shard in shards for x in shard) == items
    assert shards[0] == [0, 3, 6, 9]


def _run(tmp_path: Path, name: str, launcher: list[str]) -> dict:
    out = tmp_path / f"{name}.json"
    command = [
        *launcher, "-m", "tokbench.cli", "run", "--model", "jpeg:quality=30", "--limit", "7",
        "--batch-size", "2", "--no-store", "--quiet", "--output-json", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path: Path) -> None:
    single = _run(tmp_path, "single", [sys.executable])
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
    ]
    double = _run(tmp_path, "double", torchrun)
    assert double["timings"]["processes"] == 2 and single["timings"]["processes"] == 1
    assert double["dataset"]["items_used"] == single["dataset"]["items_used"] == 7
    assert double["protocol_hash"] == single["protocol_hash"]
    for key in QUALITY_KEYS:
        assert math.isclose(double["metrics"][key], single["metrics"][key], rel_tol=1e-6), key
