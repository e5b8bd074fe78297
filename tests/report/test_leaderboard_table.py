"""The compact table of ``tokbench leaderboard``: ranked per protocol, headline metrics with CIs,
bits or tokens, at most 120 characters wide, model labels cut but unique."""

from __future__ import annotations

from pathlib import Path

from tokbench.records import make_record_id
from tokbench.report.leaderboard_table import (
    WIDTH,
    abbreviate_specs,
    compact_tables,
    drop_shared_arguments,
    format_compact,
    headline_keys,
)
from tokbench.store import RecordStore

COMMITTED_STORE = Path(__file__).resolve().parents[2] / "leaderboards"
INFO = {
    "psnr": {"label": "PSNR", "unit": "dB", "higher_is_better": True},
    "psnr_ci95": {"label": "PSNR 95% CI", "unit": "dB", "higher_is_better": None},
    "lpips": {"label": "LPIPS", "unit": "", "higher_is_better": False},
    "fid_count": {"label": "FID count", "unit": "", "higher_is_better": None},
    "bits_per_pixel": {"label": "bits per pixel", "unit": "", "higher_is_better": False},
    "encode_seconds_per_image": {"label": "encode time", "unit": "s/image", "higher_is_better": False},
}
RECORD_KEYS = {"psnr": "psnr", "lpips": "lpips", "bits_per_pixel": "bits-per-pixel", "fid_count": "fid"}


def record(spec: str, metrics: dict, primary: str = "psnr", source: str = "reproduced") -> dict:
    digest = "a" * 64
    return {
        "record_id": make_record_id("recon", digest, spec),
        "source": source,
        "suite": {"name": "recon", "version": "3", "primary": primary, "record_keys": RECORD_KEYS},
        "protocol_hash": digest,
        "model": {"name": spec.partition(":")[0], "spec": spec, "arguments": {}},
        "dataset": {"name": "embedded", "items_used": 4, "items_skipped": 0},
        "metrics": metrics,
        "metric_info": INFO,
        "created_at": "2026-01-01T00:00:00Z",
    }


def body_rows(table) -> list[dict[str, str]]:
    return [dict(zip(table.headers, row, strict=True)) for row in table.rows]


def test_ranked_by_the_primary_in_its_direction_with_cis_and_bits() -> None:
    records = [
        record("jpeg:quality=10", {"psnr": 25.0, "psnr_ci95": 1.25, "lpips": 0.3, "bits_per_pixel": 0.4}),
        record("jpeg:quality=90", {"psnr": 37.0, "psnr_ci95": 0.5, "lpips": 0.01, "bits_per_pixel": 2.4}),
        record("webp:quality=50", {"psnr": 31.0, "lpips": 0.05, "bits_per_pixel": 0.7, "fid_count": 4}),
    ]
    (table,) = compact_tables(records)
    assert table.headers == ["rank", "model", "PSNR dB ↑", "LPIPS ↓", "bpp"]  # no fid_count: no direction
    rows = body_rows(table)
    assert [r["model"] for r in rows] == ["jpeg:quality=90", "webp:quality=50", "jpeg:quality=10"]
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["PSNR dB ↑"] == "37±0.5" and rows[1]["PSNR dB ↑"] == "31"
    assert rows[2]["bpp"] == "0.4"
    assert "ranked by PSNR (dB), higher is better" in table.title

    by_lpips = [record(r["model"]["spec"], r["metrics"], primary="lpips") for r in records]
    (table,) = compact_tables(by_lpips)
    assert [r["model"] for r in body_rows(table)] == ["jpeg:quality=90", "webp:quality=50", "jpeg:quality=10"]
    assert table.headers[2] == "LPIPS ↓"  # the primary comes first
    by_lpips[2]["metrics"] = {**by_lpips[2]["metrics"], "lpips": 0.001}
    (table,) = compact_tables(by_lpips)
    assert body_rows(table)[0]["model"] == "webp:quality=50"


def test_reported_rows_are_never_ranked() -> None:
    records = [record("B-tok", {"psnr": 20.0}, source="reported"), record("A-tok", {"psnr": 30.0})]
    reproduced, reported = compact_tables(records)
    assert reproduced.headers[0] == "rank" and "reproduced" in reproduced.title
    assert "rank" not in reported.headers and "not ranked" in reported.title


def test_headline_keys_leave_out_rates_timings_and_undirected_keys() -> None:
    metrics = {
        "psnr": 1.0,
        "lpips": 1.0,
        "bits_per_pixel": 1.0,
        "encode_seconds_per_image": 1.0,
        "fid_count": 3,
    }
    assert headline_keys([record("x", metrics)], "psnr") == ["psnr", "lpips"]


def test_wide_tables_fit_by_cutting_labels_and_naming_what_is_left_out() -> None:
    long = "some-very-long-tokenizer-family-name:variant={},codebook=16384,resolution=256,extra=argument"
    metrics = {"psnr": 20.123456, "psnr_ci95": 1.23456, "lpips": 0.123456, "bits_per_pixel": 0.0123456}
    records = [record(long.format(v), {**metrics, "psnr": 20 + i}) for i, v in enumerate("abcdefgh")]
    text = format_compact(records, width=60)
    assert max(len(line) for line in text.splitlines()) <= 60
    (table,) = compact_tables(records, width=60)
    labels = [row[table.headers.index("model")] for row in table.rows]
    assert len(set(labels)) == len(labels)
    assert "codebook=16384,resolution=256,extra=argument" in text
    narrow = compact_tables(records, width=40)[0]
    assert any(note.startswith("  not shown (too wide)") for note in narrow.notes)


def test_abbreviated_labels_stay_unique() -> None:
    specs = [f"family:a=1,b={'x' * 30}{i}" for i in range(12)]
    labels, shared = abbreviate_specs(specs, 20)
    assert len(set(labels)) == 12 and all(len(label) <= 20 for label in labels)
    assert shared == {"family": "a=1"}
    assert abbreviate_specs(["jpeg:quality=10"], 40) == (["jpeg:quality=10"], {})
    assert drop_shared_arguments(
        ["jpeg:quality=1,subsampling=4:2:0", "jpeg:quality=2,subsampling=4:2:0"]
    ) == (
        ["jpeg:quality=1", "jpeg:quality=2"],
        {"jpeg": "subsampling=4:2:0"},
    )


def test_committed_recon_tables_fit_120_columns() -> None:
    records = RecordStore(COMMITTED_STORE).records(suite="recon")
    text = format_compact(records)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    reproduced = [t for t in compact_tables(records) if "reproduced" in t.title]
    assert reproduced and all(t.headers[:3] == ["rank", "model", "PSNR dB ↑"] for t in reproduced)
