"""The vit-reduction track: one record per budget, FLOPs falling with tokens kept, the report curves."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import tokbench
from tokbench.errors import ConfigError
from tokbench.report.figures import token_reduction_figure
from tokbench.report.page import write_report
from tokbench.store import RecordStore

RANDOM_SMALL = {"clip": {"model": "ViT-S-32", "pretrained": None, "weights": "random"}}


def test_a_budget_sweep_writes_one_record_per_point(tmp_path: Path) -> None:
    store = tmp_path / "store"
    results = tokbench.evaluate_sweep(
        "tome",
        {"budget": ["7", "25"]},
        suite="vit-reduction",
        limit=2,
        store=store,
        judge_options=RANDOM_SMALL,
    )
    assert [r.metrics["tokens_kept"] for r in results] == [7.0, 25.0]
    low, high = (r.metrics for r in results)
    assert low["encoder_gflops"] < high["encoder_gflops"] < high["encoder_gflops_full"]
    assert low["encoder_gflops_full"] == high["encoder_gflops_full"] and 0 < low["flops_ratio"] < 1
    assert all(-1.0 <= m["clip_cosine"] <= 1.0 and m["seconds_per_image"] > 0 for m in (low, high))
    assert "class labels" in results[0].record["not_applicable"]["zs_top1"]
    details = results[0].record["vit_reduction"]
    assert (
        details["keep"] == 7 and details["layer"] == 4 and details["sequence_lengths"] == [50] * 4 + [8] * 8
    )
    records = RecordStore(store).records(suite="vit-reduction")
    assert len(records) == 2
    figure = token_reduction_figure(records)
    assert [trace.name for trace in figure.data] == ["tome", "tome"]  # vs tokens kept and vs GFLOPs
    assert list(figure.data[0].x) == [7.0, 25.0]
    page = write_report(records, tmp_path / "report.html", "vit-reduction").read_text()
    assert "ViT token reduction" in page


def test_intra_llm_pruners_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"evaluates pre-LLM pruners.*intra-LLM"):
        tokbench.evaluate("fastv:budget=7", suite="vit-reduction", judge_options=RANDOM_SMALL)


def test_zero_shot_on_labelled_data_and_bad_settings(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    for name in ("red", "green"):
        (data / name).mkdir(parents=True)
        Image.new("RGB", (64, 64), (200, 30, 30) if name == "red" else (30, 200, 30)).save(
            data / name / "a.png"
        )
    suites = tmp_path / "suites"
    suites.mkdir()
    body = (
        "include: vit-reduction\nname: vit-tiny\nversion: t1\n"
        "preprocess: {name: center-crop, resolution: 64}\n"
        "metrics:\n  - {name: clip-cosine, judge: clip}\n"
        "  - {name: zero-shot, judge: clip, options: {templates: photo}}\n"
    )
    (suites / "vit-tiny.yaml").write_text(body + "settings: {judge: clip, layer: 1}\n")
    (suites / "vit-bad.yaml").write_text(
        body.replace("vit-tiny", "vit-bad") + "settings: {judge: clip, layr: 1}\n"
    )
    monkeypatch.setenv("TOKBENCH_SUITE_PATH", str(suites))
    options = {"clip": {"model": tiny_model, "pretrained": None, "weights": "random"}}
    result = tokbench.evaluate(
        "cls-attn:budget=0.5", suite="vit-tiny", data=f"classfolder:{data}", judge_options=options
    )
    assert result.metrics["tokens_kept"] == 8.0 and result.metrics["tokens_total"] == 16.0
    assert {"zs_top1", "zs_top1_reference", "zs_top1_drop", "zs_top5"} <= set(result.metrics)
    with pytest.raises(ConfigError, match=r"settings unknown \['layr'\], missing \['layer'\]"):
        tokbench.evaluate("cls-attn:budget=8", suite="vit-bad", judge_options=options)
