"""Turning a measured ``RunOutcome`` into a leaderboard record, and reusing or storing records.

Every track (recon, gen, tokbench, prune, semantic) builds its record here so that all records share
one shape: suite, protocol and its hash, model, dataset counts, metrics, skips, run options,
environment and timings. Track-specific details go under ``extra`` keys at the top level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tokbench.adapters.registry import BuiltModel
from tokbench.metrics.info import declared_metric_info
from tokbench.provenance import environment, protocol_hash, utc_now
from tokbench.records import make_record_id, record_metrics
from tokbench.store import AddResult, RecordStore, records_to_frame
from tokbench.suites import SuiteConfig
from tokbench.tracks.base import RunOptions, RunOutcome
from tokbench.tracks.scoring import resolve_device

RECORD_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunResult:
    """The outcome of one evaluation: flat metrics, the full record, and what the store did."""

    metrics: dict[str, float]
    record: dict[str, Any]
    stored: AddResult | None = None

    def to_frame(self) -> pd.DataFrame:
        """A one-row DataFrame of the record (model, dataset, protocol, one column per metric)."""
        return records_to_frame([self.record])


def open_store(store: str | Path | None) -> RecordStore | None:
    """The leaderboard store at ``store``, or None when results are not stored."""
    return RecordStore(Path(store)) if store is not None else None


@dataclass(frozen=True)
class RecordSlot:
    """Where a run's record goes: its protocol hash, record id and store, and what the store holds.

    ``replaces`` is set when the stored record exists but does not satisfy this run (a record with
    skipped items, asked for under ``--on-error fail``): the new record replaces it.
    """

    digest: str
    record_id: str
    store: RecordStore | None
    existing: RunResult | None
    replaces: bool = False


def claim_record(
    suite_name: str,
    protocol: dict[str, Any],
    model_spec: str,
    store: str | Path | None,
    force: bool,
    options: RunOptions | None = None,
) -> RecordSlot:
    """Hash ``protocol``, name the record, open ``store``, and find a stored result to reuse (unless
    ``force``): every track starts its run with this, so identical runs are never repeated.

    The error policy is part of "identical": under ``--on-error fail`` a stored record that skipped
    items is not reused (that run is done again, and replaces it only if it skips nothing)."""
    digest = protocol_hash(protocol)
    record_id = make_record_id(suite_name, digest, model_spec)
    record_store = open_store(store)
    existing = existing_result(record_store, record_id, force)
    if existing is not None and options is not None and not reusable(existing.record, options):
        return RecordSlot(digest, record_id, record_store, None, replaces=True)
    return RecordSlot(digest, record_id, record_store, existing)


def reusable(record: dict[str, Any], options: RunOptions) -> bool:
    """Whether a stored record answers a run with ``options``: under ``fail`` only one that skipped
    nothing does (a ``fail`` run never returns a record with skipped items)."""
    return options.on_error != "fail" or not (record.get("skipped") or record["dataset"]["items_skipped"])


def existing_result(record_store: RecordStore | None, record_id: str, force: bool) -> RunResult | None:
    """The stored result for ``record_id`` when it exists and ``force`` is not set (nothing re-runs)."""
    if record_store is None or force:
        return None
    existing = record_store.find(record_id, "reproduced")
    if existing is None:
        return None
    return RunResult(
        metrics=record_metrics(existing),
        record=existing,
        stored=AddResult(status="exists", path=record_store.path_for(existing), record_id=record_id),
    )


def store_result(record_store: RecordStore | None, record: dict[str, Any], force: bool) -> RunResult:
    """Add ``record`` to the store (rank 0 only under torchrun) and wrap it as a ``RunResult``."""
    is_main = int(os.environ.get("RANK", "0")) == 0
    stored = record_store.add(record, force=force) if record_store is not None and is_main else None
    return RunResult(metrics=record_metrics(record), record=record, stored=stored)


def build_record(
    record_id: str,
    suite: SuiteConfig,
    digest: str,
    protocol: dict[str, Any],
    built: BuiltModel,
    outcome: RunOutcome,
    options: RunOptions,
) -> dict[str, Any]:
    """The record of one run; ``protocol["dataset"]`` names the data, ``outcome.extra`` adds the
    track's top-level sections, ``outcome.metric_info`` each metric key's label, unit and direction."""
    dataset = protocol.get("dataset") or {}
    record = {
        "schema_version": RECORD_SCHEMA_VERSION,
        "record_id": record_id,
        "source": "reproduced",
        "suite": {
            "name": suite.name,
            "version": suite.version,
            "config": suite.to_dict(),
            "primary": suite.primary,
            "record_keys": suite.record_keys(),
        },
        "protocol_hash": digest,
        "protocol": protocol,
        "model": {
            "name": built.name,
            "spec": built.spec,
            "kind": built.adapter.kind,
            "arguments": built.arguments,
            "adapter_version": type(built.adapter).version,
            "weights_sha256": built.adapter.weights_sha256,
            **({"source": built.source} if built.source is not None else {}),
        },
        "dataset": {
            "name": dataset.get("name", "(none)"),
            "manifest_hash": dataset.get("manifest_hash"),
            "items_requested": outcome.items_requested,
            "items_used": outcome.items_used,
            "items_skipped": len(outcome.skipped),
        },
        "preprocess": protocol.get("preprocess") or {},
        "metrics": outcome.metrics,
        "metric_info": _metric_info(outcome),
        "not_applicable": outcome.not_applicable,
        "skipped": outcome.skipped,
        "run": {
            "seed": options.seed,
            "batch_size": options.batch_size,
            "limit": options.limit,
            "on_error": options.on_error,
            "num_workers": options.num_workers,
        },
        "environment": environment(resolve_device(options.device)),
        "timings": outcome.timings,
        "created_at": utc_now(),
    }
    clashes = sorted(set(outcome.extra) & set(record))
    if clashes:
        raise ValueError(f"extra record keys {clashes} would overwrite standard record fields")
    record.update(outcome.extra)
    return record


def _metric_info(outcome: RunOutcome) -> dict[str, dict[str, Any]]:
    """The metrics' own info, and for keys a track measured itself (timings, token counts) the info
    ``tokbench.metrics.info`` declares for them."""
    measured = [key for key in outcome.metrics if key not in outcome.metric_info]
    return {**declared_metric_info(measured), **outcome.metric_info}
