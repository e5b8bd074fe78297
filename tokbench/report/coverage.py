"""Tokenizer coverage: which published tokenizers tokbench runs, read from ``coverage.yaml``.

The data file lists every tokenizer row of TokBench's published table and of the seed papers'
families with its adapter spec, hub id, how the adapter is verified and its status. The README's
"Tokenizer coverage" table and the site's ``coverage.html`` are both generated from it;
``python -m tokbench.report.coverage README.md`` rewrites the README section.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import yaml

from tokbench.errors import ConfigError

VERIFIED = ("golden", "library", "none")
STATUSES = ("available", "planned", "no adapter")
#: A row without an adapter says why with one of these openings.
WHY_OPENINGS = ("no public weights", "licence", "not yet")
README_START = "<!-- coverage table: generated from tokbench/report/coverage.yaml -->"
README_END = "<!-- end of coverage table -->"
_WHERE = "tokbench/report/coverage.yaml"


@dataclass(frozen=True)
class CoverageRow:
    """One tokenizer: the TokBench rows it covers, its adapter, hub id, verification and status."""

    name: str
    tokbench: tuple[str, ...]
    adapter: str | None
    hub_id: str
    verified: str
    status: str
    why: str = ""
    note: str = ""


def load_coverage(text: str | None = None) -> list[CoverageRow]:
    """The rows of ``coverage.yaml`` (or of ``text``), checked: known fields, known verification and
    status, an adapter exactly when the status has one, a reason when it has none."""
    if text is None:
        text = resources.files("tokbench.report").joinpath("coverage.yaml").read_text(encoding="utf-8")
    entries = yaml.safe_load(text)
    if not isinstance(entries, list):
        raise ConfigError(f"{_WHERE} must be a list of rows, got {type(entries).__name__}")
    return [_row(index, entry) for index, entry in enumerate(entries)]


def _row(index: int, entry: object) -> CoverageRow:
    where = f"{_WHERE} row {index}"
    names = {f.name for f in fields(CoverageRow)}
    if not isinstance(entry, dict) or not {
        "name",
        "tokbench",
        "adapter",
        "hub_id",
        "verified",
        "status",
    } <= set(entry):
        raise ConfigError(
            f"{where}: needs name, tokbench, adapter, hub_id, verified and status, got {entry!r}"
        )
    unknown = sorted(set(entry) - names)
    if unknown:
        raise ConfigError(f"{where} ({entry['name']}): unknown fields {unknown}; known: {sorted(names)}")
    row = CoverageRow(**{**entry, "tokbench": tuple(entry["tokbench"] or ())})
    where = f"{where} ({row.name})"
    if row.verified not in VERIFIED or row.status not in STATUSES:
        raise ConfigError(f"{where}: verified must be one of {VERIFIED} and status one of {STATUSES}")
    if (row.adapter is None) != (row.status == "no adapter"):
        raise ConfigError(f"{where}: a row has an adapter exactly when its status is not 'no adapter'")
    if row.adapter is None and not row.why.startswith(WHY_OPENINGS):
        raise ConfigError(f"{where}: a row without an adapter says why, starting with one of {WHY_OPENINGS}")
    return row


def _cells(row: CoverageRow) -> list[str]:
    status = row.status + (f": {row.why}" if row.why else "")
    return [
        row.name,
        ", ".join(row.tokbench) or "–",
        row.adapter or "–",
        row.hub_id or "–",
        row.verified,
        status,
        row.note,
    ]


HEADERS = ("tokenizer", "TokBench row", "adapter", "hub id", "verified", "status", "note")


def coverage_markdown(rows: list[CoverageRow]) -> str:
    """The README table: one line per row, adapters and hub ids as code."""

    def cell(index: int, text: str) -> str:
        text = text.replace("|", "\\|")
        return f"`{text}`" if index in (2, 3) and text != "–" else text

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cell(i, c) for i, c in enumerate(_cells(row))) + " |" for row in rows]
    return "\n".join(lines)


def coverage_cells(rows: list[CoverageRow]) -> list[list[str]]:
    """The table's cells as plain text (for the site, which escapes them)."""
    return [_cells(row) for row in rows]


def readme_with_coverage(readme: str, rows: list[CoverageRow]) -> str:
    """``readme`` with the text between the coverage markers replaced by ``coverage_markdown``."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise ConfigError(f"README has no coverage markers ({README_START} … {README_END})")
    return readme[: start + len(README_START)] + "\n" + coverage_markdown(rows) + "\n" + readme[end:]


def main(argv: list[str]) -> int:
    """``python -m tokbench.report.coverage README.md``: rewrite the README's coverage table."""
    if len(argv) != 1:
        print("usage: python -m tokbench.report.coverage README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(readme_with_coverage(path.read_text(encoding="utf-8"), load_coverage()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
