"""Contract of every registered metric: declared states only, exact merges, batch independence."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tokbench.metrics import METRICS

SIDE = 176  # large enough for MS-SSIM's five scales


def _batch(inputs: tuple[str, ...], n: int, generator: torch.Generator) -> list[torch.Tensor]:
    originals = torch.randint(0, 256, (n, 3, SIDE, SIDE), generator=generator, dtype=torch.uint8)
    noise = torch.randint(-20, 21, originals.shape, generator=generator)
    fields = {
        "originals": originals,
        "reconstructions": (originals.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8),
        "bits": torch.rand(n, generator=generator, dtype=torch.float64) * 1e5,
    }
    return [fields[name] for name in inputs]


def _batches(inputs: tuple[str, ...], sizes: list[int]) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [_batch(inputs, n, generator) for n in sizes]


def _concat(batches: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.cat(parts) for parts in zip(*batches, strict=True)]


def _assert_close(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=1e-10, abs_tol=1e-12), (key, a[key], b[key])


@pytest.mark.parametrize("name", METRICS.names())
def test_update_writes_only_declared_states(name: str) -> None:
    cls = METRICS.get(name)
    fresh, used = cls(), cls()
    for batch in _batches(cls.inputs, [2, 3]):
        used.update(*batch)
    assert vars(used).keys() == vars(fresh).keys()


@pytest.mark.parametrize("name", METRICS.names())
def test_merge_of_shards_equals_one_pass(name: str) -> None:
    cls = METRICS.get(name)
    sizes = [1, 4, 2, 3]
    batches = _batches(cls.inputs, sizes)
    one_pass = cls()
    one_pass.update(*_concat(batches))

    shards = [cls() for _ in batches]
    for shard, batch in zip(shards, batches, strict=True):
        shard.update(*batch)
    random.Random(1).shuffle(shards)
    merged = cls()  # filled only by merge_state
    for shard in shards:
        merged.merge_state(shard.state_dict())
    _assert_close(merged.compute(), one_pass.compute())


@pytest.mark.parametrize("name", METRICS.names())
def test_reset_restores_a_fresh_metric(name: str) -> None:
    cls = METRICS.get(name)
    metric = cls()
    metric.update(*_batches(cls.inputs, [2])[0])
    metric.reset()
    assert all(
        torch.equal(value, fresh) if isinstance(value, torch.Tensor) else value == fresh
        for value, fresh in zip(metric.state_dict().values(), cls().state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", METRICS.names())
def test_merging_a_different_metric_is_refused(name: str) -> None:
    from tokbench.errors import ConfigError

    cls = METRICS.get(name)
    other_name = next(n for n in METRICS.names() if METRICS.get(n) is not cls)
    with pytest.raises(ConfigError, match="cannot merge"):
        cls().merge_state(METRICS.get(other_name)())
