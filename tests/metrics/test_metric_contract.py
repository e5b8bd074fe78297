"""Contract of every registered metric: declared states only, exact merges, batch independence."""

from __future__ import annotations

import inspect
import math
import random
from pathlib import Path

import pytest
import torch

from tokbench.metrics import METRICS, Metric
from tokbench.metrics.base import OutputInfo
from tokbench.metrics.info import MEASUREMENTS, PUBLISHED_SCORES, key_declaration

SIDE = 176  # large enough for MS-SSIM's five scales
FEATURE_DIM = 2048
#: The prune suite's benchmark items in their official formats (tests/pruning/fixtures).
BENCHMARKS = Path(__file__).resolve().parents[1] / "pruning" / "fixtures" / "benchmarks"
#: LPIPS's float32 convolution round-off between batch compositions (``LpipsJudge.distance``).
JUDGE_ROUNDOFF = 1e-9
ANSWERS = ("yes", "no", "A", "B", "red", "stop")


@pytest.fixture(scope="module")
def lpips_judge():
    from tokbench.judges.lpips import LpipsAlex

    return LpipsAlex()


def _make(name: str, lpips_judge) -> Metric:
    """A registered metric with what its constructor needs injected (a judge for LPIPS)."""
    cls = METRICS.get(name)
    parameters = inspect.signature(cls.__init__).parameters
    kwargs = {}
    if _runs_a_network(name):
        kwargs["judge"] = lpips_judge  # an optional judge (zero-shot) is left out: features are scores
    if "feature_dim" in parameters:
        kwargs["feature_dim"] = FEATURE_DIM  # the runner gives the judge's width (FD-CLIP: 512 by default)
    return cls(**kwargs)


def _batch(metric: Metric, n: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One batch of the fields ``metric.inputs`` names, ``n`` images (or items) long."""
    clips = getattr(metric, "takes_clips", False)  # video metrics: N×T×3×H×W clips of 3 frames
    shape = (n, 3, 3, 32, 32) if clips else (n, 3, SIDE, SIDE)
    originals = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    noise = torch.randint(-20, 21, originals.shape, generator=generator)
    fields = {
        "originals": originals,
        "reconstructions": (originals.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8),
        "bits": torch.rand(n, generator=generator, dtype=torch.float64) * 1e5,
        "real_features": torch.rand((n, FEATURE_DIM), generator=generator),
        "fake_features": torch.rand((n, FEATURE_DIM), generator=generator) + 0.05,
        "fake_logits": torch.randn((n, 1008), generator=generator) * 3,
        "labels": torch.randint(0, FEATURE_DIM, (n,), generator=generator),
        "text_features": torch.rand((n, FEATURE_DIM), generator=generator) - 0.4,
        "text_targets": [_word(generator) for _ in range(n)],
        "text_predictions": [_word(generator) for _ in range(n)],
        "text_ratios": torch.rand(n, generator=generator, dtype=torch.float64) * 0.06,
        "face_original_embeddings": torch.randn((n, 128), generator=generator),
        "face_reconstructed_embeddings": torch.randn((n, 128), generator=generator),
        "face_ratios": torch.rand(n, generator=generator, dtype=torch.float64) * 0.4,
        "answers": [ANSWERS[int(i)] for i in torch.randint(0, len(ANSWERS), (n,), generator=generator)],
    }
    if "benchmark_items" in metric.inputs:  # a prune benchmark: items of its fixture, drawn with repeats
        from tokbench.pruning.benchmarks import read_benchmark

        items = read_benchmark(metric.key, BENCHMARKS)
        fields["benchmark_items"] = [
            items[int(i)] for i in torch.randint(0, len(items), (n,), generator=generator)
        ]
    return [fields[name] for name in metric.inputs]


def _word(generator: torch.Generator) -> str:
    """A short random string over a few letters (so some predictions match their targets)."""
    length = int(torch.randint(0, 4, (1,), generator=generator))
    return "".join("abA"[int(i)] for i in torch.randint(0, 3, (length,), generator=generator))


def _batches(metric: Metric, sizes: list[int]) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [_batch(metric, n, generator) for n in sizes]


def _concat(batches: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [
        torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [x for part in parts for x in part]
        for parts in zip(*batches, strict=True)
    ]


def _assert_close(a: dict[str, float], b: dict[str, float], abs_tol: float = 1e-12) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=1e-10, abs_tol=abs_tol), (key, a[key], b[key])


def _runs_a_network(name: str) -> bool:
    """Whether the metric needs a judge network (LPIPS) to run on its inputs."""
    parameters = inspect.signature(METRICS.get(name).__init__).parameters
    return "judge" in parameters and parameters["judge"].default is inspect.Parameter.empty


@pytest.mark.parametrize("name", METRICS.names())
def test_update_writes_only_declared_states(name: str, lpips_judge) -> None:
    fresh, used = _make(name, lpips_judge), _make(name, lpips_judge)
    for batch in _batches(used, [2, 3]):
        used.update(*batch)
    assert vars(used).keys() == vars(fresh).keys()


@pytest.mark.parametrize("name", METRICS.names())
def test_merge_of_shards_equals_one_pass(name: str, lpips_judge) -> None:
    """Shards merged in any order give the batches' sequential result; one concatenated batch gives it
    too, up to a network judge's float32 round-off between batch compositions (which varies by CPU)."""
    sizes = [2, 4, 2, 3]
    one_pass = _make(name, lpips_judge)
    batches = _batches(one_pass, sizes)
    one_pass.update(*_concat(batches))
    in_order = _make(name, lpips_judge)
    for batch in batches:
        in_order.update(*batch)

    shards = [_make(name, lpips_judge) for _ in batches]
    for shard, batch in zip(shards, batches, strict=True):
        shard.update(*batch)
    random.Random(1).shuffle(shards)
    merged = _make(name, lpips_judge)  # filled only by merge_state
    for shard in shards:
        merged.merge_state(shard.state_dict())
    _assert_close(merged.compute(), in_order.compute())
    _assert_close(
        one_pass.compute(), in_order.compute(), abs_tol=JUDGE_ROUNDOFF if _runs_a_network(name) else 1e-12
    )


@pytest.mark.parametrize("name", METRICS.names())
def test_reset_restores_a_fresh_metric(name: str, lpips_judge) -> None:
    metric = _make(name, lpips_judge)
    metric.update(*_batches(metric, [2])[0])
    metric.reset()
    fresh = _make(name, lpips_judge)
    assert all(
        torch.equal(value, default) if isinstance(value, torch.Tensor) else value == default
        for value, default in zip(metric.state_dict().values(), fresh.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", METRICS.names())
def test_merging_a_different_metric_is_refused(name: str, lpips_judge) -> None:
    from tokbench.errors import ConfigError

    other_name = next(n for n in METRICS.names() if n != name)
    with pytest.raises(ConfigError, match="cannot merge"):
        _make(name, lpips_judge).merge_state(_make(other_name, lpips_judge))


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_declares_its_display_metadata(name: str) -> None:
    cls = METRICS.get(name)
    assert cls.key and cls.label, f"{name}: set the class attributes key and label"
    assert cls.output_info(cls.key) == OutputInfo(cls.label, cls.higher_is_better, cls.unit)
    assert cls.higher_is_better is not None, f"{name}: a registered metric says which direction is better"
    for alias, label in cls.aliases.items():
        assert cls.output_info(alias) == OutputInfo(label, cls.higher_is_better, cls.unit)


@pytest.mark.parametrize("name", METRICS.names())
def test_every_computed_key_is_described_and_declared_once(name: str, lpips_judge) -> None:
    """Each key ``compute()`` returns has its info, and the fallback for records without
    ``metric_info`` (``key_declaration``) finds it in this metric and in no other place."""
    metric = _make(name, lpips_judge)
    for batch in _batches(metric, [5, 6]):  # Inception Score needs 10 images
        metric.update(*batch)
    computed = metric.compute()
    assert computed, f"{name} computed nothing on the contract batches"
    for key in computed:
        assert type(metric).output_info(key) is not None, f"{name}: no output_info for {key!r}"
        assert key_declaration(key) == (name, type(metric).output_info(key)), key
        claimed = [other for other in METRICS.names() if METRICS.get(other).output_info(key) is not None]
        assert claimed == [name], f"{key!r} is described by {claimed}"


def test_track_tables_declare_keys_no_metric_declares():
    for key in (*PUBLISHED_SCORES, *MEASUREMENTS):
        claimed = [name for name in METRICS.names() if METRICS.get(name).output_info(key) is not None]
        assert not claimed, f"{key!r} is declared twice: in tokbench.metrics.info and by {claimed}"
