"""The tokenizer coverage data: every TokBench row is covered, adapters exist, the README is generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokbench import catalog
from tokbench.adapters.registry import MODELS
from tokbench.adapters.spec import coerce_arguments, parse_model_spec
from tokbench.errors import ConfigError
from tokbench.report.coverage import coverage_markdown, load_coverage, readme_with_coverage

REPO = Path(__file__).resolve().parents[2]
ROWS = load_coverage()


def test_every_tokenizer_row_of_the_reported_tokbench_table_is_covered() -> None:
    published = {
        json.loads(path.read_text(encoding="utf-8"))["model"]["name"]
        for path in (REPO / "leaderboards" / "reported" / "tokbench").glob("*.json")
    }
    assert len(published) >= 22
    covered = {name for row in ROWS for name in row.tokbench}
    assert published - covered == set(), "add these TokBench rows to tokbench/report/coverage.yaml"
    assert covered - published == set(), "these coverage rows name no TokBench row"


def test_the_seed_families_are_covered() -> None:
    names = " ".join(row.name for row in ROWS)
    for family in ("LlamaGen", "VAR", "Open-MAGVIT2", "DC-AE", "Chameleon", "Janus", "Emu3", "UniTok"):
        assert family in names
    for family in ("TokenFlow", "MaskBit", "VA-VAE", "FlexTok", "One-D-Piece", "Cosmos"):
        assert family in names


def test_every_adapter_not_marked_planned_is_registered_and_takes_its_arguments() -> None:
    registered = set(catalog.names("models"))
    for row in ROWS:
        if row.adapter is None or row.status == "planned":
            continue
        parsed = parse_model_spec(row.adapter)
        assert parsed.target in registered, f"{row.name}: {row.adapter} is not registered; mark it planned"
        coerce_arguments(MODELS.get(parsed.target), parsed.raw_args, row.adapter)


def test_available_rows_agree_with_their_adapter_cards() -> None:
    cards = {card.spec: card for entry in catalog.model_entries() for card in entry.cards}
    checked = 0
    for row in ROWS:
        if row.status == "available" and row.adapter in cards:
            card = cards[row.adapter]
            assert row.hub_id == card.hub_id, row.name
            assert card.verification.startswith(row.verified), row.name
            checked += 1
    assert checked >= 8


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert coverage_markdown(ROWS) in readme
    assert readme_with_coverage(readme, ROWS) == readme, "run: python -m tokbench.report.coverage README.md"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{name: X, tokbench: [], adapter: null, hub_id: '', verified: none, status: 'no adapter'}",
            "says why",
        ),
        (
            "{name: X, tokbench: [], adapter: x, hub_id: '', verified: none, status: 'no adapter'}",
            "exactly when",
        ),
        (
            "{name: X, tokbench: [], adapter: x, hub_id: '', verified: maybe, status: planned}",
            "verified must",
        ),
        (
            "{name: X, tokbench: [], adapter: x, hub_id: '', verified: none, status: planned, url: y}",
            "unknown",
        ),
    ],
)
def test_malformed_rows_are_refused(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_coverage(f"- {entry}")
