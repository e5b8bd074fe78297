"""The import layers of ``tokbench``: a package imports only from layers below it, and no module cycles.

Every ``import tokbench.x`` / ``from tokbench.x import y`` counts, module-level or inside a function.
Layers, bottom up (STYLE.md §14): hashing, files, errors, tensors and vocabularies; data, judges and
metrics; the suite families' own code; tracks; the store; records, reports and the site; the API,
``doctor`` and the CLI.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "tokbench"

#: Each unit (a sub-package or a top-level module of tokbench) by layer, bottom first.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "errors hashing tensors",
        "registry distributed flops vocabulary provenance files",
        "adapters data judges records comparability",
        "metrics hub features",
        "models perturb stats_io suites",
        "gen semantic textface pruning file_fid",
        "tracks",
        "store catalog",
        "recording history reported",
        "evaluator report",
        "api doctor cli_files",
        "cli __init__",
    )
)
LAYER_OF = {unit: index for index, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, set[str]]:
    """tokbench module → the tokbench modules it imports (a ``from m import name`` of a submodule
    counts as importing the submodule)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [name if name in modules else node.module for name in names]
            else:
                continue
            graph[module].update(t for t in targets if t in modules and t != module)
    return graph


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYER_OF), f"give these a layer in LAYERS: {sorted(units - set(LAYER_OF))}"


def test_packages_import_only_from_lower_layers() -> None:
    wrong = sorted(
        f"{module} imports {target} ({_unit(module)} is layer {LAYER_OF[_unit(module)]}, "
        f"{_unit(target)} is layer {LAYER_OF[_unit(target)]})"
        for module, targets in _imports().items()
        for target in targets
        if _unit(module) != _unit(target) and LAYER_OF[_unit(target)] >= LAYER_OF[_unit(module)]
    )
    assert not wrong, "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_imports()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("unit", ["metrics", "judges", "data"])
def test_measurement_layers_never_import_tracks_or_the_store(unit: str) -> None:
    above = {"tracks", "store", "recording", "evaluator", "api", "cli", "report"}
    imported = {_unit(t) for m, targets in _imports().items() if _unit(m) == unit for t in targets}
    assert not imported & above
