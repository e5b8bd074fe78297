"""The catalog: one place that lists every registry, the entry-point groups, and what ``list`` shows."""

from __future__ import annotations

import pytest

from tokbench import catalog, cli
from tokbench.suites import SUITE_ENTRY_POINT_GROUP


def test_the_cli_lists_every_kind_of_the_catalog() -> None:
    assert set(cli.LIST_KINDS) == set(catalog.KINDS)


def test_every_kind_extends_through_an_entry_point_group() -> None:
    groups = {kind: registry.entry_point_group for kind, registry in catalog.REGISTRIES.items()}
    assert {**groups, "suites": SUITE_ENTRY_POINT_GROUP} == {
        kind: f"tokbench.{kind}" for kind in catalog.KINDS
    }


@pytest.mark.parametrize("kind", catalog.KINDS)
def test_listing_names_the_built_ins(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", kind]) == 0
    listed = capsys.readouterr().out.split()
    assert listed and set(catalog.names(kind)) <= set(listed)


def test_every_suite_on_the_path_loads_with_its_track() -> None:
    entries = catalog.suite_entries()
    assert [e.error for e in entries if e.error] == []
    assert {e.name: e.track for e in entries}["pfid"] == "recon"
