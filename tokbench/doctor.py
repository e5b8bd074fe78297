"""``tokbench doctor``: what is installed, and what resolves offline.

The judge, track and extra checks walk the registries and the installed distribution's metadata, so
a plugin judge or a new extra is checked without a line here. Failing checks make the command exit
non-zero; what a core-only install may lack (optional extras, judges whose weights another package
downloads at run time) is reported as a note that does not fail.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, metadata, requires, version
from pathlib import Path

import torch
from packaging.requirements import Requirement  # a dependency of matplotlib and scikit-image

from tokbench.errors import TokbenchError
from tokbench.judges.base import Judge
from tokbench.judges.weights import WEIGHTS_DIR_ENV, WeightsSpec, locate_weights

DISTRIBUTION = "tokbench"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str


def run_checks(store_root: Path | None = None) -> list[Check]:
    """Check the runtime, the embedded dataset, the suites, tracks, judges, extras and the store."""
    from tokbench.provenance import tokbench_version

    return [
        Check("tokbench", True, tokbench_version()),
        Check("torch", True, f"{torch.__version__}; cuda available: {torch.cuda.is_available()}"),
        _embedded_check(),
        _suites_check(),
        _tracks_check(),
        *_judge_checks(),
        *_extra_checks(),
        _store_check(store_root),
    ]


def _judge_checks() -> list[Check]:
    """One check per registered judge (plugins included): where its weights resolve, or how to get them."""
    from tokbench.judges.registry import JUDGES

    checks = []
    for key in JUDGES.names():
        try:
            judge = JUDGES.get(key)
        except (TokbenchError, ImportError) as error:
            checks.append(Check(f"judge {key}", False, f"cannot be imported: {error}"))
            continue
        checks.append(_judge_check(key, judge))
    return checks


def _judge_check(key: str, judge: type[Judge]) -> Check:
    """The doctor's line for one judge class, read from its class-level metadata (nothing is built)."""
    name = f"judge {key}"
    absent = [module for module in judge.python_modules if importlib.util.find_spec(module) is None]
    needs = f"{judge.install_hint} (missing {', '.join(absent)})"
    specs = judge.weights_specs()
    if not specs:  # another package downloads the weights at run time: a note, never a failure
        if absent:
            return Check(name, True, f"not installed: {needs}; weights {judge.weights_source}")
        return Check(name, True, f"weights {judge.weights_source}")
    found = {spec.name: locate_weights(spec) for spec in specs}
    resolved = [f"{n} ({where[0]}: {where[1]})" for n, where in found.items() if where]
    missing = [spec for spec in specs if found[spec.name] is None]
    usable = not missing if judge.weights_need_all else bool(resolved)
    problems = []
    if not usable:
        problems.append("missing weights; " + _weights_hints(missing, judge.weights_need_all))
    if absent:
        problems.append(f"not installed: {needs}")
    if problems:
        return Check(name, False, "; ".join(problems))
    return Check(name, True, "; ".join(resolved))


def _weights_hints(missing: list[WeightsSpec], need_all: bool) -> str:
    hints = sorted({s.install_hint or f"put {s.filename} in ${WEIGHTS_DIR_ENV}" for s in missing})
    return (" and " if need_all else " or ").join(hints)


def _extra_checks() -> list[Check]:
    """One note per optional extra of the installed distribution: are its requirements installed?"""
    try:
        extras = metadata(DISTRIBUTION).get_all("Provides-Extra") or []
        requirements = [Requirement(line) for line in requires(DISTRIBUTION) or []]
    except PackageNotFoundError:
        return [Check("extras", True, f"{DISTRIBUTION} is not installed as a distribution; none to check")]
    checks = []
    for extra in extras:
        wanted = [
            r
            for r in requirements
            if r.marker and "extra" in str(r.marker) and r.marker.evaluate({"extra": extra})
        ]
        unmet = [problem for problem in map(_unmet, wanted) if problem]
        detail = (
            f"not installed: {', '.join(unmet)}; pip install '{DISTRIBUTION}[{extra}]'"
            if unmet
            else f"installed ({', '.join(sorted({r.name for r in wanted}))})"
        )
        checks.append(Check(f"extra {extra}", True, detail))
    return checks


def _unmet(requirement: Requirement) -> str | None:
    """Why the installed distributions do not satisfy ``requirement``, or None when they do."""
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        return requirement.name
    if not requirement.specifier.contains(installed, prereleases=True):
        return f"{requirement.name} {installed} (wants {requirement.specifier})"
    return None


def _tracks_check() -> Check:
    from tokbench.tracks import TRACKS

    try:
        names = TRACKS.names()
    except TokbenchError as error:
        return Check("tracks", False, str(error))
    return Check("tracks", True, ", ".join(names))


def _embedded_check() -> Check:
    from tokbench.data.embedded import EmbeddedDataset

    try:
        dataset = EmbeddedDataset()
        for item in dataset.items():
            item.load()
    except TokbenchError as error:
        return Check("embedded dataset", False, str(error))
    return Check("embedded dataset", True, f"{len(dataset.items())} images, sources verified by sha256")


def _suites_check() -> Check:
    from tokbench.suites import list_suites, load_suite

    names = list_suites()
    try:
        for name in names:
            load_suite(name)
    except TokbenchError as error:
        return Check("suites", False, str(error))
    return Check("suites", True, ", ".join(names))


def _store_check(store_root: Path | None) -> Check:
    from tokbench.store import default_store_root

    root = store_root or default_store_root()
    probe_dir = root if root.exists() else root.parent
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir):
            pass
    except OSError as error:
        return Check("store", False, f"{root} is not writable: {error}")
    exists = "exists" if root.exists() else f"will be created in {os.fspath(probe_dir)}"
    return Check("store", True, f"{root} ({exists})")
