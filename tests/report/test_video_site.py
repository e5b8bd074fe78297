"""Video on the site: per-frame rate–distortion and rFVD against bits per pixel per frame (codecs and
tokenizers as separate series), TokBench-Video bucket bars beside the reported rows, escaping."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tokbench.records import make_record_id
from tokbench.report.figures import record_metric
from tokbench.report.site import build_site
from tokbench.report.video_figures import model_role, video_rate_figures
from tokbench.store import RecordStore

LEADERBOARDS = Path(__file__).resolve().parents[2] / "leaderboards"
TOKENIZER_SPEC = "cosmos-vae:variant=ci8x8"
EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def committed(source: str, suite: str) -> list[dict]:
    """The committed records of one suite (the real runs behind the site)."""
    return [json.loads(p.read_text()) for p in sorted((LEADERBOARDS / source / suite).glob("*.json"))]


@pytest.fixture(scope="module")
def video_records() -> list[dict]:
    """The committed codec records of the latest video-recon protocol, plus two tokenizer records
    made from codec records (renamed; their numbers are only plotted, never claimed)."""
    records = committed("reproduced", "video-recon")
    latest = max(records, key=lambda r: r["created_at"])["protocol_hash"]
    records = [r for r in records if r["protocol_hash"] == latest]
    h264 = sorted((r for r in records if r["model"]["name"] == "h264"), key=lambda r: r["created_at"])
    assert len(h264) >= 4, "the committed store should hold an H.264 CRF sweep"
    made = []
    for spec, source in ((TOKENIZER_SPEC, h264[0]), (EVIL, h264[1])):
        name = spec.split(":")[0]
        model = {**source["model"], "name": name, "spec": spec, "arguments": {}}
        made.append({**source, "model": model, "record_id": make_record_id("video-recon", latest, spec)})
    return records + made


def traces(figure) -> dict[tuple[str, str], object]:
    """(legend name, y axis) → trace."""
    return {(t.name, t.yaxis): t for t in figure.data}


def test_roles_come_from_the_registered_adapters_cards() -> None:
    assert {model_role(n) for n in ("h264", "h265", "av1", "video-identity", "video-resize")} == {"codec"}
    assert model_role("cosmos-vae") == "tokenizer"
    assert model_role("not-a-registered-model") == "tokenizer"


def test_per_frame_figure_has_one_series_per_sweep_with_the_records_points(video_records) -> None:
    (title, fidelity), (fvd_title, fvd) = video_rate_figures(video_records)
    assert "per-frame" in title and "rFVD" in fvd_title
    shown = traces(fidelity)
    for name in {r["model"]["name"] for r in video_records if model_role(r["model"]["name"]) == "codec"}:
        members = [r for r in video_records if r["model"]["name"] == name]
        for metric, axis in (("frame_psnr", "y"), ("frame_ssim", "y2"), ("frame_lpips", "y3")):
            points = sorted(
                (record_metric(r, "frame_bits_per_pixel"), record_metric(r, metric))
                for r in members
                if math.isfinite(record_metric(r, metric))
            )
            if not points:
                continue
            trace = shown[(f"codec: {name}", axis)]
            assert list(zip(trace.x, trace.y, strict=True)) == points
            assert trace.line.dash == "solid"
    tokenizer = shown[("tokenizer: cosmos-vae", "y")]
    assert tokenizer.line.dash == "dot" and len(tokenizer.x) == 1
    assert ("codec: video-identity", "y") not in shown  # infinite PSNR: annotated, not drawn
    assert ("codec: video-identity", "y2") in shown
    notes = [a.text for a in fidelity.layout.annotations if "not shown" in a.text]
    assert notes == ["1 record with frame_psnr = inf not shown"]
    rfvd = traces(fvd)
    h264 = sorted(
        (r for r in video_records if r["model"]["name"] == "h264"), key=lambda r: r["model"]["spec"]
    )
    expected = sorted((record_metric(r, "frame_bits_per_pixel"), record_metric(r, "rfvd")) for r in h264)
    assert list(zip(rfvd[("codec: h264", "y")].x, rfvd[("codec: h264", "y")].y, strict=True)) == expected
    assert {n for n, _ in rfvd} >= {"codec: h264", "tokenizer: cosmos-vae", "Pareto front"}


def test_no_video_figure_without_two_rated_records(video_records) -> None:
    assert video_rate_figures(video_records[:1]) == []
    image_like = [{**r, "metrics": {"psnr": 30.0, "bits_per_pixel": 1.0}} for r in video_records[:3]]
    assert video_rate_figures(image_like) == []


def tokbench_video_record() -> dict:
    """A reproduced tokbench-video record in the track's key shape (``t_acc_<side>_<bucket>``)."""
    metrics = {
        f"{m}_{side}_{b}": (i + 1) / 4
        for m in ("t_acc", "t_ned", "f_sim")
        for side in (256, 480)
        for i, b in enumerate(("small", "medium", "large", "mean"))
    }
    spec = EVIL
    return {
        "schema_version": 1,
        "record_id": make_record_id("tokbench-video", "d" * 64, spec),
        "source": "reproduced",
        "suite": {"name": "tokbench-video", "version": "1", "config": {}},
        "protocol_hash": "d" * 64,
        "protocol": {"dataset": {"name": "tokbench-video"}},
        "model": {
            "name": spec,
            "spec": spec,
            "kind": "video-tokenizer",
            "arguments": {},
            "weights_sha256": None,
        },
        "dataset": {"name": "tokbench-video", "items_requested": 3, "items_used": 3, "items_skipped": 0},
        "metrics": metrics,
        "skipped": [],
        "environment": {"torch": "2.4", "device": "cpu"},
        "created_at": "2026-01-02T00:00:00Z",
    }


@pytest.fixture(scope="module")
def site(video_records, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    store = RecordStore(root)
    for record in [*video_records, tokbench_video_record(), *committed("reported", "tokbench-video")]:
        store.add(record)
    return build_site(root, tmp_path_factory.mktemp("out") / "site").out


def page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


def figures_of(text: str) -> list[dict]:
    return [json.loads(b) for b in re.findall(r'class="plotly-figure"[^>]*>(.*?)</script>', text, re.DOTALL)]


def test_video_recon_page_draws_both_video_figures(site: Path) -> None:
    text = page(site, "video-recon.html")
    assert "reproduced: per-frame fidelity vs bits per pixel per frame</h3>" in text
    assert "reproduced: rFVD vs bits per pixel per frame</h3>" in text
    names = {t.get("name") for f in figures_of(text) for t in f["data"]}
    assert {"codec: h264", "codec: h265", "codec: av1", "tokenizer: cosmos-vae"} <= names


def test_tokbench_video_page_has_bucket_bars_beside_the_reported_rows(site: Path) -> None:
    text = page(site, "tokbench-video.html")
    assert "Reproduced beside reported" in text and "256px: reproduced beside reported" in text
    bars = [t for f in figures_of(text) for t in f["data"] if t["type"] == "bar"]
    assert {t["name"] for t in bars} == {"small", "medium", "large"}
    labels = {label for t in bars for label in t["x"]}
    reported = {r["model"]["name"] for r in committed("reported", "tokbench-video")}
    assert {f"{name} · reported" for name in reported} <= labels
    assert f"{EVIL_ESCAPED} · reproduced" in labels


def test_model_names_are_escaped_on_the_video_pages(site: Path) -> None:
    for name in ("video-recon.html", "tokbench-video.html"):
        text = page(site, name)
        assert EVIL not in text and EVIL.replace("/", "\\/") not in text
        assert "alert(1)" in text  # the name is there, escaped
    names = {t.get("name") for f in figures_of(page(site, "video-recon.html")) for t in f["data"]}
    assert f"tokenizer: {EVIL_ESCAPED}" in names


def test_video_table_puts_bits_after_the_fidelity_columns_and_timings_last(site: Path) -> None:
    table = re.search(
        r'<table class="[^"]*" id="board-video-recon">(.*?)</table>',
        page(site, "video-recon.html"),
        re.DOTALL,
    )
    headers = re.findall(r'<button type="button">(.*?)</button>', table.group(1))
    position = {label: i for i, label in enumerate(headers)}
    psnr = next(i for label, i in position.items() if label.startswith("frame_psnr"))
    bits = next(i for label, i in position.items() if label.startswith("frame_bits_per_pixel"))
    encode = next(i for label, i in position.items() if label.startswith("encode_seconds_per_frame"))
    assert psnr < bits < position["family"] < encode
