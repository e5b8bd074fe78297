"""The site marks which reproduced protocol, if any, each reported source is comparable with."""

from __future__ import annotations

import json
from pathlib import Path

from tokbench.records import make_record_id
from tokbench.report.site import build_site
from tokbench.store import RecordStore

V3_HASH = "3" * 64
CLEAN_HASH = "c" * 64
REPORTED_HASH = "e" * 64
EVIL = "<script>alert(1)</script>"
FACTS = {
    "fid": EVIL,
    "resize": "tf1-bilinear",
    "dataset": "imagenet-1k-val",
    "images": 50000,
    "preprocess": "imagenet-center-crop",
    "quantization": "uint8-round-half-even",
}


def reproduced(suite: str, version: str, digest: str, resize: str) -> dict:
    """A reproduced recon-family record on ImageNet val 50k with the given Inception resize."""
    spec = "jpeg:quality=50"
    return {
        "schema_version": 1,
        "record_id": make_record_id(suite, digest, spec),
        "source": "reproduced",
        "suite": {"name": suite, "version": version, "config": {}},
        "protocol_hash": digest,
        "protocol": {
            "dataset": {"name": "imagenet-1k-val", "items_requested": 50000},
            "preprocess": {"name": "imagenet-center-crop", "resolution": 256},
            "quantization": "uint8-round-half-even",
            "judges": {"inception": {"name": "inception-v3-tf", "resize": resize}},
        },
        "model": {"name": "jpeg", "spec": spec, "kind": "tokenizer", "arguments": {}, "weights_sha256": None},
        "dataset": {
            "name": "imagenet-1k-val",
            "items_requested": 50000,
            "items_used": 50000,
            "items_skipped": 0,
        },
        "metrics": {"psnr": 30.0, "fid": 2.0},
        "skipped": [],
        "environment": {"device": "cpu"},
        "created_at": "2026-01-02T00:00:00Z",
    }


def reported() -> dict:
    """A reported rFID row whose source states the facts of ``FACTS``."""
    protocol = {
        "kind": "reported",
        "suite": "recon",
        "source_table": "tokenizers_imagenet256.csv",
        "source_name": "acme/tok README.md",
        "facts": FACTS,
        "resolution": 256,
    }
    return {
        "schema_version": 1,
        "record_id": make_record_id("recon", REPORTED_HASH, "Tok-A"),
        "source": "reported",
        "suite": {"name": "recon", "version": "paper", "config": {"reported": True, **protocol}},
        "protocol_hash": REPORTED_HASH,
        "protocol": protocol,
        "model": {
            "name": "Tok-A",
            "spec": "Tok-A",
            "kind": "tokenizer",
            "arguments": {},
            "weights_sha256": None,
        },
        "dataset": {"name": "imagenet-1k-val"},
        "metrics": {"rfid": 2.5},
        "citation": {"title": "acme/tok README.md", "table": "tokenizers_imagenet256.csv", "row": 2},
        "created_at": "2026-01-01T00:00:00Z",
    }


def build(tmp_path: Path, records: list[dict]) -> Path:
    store = tmp_path / "store"
    for record in records:
        RecordStore(store).add(record)
    return build_site(store, tmp_path / "site").out


def test_a_matching_reproduced_protocol_is_named_and_one_with_another_resize_is_not(tmp_path: Path):
    site = build(
        tmp_path,
        [
            reported(),
            reproduced("recon", "3", V3_HASH, "tf1-bilinear"),
            reproduced("recon-clean", "1", CLEAN_HASH, "clean"),
        ],
    )
    page = (site / "recon.html").read_text(encoding="utf-8")
    v3 = f"recon v3 · {V3_HASH[:12]}"
    assert f"comparable with: {v3} (tf1-bilinear, imagenet-1k-val, 50000 images)" in page
    assert "recon-clean v1" not in page.split('class="reported-section"')[1]  # clean resize: not comparable
    assert '<button type="button">comparable with</button>' in page and f"<td>{v3}</td>" in page
    export = json.loads((site / "recon@reported.json").read_text(encoding="utf-8"))
    assert [row["comparable_with"] for row in export] == [v3]
    record_page = (site / "records" / f"{reported()['record_id']}.html").read_text(encoding="utf-8")
    assert "<h2>Protocol facts</h2>" in record_page and "imagenet-center-crop" in record_page
    assert f"comparable with: {v3}" in record_page
    assert EVIL not in page + record_page and "&lt;script&gt;alert(1)&lt;/script&gt;" in record_page


def test_without_a_match_the_reason_is_shown_for_each_reproduced_protocol(tmp_path: Path):
    site = build(tmp_path, [reported(), reproduced("recon-clean", "1", CLEAN_HASH, "clean")])
    page = (site / "recon.html").read_text(encoding="utf-8")
    assert "not comparable with any reproduced protocol here:" in page
    assert (
        f"<li>recon-clean v1 · {CLEAN_HASH[:12]}: resize tf1-bilinear in the source, clean reproduced</li>"
        in page
    )
    assert "<td>none</td>" in page
    unstated = reported()
    unstated["protocol"]["facts"] = {**FACTS, "images": "unknown"}
    lonely = build(tmp_path / "alone", [unstated])
    text = (lonely / "recon.html").read_text(encoding="utf-8")
    assert "<li>no reproduced protocol measures recon in this store</li>" in text
    assert "<li>the source does not state: images</li>" in text
