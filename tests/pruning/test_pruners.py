"""The pruner contract: budgets, capability flags, registry entries and schedules."""

from __future__ import annotations

import pytest
import torch

from tokbench.adapters import MODELS, build_model
from tokbench.adapters.base import Budget, PreLLMContext, Pruner, parse_budget, resolve_budget
from tokbench.errors import ConfigError
from tokbench.pruning.pruners import FastV, PyramidDrop, VisionZip

PRUNERS = [
    "none",
    "random",
    "pool",
    "fastv",
    "fastv-official",
    "pdrop",
    "cls-attn",
    "divprune",
    "visionzip",
    "tome",
]


@pytest.mark.parametrize("name", PRUNERS)
def test_every_pruner_is_registered_and_built_from_a_spec(name: str) -> None:
    assert name in MODELS.names()
    built = build_model(f"{name}:budget=576" if name == "none" else f"{name}:budget=64")
    assert isinstance(built.adapter, Pruner) and built.adapter.kind == "pruner"
    assert built.adapter.stage in ("pre-llm", "intra-llm")
    assert (built.adapter.stage == "intra-llm") == (name in ("fastv", "fastv-official", "pdrop"))


def test_budget_is_a_count_or_a_ratio() -> None:
    assert parse_budget("64") == Budget(count=64) and parse_budget(64) == Budget(count=64)
    assert parse_budget("0.25") == Budget(ratio=0.25) and parse_budget("1.0") == Budget(ratio=1.0)
    assert resolve_budget(Budget(ratio=0.25), 576) == 144
    assert resolve_budget(Budget(count=64), 576) == 64


@pytest.mark.parametrize("value", ["0", "-3", "abc", "64.5"])
def test_bad_budgets_are_named(value: str) -> None:
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(value)


def test_a_budget_above_the_token_count_is_refused() -> None:
    with pytest.raises(ConfigError, match="exceeds the 576 visual tokens"):
        resolve_budget(Budget(count=577), 576)


def test_fastv_drops_once_at_layer_k() -> None:
    assert FastV(64, layer=2).schedule(32, 64) == [(2, 64)]
    with pytest.raises(ConfigError, match="layer"):
        FastV(64, layer=4).schedule(4, 64)
    with pytest.raises(ConfigError, match="layer"):
        FastV(64, layer=0)


def test_pdrop_defaults_to_the_published_schedule() -> None:
    pdrop = PyramidDrop()
    keep = resolve_budget(pdrop.budget, 576)
    assert pdrop.schedule(32, keep) == [(8, 288), (16, 144), (24, 72)]  # λ = 0.5 after layers 8/16/24
    assert pdrop.schedule(8, keep) == [(2, 288), (4, 144), (6, 72)]  # the reference's tiny Llama
    assert PyramidDrop(64, layer=2, ratio=0.5).schedule(32, 64) == [(2, 64), (4, 32), (6, 16)]
    assert PyramidDrop(100, ratio=0.3).schedule(32, 100) == [(8, 100), (16, 30), (24, 9)]


def test_pdrop_refuses_schedules_that_do_not_fit() -> None:
    with pytest.raises(ConfigError, match="layer=11"):
        PyramidDrop(layer=11).schedule(32, 288)
    with pytest.raises(ConfigError, match="at least one"):
        PyramidDrop(2, ratio=0.25).schedule(32, 2)
    with pytest.raises(ConfigError, match="ratio"):
        PyramidDrop(ratio=0.0)


def test_visionzip_refuses_what_it_cannot_merge() -> None:
    tokens, features = torch.randn(1, 16, 8), torch.randn(1, 16, 4)
    context = PreLLMContext(
        tokens=tokens,
        vision_features=features,
        grid=(4, 4),
        vision_attentions=torch.rand(1, 2, 17, 17),
        vision_keys=torch.randn(1, 17, 4),
        prefix_features=torch.randn(1, 1, 4),
    )
    with pytest.raises(ConfigError, match="projector"):
        VisionZip(8).reduce(context, 8)
    with pytest.raises(ConfigError, match="exceeds the budget 4"):
        VisionZip(4, contextual=4).reduce(context, 4)
