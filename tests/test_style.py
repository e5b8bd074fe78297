"""Checkable conventions from STYLE.md: metrics do no I/O, no asserts on user input, small modules,
registry and record keys that explain themselves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tokbench"
FORBIDDEN_IN_METRICS = {"open", "pickle", "urllib", "requests", "socket", "np.load", "torch.load", "Path"}
MAX_LINES = 500


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _python_files(PACKAGE / "metrics"), ids=lambda p: p.name)
def test_metrics_do_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            used.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if getattr(node, "module", None) else [])
            used.update(n.split(".")[0] for n in names)
    assert not used & FORBIDDEN_IN_METRICS, f"{path.name} uses {sorted(used & FORBIDDEN_IN_METRICS)}"


@pytest.mark.parametrize("path", _python_files(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_assert_and_small_modules(path: Path) -> None:
    text = path.read_text()
    assert not any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(text))), f"assert in {path}"
    assert len(text.splitlines()) <= MAX_LINES, f"{path} has over {MAX_LINES} lines: split it by role"
    assert not re.search(r"^\s*global\s", text, re.M), f"module-global toggle in {path}"


def test_registry_keys_are_kebab_case() -> None:
    from tokbench.adapters.registry import MODELS
    from tokbench.data.preprocess import PREPROCESSORS
    from tokbench.judges.registry import JUDGES
    from tokbench.metrics import METRICS

    for registry in (MODELS, METRICS, JUDGES, PREPROCESSORS):
        for key in registry.names():
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key), f"{registry.kind} key {key!r}"
