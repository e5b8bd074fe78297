"""CSV exports of the site cannot inject spreadsheet formulas; numbers are left as they are."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from tokbench import cli
from tokbench.records import make_record_id
from tokbench.report.exports import FORMULA_STARTS, spreadsheet_safe
from tokbench.report.site import build_site
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


HOSTILE = {
    "spec": "=cmd|' /C calc'!A0",
    "name": "+family",
    "dataset": "-data|x",
    "note": "@SUM(1+1)*cmd",
}


def hostile_records() -> list[dict]:
    """A reproduced and a reported record whose spec, family, dataset and citation note are formulas."""
    records = []
    for source in ("reproduced", "reported"):
        digest = ("c" if source == "reproduced" else "d") * 64
        record = {
            "schema_version": 1,
            "record_id": make_record_id("recon", digest, HOSTILE["spec"]),
            "source": source,
            "suite": {"name": "recon", "version": "1", "config": {"metrics": [{"name": "psnr"}]}},
            "protocol_hash": digest,
            "protocol": {"source_table": HOSTILE["note"]},
            "model": {
                "name": HOSTILE["name"],
                "spec": HOSTILE["spec"],
                "arguments": {"note": HOSTILE["note"]},
            },
            "dataset": {"name": HOSTILE["dataset"], "items_used": 1, "items_skipped": 0},
            "metrics": {"psnr": -3.2},
            "created_at": "2026-01-01T00:00:00Z",
        }
        if source == "reported":
            record["citation"] = {"title": "\tpaper", "notes": [HOSTILE["note"]], "url": "https://a.example"}
        records.append(record)
    return records


def assert_no_formula_cells(text: str, where: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_STARTS):
                float(cell)  # only a plain number may start with - or +; anything else fails here
    joined = "\n".join(",".join(row) for row in rows)
    for value in HOSTILE.values():
        assert value not in joined.replace("'" + value, ""), f"{where}: {value!r} is not neutralised"
    return rows


def test_every_csv_export_neutralises_formulas_and_keeps_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = RecordStore(tmp_path / "store")
    for record in hostile_records():
        store.add(record)
    site = build_site(tmp_path / "store", tmp_path / "site").out
    exports = sorted(site.glob("*.csv"))
    assert [path.name for path in exports] == ["recon.csv", "recon@reported.csv"]
    for path in exports:
        rows = assert_no_formula_cells(path.read_text(encoding="utf-8"), path.name)
        assert "'" + HOSTILE["spec"] in rows[1] and "'" + HOSTILE["dataset"] in rows[1]
        assert rows[1][rows[0].index("psnr")] == "-3.2"
    citation = pd.read_csv(site / "recon@reported.csv", keep_default_na=False).iloc[0]["citation"]
    assert citation.startswith("'") or not citation.startswith(FORMULA_STARTS)

    assert cli.main(["leaderboard", "--store", str(tmp_path / "store"), "--format", "csv"]) == 0
    rows = assert_no_formula_cells(capsys.readouterr().out, "tokbench leaderboard --format csv")
    header, *body = rows
    assert len(body) == 2
    for row in body:
        cells = dict(zip(header, row, strict=True))
        assert cells["model"] == "'" + HOSTILE["spec"] and cells["model_name"] == "'" + HOSTILE["name"]
        assert cells["dataset"] == "'" + HOSTILE["dataset"] and float(cells["psnr"]) == -3.2
