"""The gen track under torchrun: two gloo processes take disjoint shards and rank 0's numbers equal
a single-process run's. The processes sample from a weightless noise generator (the sharding is under
test, not the model; importing diffusers would triple the time)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from gen_fixtures import TINY_SUITE, NoiseGenerator, register_projection, write_reference

import tokbench
from tokbench.gen.shards import rank_shards


def test_ranks_take_disjoint_shards_that_cover_the_run() -> None:
    for world_size in (1, 2, 3, 7):
        taken = [rank_shards(10, rank, world_size) for rank in range(world_size)]
        flat = sorted(s for shards in taken for s in shards)
        assert flat == list(range(10)), world_size
    assert rank_shards(3, 0, 2) == [0, 2] and rank_shards(3, 1, 2) == [1]


def _evaluate(root: Path, work: str):
    return tokbench.evaluate(
        NoiseGenerator(), "tinyproj", reference=root / "ref.npz", work_dir=root / work, batch_size=8
    )


def _worker(rank: int, root: str, port: int) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    register_projection()  # a fresh process: the stand-in judge is registered here too
    result = _evaluate(Path(root), "shared")
    payload = {"metrics": result.metrics, "generation": result.record["generation"]}
    (Path(root) / f"rank{rank}.json").write_text(json.dumps(payload))
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one(gen_env: Path, projection_judge) -> None:
    write_reference(gen_env / "ref.npz", images=5)
    (gen_env / "suites" / "tinyproj.yaml").write_text(
        TINY_SUITE.format(name="tinyproj", judge="projection", options="")
    )
    mp.spawn(_worker, args=(str(gen_env), _free_port()), nprocs=2, join=True)
    ranks = [json.loads((gen_env / f"rank{r}.json").read_text()) for r in (0, 1)]
    (run,) = [p for p in (gen_env / "shared").iterdir() if p.is_dir()]
    assert sorted(p.name for p in run.glob("shard-*.npz")) == [f"shard-{k:05d}.npz" for k in range(3)]
    assert ranks[0]["generation"]["shards"]["generated"] == [0, 1, 2]  # merged over both ranks
    assert ranks[0]["generation"]["shards"]["resumed"] == []  # each shard made once, by its rank
    assert ranks[0] == ranks[1]  # rank 0's outcome is broadcast

    single = _evaluate(gen_env, "single")
    for key, value in single.metrics.items():
        assert ranks[0]["metrics"][key] == pytest.approx(value, rel=1e-9, abs=0.0), key
