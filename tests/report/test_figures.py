"""Tests for the rate–distortion figure: families, ordering, exclusions and escaping."""

from __future__ import annotations

import math

import pytest

from tokbench.errors import ConfigError, StoreError
from tokbench.report.figures import format_metric, rate_distortion_figure, record_metric

HASH_A = "a" * 64
EVIL_SPEC = "<script>alert(1)</script>"


def make_record(name: str, spec: str, metrics: dict, created_at: str = "2026-01-02T03:04:05+00:00") -> dict:
    """A minimal schema-shaped record of suite ``recon`` under protocol ``HASH_A``."""
    return {
        "schema_version": 1,
        "record_id": "0" * 20,
        "source": "reproduced",
        "suite": {"name": "recon", "version": "1"},
        "protocol_hash": HASH_A,
        "model": {"name": name, "spec": spec, "arguments": {}, "kind": "tokenizer"},
        "dataset": {"name": "kodak", "items_used": 24, "items_skipped": 0},
        "metrics": metrics,
        "created_at": created_at,
    }


def sweep_records() -> list[dict]:
    """A jpeg sweep (shuffled), a webp pair, one tokenizer, a lossless record and one without a rate."""
    jpeg = [
        make_record(
            "jpeg",
            f"jpeg:quality={q}",
            {"bits_per_pixel": q / 20, "psnr": 25 + q / 10, "ssim": 0.5 + q / 250},
        )
        for q in (70, 10, 90, 30, 50)
    ]
    jpeg[0]["metrics"]["psnr_ci95"] = 0.25
    webp = [
        make_record("webp", f"webp:quality={q}", {"bits_per_pixel": q / 25, "psnr": 26 + q / 10, "ssim": 0.6})
        for q in (80, 20)
    ]
    single = make_record("titok", "titok:variant=l32", {"bits_per_pixel": 0.0059, "psnr": 19.1, "ssim": 0.45})
    lossless = make_record("identity", "identity", {"bits_per_pixel": 24.0, "psnr": "inf", "ssim": 1.0})
    no_rate = make_record("vqgan", "vqgan:f=16", {"psnr": 22.0, "ssim": 0.55})
    return [*jpeg, *webp, single, lossless, no_rate]


def traces_of(figure, axis: str) -> dict[str, object]:
    """The traces of one subplot (``y`` or ``y2``), keyed by legend name."""
    return {trace.name: trace for trace in figure.data if trace.yaxis == axis}


def annotation_texts(figure) -> list[str]:
    """All annotation texts of the figure."""
    return [annotation.text for annotation in figure.layout.annotations]


def test_one_trace_per_family_per_subplot_sorted_by_rate():
    figure = rate_distortion_figure(sweep_records())
    psnr_traces = traces_of(figure, "y")
    ssim_traces = traces_of(figure, "y2")
    assert set(psnr_traces) == {"jpeg", "webp", "titok"}  # identity's only point is psnr = inf
    assert set(ssim_traces) == {"jpeg", "webp", "titok", "identity"}
    assert len(figure.data) == 7
    for traces in (psnr_traces, ssim_traces):
        assert list(traces["jpeg"].x) == [0.5, 1.5, 2.5, 3.5, 4.5]
        assert list(traces["webp"].x) == [0.8, 3.2]
        assert traces["jpeg"].mode == "lines+markers"
        assert traces["titok"].mode == "markers"
    assert list(psnr_traces["jpeg"].y) == pytest.approx([26, 28, 30, 32, 34])


def test_legend_shows_each_family_once():
    figure = rate_distortion_figure(sweep_records())
    shown = [trace.name for trace in figure.data if trace.showlegend]
    assert sorted(shown) == ["identity", "jpeg", "titok", "webp"]


def test_annotation_counts_excluded_records():
    psnr_note, ssim_note = annotation_texts(rate_distortion_figure(sweep_records()))
    assert "1 record without bits_per_pixel not shown" in psnr_note
    assert "1 record with psnr = inf not shown" in psnr_note
    assert ssim_note == "1 record without bits_per_pixel not shown"


def test_annotation_pluralises_and_counts_minus_inf():
    records = [
        make_record("a", "a", {"psnr": 1.0, "ssim": 0.1}),
        make_record("b", "b", {"psnr": 1.0, "ssim": 0.1}),
        make_record("c", "c", {"bits_per_pixel": 1.0, "psnr": float("-inf"), "ssim": 0.1}),
    ]
    figure = rate_distortion_figure(records, y_metrics=("psnr",))
    assert figure.data == ()
    assert annotation_texts(figure) == [
        "1 record with psnr = -inf not shown<br>2 records without bits_per_pixel not shown"
    ]


def test_no_annotation_when_everything_is_plotted():
    records = [make_record("jpeg", "jpeg:quality=50", {"bits_per_pixel": 1.0, "psnr": 30.0, "ssim": 0.9})]
    assert annotation_texts(rate_distortion_figure(records)) == []


def test_axis_titles_are_the_declared_labels_with_units():
    figure = rate_distortion_figure(sweep_records())
    assert figure.layout.xaxis2.title.text == "bits per pixel"
    assert figure.layout.yaxis.title.text == "PSNR (dB)"
    assert figure.layout.yaxis2.title.text == "SSIM"


def test_axis_titles_prefer_the_records_metric_info():
    records = sweep_records()
    for record in records:
        record["metric_info"] = {"ssim": {"label": "<b>SSIM</b> v2", "unit": "", "higher_is_better": True}}
    figure = rate_distortion_figure(records)
    assert (
        figure.layout.yaxis2.title.text == "&lt;b&gt;SSIM&lt;/b&gt; v2"
    )  # escaped, like every record string


def test_hover_shows_spec_and_ci():
    jpeg = traces_of(rate_distortion_figure(sweep_records()), "y")["jpeg"]
    hover = jpeg.hovertext[list(jpeg.x).index(3.5)]
    assert hover.startswith("jpeg:quality=70<br>")
    assert "psnr: 32 ± 0.25" in hover
    assert "bits_per_pixel: 3.5" in hover


def test_user_strings_are_escaped_in_names_and_hover():
    records = [make_record(EVIL_SPEC, EVIL_SPEC, {"bits_per_pixel": 1.0, "psnr": 30.0, "ssim": 0.9})]
    figure = rate_distortion_figure(records)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for trace in figure.data:
        assert trace.name == escaped
        assert trace.hovertext[0].startswith(escaped + "<br>")
    assert EVIL_SPEC not in figure.to_json().replace("\\u003c", "<").replace("\\u003e", ">").replace(
        "\\u002f", "/"
    )


def test_record_metric_and_format():
    record = make_record("x", "x", {"psnr": "inf", "ssim": 0.123456, "ssim_ci95": 0.0012345, "n": 3})
    assert record_metric(record, "psnr") == math.inf
    assert record_metric(record, "missing") is None
    assert format_metric(record, "ssim") == "0.1235 ± 0.001234"
    assert format_metric(record, "psnr") == "inf"
    assert format_metric(record, "n") == "3"
    assert format_metric(record, "missing") == ""


def test_malformed_metric_raises_store_error():
    record = make_record("x", "x", {"psnr": "lots"})
    with pytest.raises(StoreError, match="'lots'"):
        record_metric(record, "psnr")


def test_empty_y_metrics_raises():
    with pytest.raises(ConfigError, match="y_metrics"):
        rate_distortion_figure(sweep_records(), y_metrics=())
