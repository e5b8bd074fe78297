"""A model's numbers across protocol versions (tokbench/history.py)."""

from __future__ import annotations

import pytest

from tokbench.errors import ConfigError
from tokbench.history import HISTORY_COLUMNS, model_history
from tokbench.records import make_record_id
from tokbench.store import RecordStore

V1, V2, PAPER = "1" * 64, "2" * 64, "3" * 64


def make_record(spec: str, protocol_hash: str, version: str, day: int, metrics: dict, **extra) -> dict:
    name = spec.split(":")[0]
    return {
        "schema_version": 1,
        "record_id": make_record_id("recon", protocol_hash, spec),
        "source": extra.pop("source", "reproduced"),
        "suite": {"name": "recon", "version": version},
        "protocol_hash": protocol_hash,
        "model": {"name": name, "spec": spec},
        "dataset": {"name": "embedded", "items_used": 24, "items_skipped": 0},
        "metrics": metrics,
        "created_at": f"2026-01-{day:02d}T00:00:00Z",
        **extra,
    }


def history_records() -> list[dict]:
    return [
        make_record("jpeg:quality=30", V1, "1", 1, {"psnr": 30.0, "psnr_ci95": 1.0}),
        make_record("jpeg:quality=50", V1, "1", 2, {"psnr": 32.0}),
        make_record("jpeg:quality=30", V2, "2", 9, {"psnr": 30.5, "ssim": 0.9}),
        make_record("webp:quality=30", V2, "2", 8, {"psnr": 31.0}),
        make_record("jpeg:quality=30", PAPER, "paper", 5, {"rfid": 4.0}, source="reported"),
    ]


def test_a_spec_gives_one_row_per_protocol_newest_first():
    frame = model_history(history_records(), "jpeg:quality=30")
    assert list(frame.columns[: len(HISTORY_COLUMNS)]) == list(HISTORY_COLUMNS)
    assert list(frame["suite_version"]) == ["2", "paper", "1"]
    assert list(frame["protocol_hash"]) == [V2[:12], PAPER[:12], V1[:12]]
    assert list(frame["source"]) == ["reproduced", "reported", "reproduced"]
    assert frame["psnr"].tolist()[0] == 30.5 and frame["psnr"].tolist()[2] == 30.0
    assert frame["rfid"].tolist()[1] == 4.0 and "psnr_ci95" in frame.columns
    assert "model_name" not in frame.columns


def test_a_family_name_gives_every_spec_grouped_by_protocol():
    frame = model_history(history_records(), "jpeg")
    assert list(zip(frame["suite_version"], frame["model"], strict=True)) == [
        ("2", "jpeg:quality=30"),
        ("paper", "jpeg:quality=30"),
        ("1", "jpeg:quality=30"),
        ("1", "jpeg:quality=50"),
    ]


def test_older_protocol_records_survive_a_bump_in_the_store(tmp_path):
    store = RecordStore(tmp_path / "store")
    for record in history_records():
        assert store.add(record).status == "added"
    frame = model_history(store.records(), "jpeg:quality=30")
    assert len(frame) == 3 and set(frame["record_id"]) == {
        r["record_id"] for r in history_records() if r["model"]["spec"] == "jpeg:quality=30"
    }


def test_no_match_raises_with_close_names():
    with pytest.raises(ConfigError, match=r"no record of model 'jpg'.*did you mean 'jpeg'"):
        model_history(history_records(), "jpg")
    with pytest.raises(ConfigError, match="the store is empty"):
        model_history([], "jpeg")
