"""The pruner contract: budgets, capability flags, registry entries and schedules."""

from __future__ import annotations

import pytest

from tokbench.adapters import MODELS, build_model
from tokbench.adapters.base import Budget, Pruner, parse_budget, resolve_budget
from tokbench.errors import ConfigError
from tokbench.pruning.pruners import FastV, PyramidDrop

PRUNERS = ["none", "random", "pool", "fastv", "pdrop", "cls-attn", "divprune", "visionzip", "tome"]


@pytest.mark.parametrize("name", PRUNERS)
def test_every_pruner_is_registered_and_built_from_a_spec(name: str) -> None:
    assert name in MODELS.names()
    built = build_model(f"{name}:budget=576" if name == "none" else f"{name}:budget=64")
    assert isinstance(built.adapter, Pruner) and built.adapter.kind == "pruner"
    assert built.adapter.stage in ("pre-llm", "intra-llm")
    assert (built.adapter.stage == "intra-llm") == (name in ("fastv", "pdrop"))


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


def test_fastv_drops_once_at_layer_k_and_pdrop_in_stages() -> None:
    assert FastV(64, layer=2).schedule(32, 64) == [(2, 64)]
    assert PyramidDrop(64, layer=2, ratio=0.5).schedule(32, 64) == [(2, 64), (16, 32), (24, 16)]
    with pytest.raises(ConfigError, match="layer"):
        FastV(64, layer=4).schedule(4, 64)
    with pytest.raises(ConfigError, match="layer"):
        FastV(64, layer=0)
