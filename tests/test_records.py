"""Record validation, identity and JSON round trips (tokbench/records.py)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tokbench.errors import StoreError
from tokbench.records import (
    created_at_to_datetime,
    make_record_id,
    metric_value,
    read_record_file,
    record_from_json,
    record_metrics,
    record_to_json,
    validate_record,
)

PROTOCOL_HASH = "0123456789abcdef" * 4
WHERE = "leaderboards/reproduced/recon-test/x.json"


def make_test_record(**overrides: Any) -> dict:
    """A valid record; ``overrides`` replace top-level fields, and record_id follows unless given."""
    record = {
        "schema_version": 1,
        "source": "reproduced",
        "suite": {"name": "recon-test", "version": "1", "config": {"metrics": ["psnr", "ssim"]}},
        "protocol_hash": PROTOCOL_HASH,
        "model": {"name": "JPEG q30", "spec": "jpeg:quality=30", "kind": "tokenizer", "weights_sha256": None},
        "dataset": {"name": "kodak", "items_requested": 24, "items_used": 23, "items_skipped": 1},
        "metrics": {"psnr": 31.25, "ssim": 0.875, "bpp": 1},
        "skipped": [{"item": "kodim01", "reason": "unreadable"}],
        "environment": {"python": "3.11", "tf32": False},
        "created_at": "2026-01-31T12:00:00Z",
        **overrides,
    }
    record.setdefault(
        "record_id", make_record_id(record["suite"]["name"], record["protocol_hash"], record["model"]["spec"])
    )
    return record


def test_make_record_id_is_the_sha256_prefix_of_the_three_parts() -> None:
    expected = hashlib.sha256(f"recon-test\n{PROTOCOL_HASH}\njpeg:quality=30".encode()).hexdigest()[:20]
    assert make_record_id("recon-test", PROTOCOL_HASH, "jpeg:quality=30") == expected
    assert (
        len(
            {
                make_record_id("recon-test", PROTOCOL_HASH, "jpeg:quality=30"),
                make_record_id("recon-other", PROTOCOL_HASH, "jpeg:quality=30"),
                make_record_id("recon-test", "f" * 64, "jpeg:quality=30"),
                make_record_id("recon-test", PROTOCOL_HASH, "jpeg:quality=31"),
            }
        )
        == 4
    )


def test_a_valid_record_passes_with_both_infinity_forms() -> None:
    validate_record(make_test_record())
    validate_record(make_test_record(metrics={"psnr": math.inf, "bpp": "-inf", "ssim": 1.0}))


DROP = object()

BAD_RECORDS = [  # (id, location, new value or DROP, field named in the message, part of the reason)
    ("missing-field", ("dataset",), DROP, "dataset", "required field is missing"),
    ("missing-nested-field", ("model", "spec"), DROP, "model.spec", "required field is missing"),
    ("metric-string", ("metrics", "psnr"), "high", "metrics.psnr", "got string 'high'"),
    ("metric-bool", ("metrics", "psnr"), True, "metrics.psnr", "got boolean True"),
    ("metric-nan", ("metrics", "psnr"), math.nan, "metrics.psnr", "NaN is not allowed"),
    ("metric-numpy", ("metrics", "psnr"), np.float32(3.0), "metrics.psnr", "float32 is not a JSON value"),
    ("metric-key", ("metrics", "PSNR"), 1.0, "metrics.PSNR", "does not match the pattern"),
    ("metrics-empty", ("metrics",), {}, "metrics", "should be non-empty"),
    ("wrong-type", ("dataset", "items_used"), "23", "dataset.items_used", "expected integer, got string"),
    ("bad-source", ("source",), "paper", "source", "expected one of ['reproduced', 'reported']"),
    ("bad-schema-version", ("schema_version",), 2, "schema_version", "expected 1, got integer 2"),
    ("list-item", ("skipped", 0, "item"), 7, "skipped[0].item", "expected string, got integer 7"),
    ("inf-outside-metrics", ("environment", "t"), math.inf, "environment.t", "only metric values"),
    ("tuple", ("environment", "t"), (1, 2), "environment.t", "tuple is not a JSON value"),
    ("wrong-record-id", ("record_id",), "0" * 20, "record_id", "does not match the record, expected"),
    ("malformed-record-id", ("record_id",), "xyz", "record_id", "does not match the pattern"),
    ("bad-timestamp", ("created_at",), "2026-01-31 12:00", "created_at", "does not match the pattern"),
    ("bad-date", ("created_at",), "2026-02-30T12:00:00Z", "created_at", "day is out of range"),
]


@pytest.mark.parametrize(
    ("location", "value", "field", "reason"),
    [case[1:] for case in BAD_RECORDS],
    ids=[case[0] for case in BAD_RECORDS],
)
def test_validate_record_names_where_field_and_reason(
    location: tuple, value: Any, field: str, reason: str
) -> None:
    record = make_test_record()
    parent = record
    for key in location[:-1]:
        parent = parent[key]
    if value is DROP:
        del parent[location[-1]]
    else:
        parent[location[-1]] = value
    with pytest.raises(StoreError) as caught:
        validate_record(record, WHERE)
    message = str(caught.value)
    assert message.startswith(f"{WHERE}: {field}: "), message
    assert reason in message
    assert "\n" not in message


def test_validate_record_rejects_a_non_object() -> None:
    with pytest.raises(StoreError, match=r"^x\.json: a record must be a JSON object, got array$"):
        validate_record([], "x.json")  # type: ignore[arg-type]


def test_infinite_metrics_round_trip_as_strings() -> None:
    record = make_test_record(metrics={"psnr": math.inf, "delta": -math.inf, "ssim": 1.0})
    text = record_to_json(record)
    assert '"psnr": "inf"' in text and '"delta": "-inf"' in text
    loaded = record_from_json(text, WHERE)
    assert loaded["metrics"] == {"psnr": "inf", "delta": "-inf", "ssim": 1.0}
    assert record_metrics(loaded) == {"psnr": math.inf, "delta": -math.inf, "ssim": 1.0}
    assert record_to_json(loaded) == text
    assert record["metrics"]["psnr"] == math.inf  # the input is not modified


def test_record_to_json_is_pretty_sorted_and_ends_with_a_newline() -> None:
    record = make_test_record()
    text = record_to_json(record)
    assert text.endswith("}\n") and text.startswith('{\n  "created_at"')
    assert json.loads(text) == record
    assert list(json.loads(text)) == sorted(record)


def test_record_to_json_rejects_nan() -> None:
    record = make_test_record(metrics={"psnr": math.nan})
    with pytest.raises(StoreError, match=r"metrics\.psnr: NaN is not allowed"):
        record_to_json(record)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"psnr": NaN', r"metrics\.psnr: NaN is not allowed in a record file"),
        ('"psnr": Infinity', r"metrics\.psnr: Infinity is not allowed in a record file"),
        ('"psnr": -Infinity', r"metrics\.psnr: -Infinity is not allowed in a record file"),
        ('"psnr": 1e999', r"metrics\.psnr: 1e999 is not allowed in a record file"),
        ('"psnr": 1.0, "psnr": 2.0', r"key 'psnr' appears twice"),
    ],
)
def test_record_from_json_rejects_non_finite_literals_and_duplicate_keys(text: str, message: str) -> None:
    good = record_to_json(make_test_record(metrics={"psnr": 1.0}))
    bad = good.replace('"psnr": 1.0', text)
    assert bad != good
    with pytest.raises(StoreError, match=rf"^{WHERE}: {message}"):
        record_from_json(bad, WHERE)


def test_record_from_json_reports_syntax_errors_and_schema_errors() -> None:
    with pytest.raises(StoreError, match=rf"^{WHERE}: invalid JSON at line 1 column 2"):
        record_from_json("{oops", WHERE)
    record = make_test_record()
    del record["metrics"]
    with pytest.raises(StoreError, match=rf"^{WHERE}: metrics: required field is missing$"):
        record_from_json(json.dumps(record), WHERE)


def test_read_record_file_names_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(StoreError, match=rf"^{path}: cannot read record file"):
        read_record_file(path)


def test_metric_value_accepts_numbers_and_infinity_strings_only() -> None:
    assert metric_value(3) == 3.0 and isinstance(metric_value(3), float)
    assert metric_value("inf") == math.inf and metric_value("-inf") == -math.inf
    for bad in ("Infinity", math.nan, True, None):
        with pytest.raises(StoreError, match="is not a number, 'inf' or '-inf'"):
            metric_value(bad)  # type: ignore[arg-type]


def test_created_at_to_datetime_honours_offsets_and_fractions() -> None:
    utc = created_at_to_datetime("2026-01-31T12:00:00Z")
    assert utc == datetime(2026, 1, 31, 12, tzinfo=timezone.utc)
    assert created_at_to_datetime("2026-01-31T13:30:00+01:30") == utc
    later = created_at_to_datetime("2026-01-31T12:00:00.1234567Z")
    assert later - utc == timedelta(microseconds=123456)
    for bad in ("2026-01-31T12:00:00", "2026-01-31T12:00:00Z\n", "2026-01-31T25:00:00Z", 5):
        with pytest.raises(StoreError):
            created_at_to_datetime(bad)  # type: ignore[arg-type]


def test_validation_does_not_change_the_record() -> None:
    record = make_test_record(metrics={"psnr": math.inf})
    before = copy.deepcopy(record)
    validate_record(record)
    record_to_json(record)
    assert record == before
