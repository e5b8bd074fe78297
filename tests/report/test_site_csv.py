"""CSV exports of the site cannot inject spreadsheet formulas; numbers are left as they are."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tokbench.records import make_record_id
from tokbench.report.site import build_site
from tokbench.report.site_html import spreadsheet_safe
from tokbench.store import RecordStore

FORMULA = '=HYPERLINK("http://evil.example","x")'


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (FORMULA, "'" + FORMULA),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("-inf", "-inf"),
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("jpeg:quality=30", "jpeg:quality=30"),
        ("", ""),
        (-2.0, -2.0),
        (None, None),
    ],
)
def test_spreadsheet_safe(cell: object, expected: object) -> None:
    assert spreadsheet_safe(cell) == expected


def test_exported_csv_is_guarded(tmp_path: Path) -> None:
    digest = "c" * 64
    record = {
        "schema_version": 1,
        "record_id": make_record_id("recon", digest, FORMULA),
        "source": "reproduced",
        "suite": {"name": "recon", "version": "1", "config": {"metrics": [{"name": "psnr"}]}},
        "protocol_hash": digest,
        "model": {"name": "@family", "spec": FORMULA, "arguments": {}},
        "dataset": {"name": "-data", "items_used": 1, "items_skipped": 0},
        "metrics": {"psnr": -1.0},
        "created_at": "2026-01-01T00:00:00Z",
    }
    RecordStore(tmp_path / "store").add(record)
    site = build_site(tmp_path / "store", tmp_path / "site").out
    row = pd.read_csv(site / "recon.csv", keep_default_na=False).iloc[0]
    assert row["model"] == "'" + FORMULA and row["model_name"] == "'@family" and row["dataset"] == "'-data"
    assert float(row["psnr"]) == -1.0
