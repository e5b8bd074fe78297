"""The catalog: every registry of tokbench in one place.

Models, metrics, judges, datasets, preprocessing, tracks and suites are each registered once (lazy
built-ins, decorators, and for third-party packages each registry's entry-point group,
``tokbench.<kind>``; suite folders through ``tokbench.suites``); ``tokbench list`` and the catalog
test walk them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokbench.adapters.base import ModelCard
from tokbench.adapters.registry import MODELS
from tokbench.data.preprocess import PREPROCESSORS
from tokbench.data.registry import DATASETS
from tokbench.errors import TokbenchError
from tokbench.judges.registry import JUDGES
from tokbench.metrics import METRICS
from tokbench.registry import Registry
from tokbench.suites import list_suites, load_suite
from tokbench.tracks import TRACKS

#: Kind (as ``tokbench list`` names it) → registry.
REGISTRIES: dict[str, Registry] = {
    "models": MODELS,
    "metrics": METRICS,
    "judges": JUDGES,
    "datasets": DATASETS,
    "preprocess": PREPROCESSORS,
    "tracks": TRACKS,
}
KINDS = (*REGISTRIES, "suites")


def names(kind: str) -> list[str]:
    """Every registered name of ``kind`` (plugins included); imports no model, metric or judge."""
    if kind == "suites":
        return list_suites()
    return REGISTRIES[kind].names()


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its adapter kind and cards (one per released variant), or why its class
    does not load."""

    name: str
    kind: str = ""
    cards: tuple[ModelCard, ...] = ()
    error: str = ""


def model_entries() -> list[ModelEntry]:
    """Every registered model with its ``cards()``, importing each class on its own; a class that fails
    to import (a missing optional package, a broken plugin) is listed with its error, never raised."""
    entries = []
    for name in MODELS.names():
        try:
            cls = MODELS.get(name)
            cards = tuple(cls.cards())
        except Exception as error:  # a listing must survive any plugin's import failure
            entries.append(ModelEntry(name, error=f"{type(error).__name__}: {error}"))
            continue
        entries.append(ModelEntry(name, cls.kind, cards))
    return entries


@dataclass(frozen=True)
class SuiteEntry:
    """One suite on the search path: its version, kind and track, or why it does not load."""

    name: str
    version: str = ""
    kind: str = ""
    track: str = ""
    error: str = ""


def suite_entries() -> list[SuiteEntry]:
    """Every suite on the search path, loaded (a suite that fails to load is listed with its error)."""
    entries = []
    for name in list_suites():
        try:
            suite = load_suite(name)
        except TokbenchError as error:
            entries.append(SuiteEntry(name, error=str(error)))
            continue
        entries.append(SuiteEntry(name, suite.version, suite.kind, suite.track))
    return entries
