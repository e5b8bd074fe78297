"""The prune track end to end on the fixture with the tiny random VLM (one item per benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tokbench
from tokbench.cli import main
from tokbench.errors import ConfigError
from tokbench.pruning import pruners
from tokbench.pruning.host import LlavaHost
from tokbench.tracks.prune import _baseline_spec, _check_same_attention


def test_one_command_writes_a_record_with_scores_cost_and_the_unpruned_reference(
    benchmark_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "record.json"
    status = main(
        [
            "run", "--model", "pool:budget=64,vlm=tiny-random", "--suite", "prune",
            "--data", str(benchmark_dir), "--limit", "1", "--store", str(tmp_path / "store"),
            "--output-json", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    record = json.loads(out.read_text())
    metrics = record["metrics"]
    for name in ("gqa", "mmb", "mme", "pope", "sqa", "textvqa"):
        assert 0.0 <= metrics[name] <= (2000.0 if name == "mme" else 100.0)
    assert metrics["tokens_kept"] == 64 and metrics["tokens_retained_pct"] == pytest.approx(100 * 64 / 576)
    assert metrics["prefill_gflops"] > 0 and metrics["prefill_ms"] > 0 and metrics["kv_cache_mb"] > 0
    assert "peak_memory_mb" in metrics or "peak_memory_mb" in record["not_applicable"]
    pruning = record["pruning"]
    assert pruning["random_weights"] is True and pruning["vlm"] == "tiny-random"
    assert pruning["attention_implementation"] == {"vision": "sdpa", "text": "sdpa"}
    assert pruning["groups"]["pope"] == "hallucination" and pruning["groups"]["textvqa"] == "ocr_document"
    assert len(pruning["predictions"]) == record["dataset"]["items_used"] == 6
    baseline = tokbench.evaluate(
        "none:vlm=tiny-random", suite="prune", data=str(benchmark_dir), limit=1, store=tmp_path / "store"
    )
    assert baseline.stored is not None and baseline.stored.status == "exists"  # run once, reused
    assert baseline.metrics["prefill_gflops"] > metrics["prefill_gflops"]
    for name, value in baseline.metrics.items():
        if name in ("gqa", "pope", "sqa", "mmb", "textvqa", "mme") and value > 0:
            assert metrics[f"{name}_pct_of_unpruned"] == pytest.approx(100 * metrics[name] / value)


def test_one_untimed_warm_up_prefill_precedes_the_first_timed_item(
    benchmark_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    prefill, generate = LlavaHost.prefill, LlavaHost.generate

    def spied_prefill(*args, **kwargs):
        calls.append("prefill")
        return prefill(*args, **kwargs)

    def spied_generate(*args, **kwargs):
        calls.append("generate")
        return generate(*args, **kwargs)

    monkeypatch.setattr(LlavaHost, "prefill", spied_prefill)
    monkeypatch.setattr(LlavaHost, "generate", spied_generate)
    result = tokbench.evaluate(
        "none:vlm=tiny-random", suite="prune", data=str(benchmark_dir), limit=1, store=tmp_path / "store"
    )
    items = result.record["dataset"]["items_used"]
    assert calls[:2] == ["prefill", "generate"]  # the warm-up, then the first timed item
    assert calls.count("generate") == items and calls.count("prefill") == items + 1
    assert result.record["pruning"]["warmup"] == 1


def test_the_baseline_runs_the_pruners_attention_implementation(benchmark_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    pruned = tokbench.evaluate(
        "fastv:budget=64,vlm=tiny-random", suite="prune", data=str(benchmark_dir), limit=1, store=store
    )
    eager_text = {"vision": "sdpa", "text": "eager"}
    assert pruned.record["pruning"]["attention_implementation"] == eager_text
    assert pruned.record["protocol"]["attention_implementation"] == eager_text
    baseline = tokbench.evaluate(
        "none:vlm=tiny-random,text_attention=eager",
        suite="prune",
        data=str(benchmark_dir),
        limit=1,
        store=store,
    )
    assert baseline.stored is not None and baseline.stored.status == "exists"  # the one fastv required
    assert baseline.record["pruning"]["attention_implementation"] == eager_text
    assert any(key.endswith("_pct_of_unpruned") for key in pruned.metrics)


def test_relative_scores_refuse_a_baseline_with_another_attention_implementation() -> None:
    record = {
        "record_id": "prune-none",
        "pruning": {"attention_implementation": {"vision": "sdpa", "text": "sdpa"}},
    }
    with pytest.raises(ConfigError, match="same attention implementation"):
        _check_same_attention({"vision": "sdpa", "text": "eager"}, record)
    _check_same_attention({"vision": "sdpa", "text": "sdpa"}, record)


def test_the_baseline_spec_names_only_the_eager_towers() -> None:
    assert _baseline_spec(pruners.Pool(64)) == "none"
    assert _baseline_spec(pruners.FastV(64, vlm="tiny-random")) == "none:vlm=tiny-random,text_attention=eager"
    assert _baseline_spec(pruners.ClsAttention(64)) == "none:vision_attention=eager"
    with pytest.raises(ConfigError, match="text_attention"):
        pruners.NoPruning(text_attention="flash")


def test_the_prune_suite_needs_data_and_a_pruner(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--data"):
        tokbench.evaluate("pool:budget=64,vlm=tiny-random", suite="prune")
    with pytest.raises(ConfigError, match="evaluates pruners"):
        tokbench.evaluate("jpeg", suite="prune", data=str(tmp_path))


def test_a_budget_above_the_visual_tokens_fails_clearly(benchmark_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exceeds the 576 visual tokens"):
        tokbench.evaluate(
            "random:budget=1000,vlm=tiny-random", suite="prune", data=str(benchmark_dir), limit=1
        )
