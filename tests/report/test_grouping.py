"""One grouping of records by protocol (tokbench/report/grouping.py) for the report and the site, and
the import structure of ``tokbench.report``: no cycles, no private names taken from a sibling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tokbench.report import grouping, page, site
from tokbench.report.grouping import protocol_groups, version_key

REPORT = Path(grouping.__file__).parent


def record(suite: str, digest: str, version: str, day: int, spec: str = "m") -> dict:
    return {
        "suite": {"name": suite, "version": version},
        "protocol_hash": digest * 64,
        "created_at": f"2026-01-{day:02d}T00:00:00Z",
        "model": {"spec": spec},
    }


def test_groups_split_by_suite_and_hash_latest_version_first():
    records = [
        record("recon", "a", "9", day=9, spec="old"),
        record("recon", "b", "10", day=1),
        record("pfid", "b", "10", day=2),  # the same hash in another suite is another group
        record("recon", "a", "9", day=3, spec="older"),
    ]
    groups = protocol_groups(records)
    assert [(g[0]["suite"]["name"], g[0]["protocol_hash"][0], len(g)) for g in groups] == [
        ("pfid", "b", 1),  # version 10, newest
        ("recon", "b", 1),
        ("recon", "a", 2),
    ]
    assert [r["model"]["spec"] for r in groups[2]] == ["old", "older"]  # store order kept
    assert version_key("10") > version_key("9") and version_key("1.10") > version_key("1.9")


def test_report_and_site_share_the_grouping():
    assert page.protocol_groups is protocol_groups and site.protocol_groups is protocol_groups
    for module in (page, site):
        defined = {
            n.name
            for n in ast.walk(ast.parse(Path(module.__file__).read_text()))
            if isinstance(n, ast.FunctionDef)
        }
        assert not {name for name in defined if "group" in name}, f"{module.__name__} groups records itself"


def _report_imports(path: Path) -> list[tuple[str, str]]:
    """(sibling module, imported name) of every ``from tokbench.report.X import name`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tokbench.report."):
            found += [(node.module.removeprefix("tokbench.report."), alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", sorted(REPORT.glob("*.py")), ids=lambda p: p.name)
def test_no_private_names_cross_report_modules(path: Path):
    private = [f"{module}.{name}" for module, name in _report_imports(path) if name.startswith("_")]
    assert not private, f"{path.name} imports private {private}"


def test_report_modules_import_each_other_without_cycles():
    graph = {path.stem: {module for module, _ in _report_imports(path)} for path in REPORT.glob("*.py")}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    cycles = [name for name in graph if reaches(name, name, {name})]
    assert not cycles, f"import cycles through {cycles}"
