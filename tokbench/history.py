"""A model's numbers across protocol versions, for ``tokbench leaderboard --history MODEL``.

A protocol bump never overwrites a record (the protocol hash is part of the record id), so the store
keeps every version's numbers side by side; this module lines them up, newest protocol first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import pandas as pd

from tokbench.errors import ConfigError
from tokbench.records import created_at_to_datetime
from tokbench.store import records_to_frame

HISTORY_COLUMNS = (
    "suite",
    "suite_version",
    "protocol_hash",
    "source",
    "model",
    "dataset",
    "items_used",
    "created_at",
    "record_id",
)


def model_history(records: Iterable[dict], model: str) -> pd.DataFrame:
    """One row per record whose ``model.name`` or ``model.spec`` equals ``model``, newest protocol first.

    Rows are grouped by protocol hash: the protocol whose latest record is newest comes first, and
    within a protocol rows follow suite, source and spec. A spec names one model, so matching a spec
    gives one row per suite and protocol version; a name (``jpeg``) gives every spec of that family.
    Columns are ``HISTORY_COLUMNS`` and then one float column per metric any matching record has.
    Raise ConfigError, with close names, when no record matches.
    """
    records = list(records)
    matching = [r for r in records if model in (r["model"]["name"], r["model"]["spec"])]
    if not matching:
        known = sorted({r["model"]["name"] for r in records} | {r["model"]["spec"] for r in records})
        close = difflib.get_close_matches(model, known, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        where = f" among {len(records)} records" if records else " (the store is empty)"
        raise ConfigError(f"no record of model {model!r}{where}: match a model name or a full spec{hint}")
    newest = {}
    for record in matching:
        moment = created_at_to_datetime(record["created_at"])
        key = record["protocol_hash"]
        newest[key] = max(newest.get(key, moment), moment)

    def order(record: dict) -> tuple:
        return (
            -newest[record["protocol_hash"]].timestamp(),
            record["protocol_hash"],
            record["suite"]["name"],
            record["source"],
            record["model"]["spec"],
        )

    frame = records_to_frame(sorted(matching, key=order))
    metric_columns = [column for column in frame.columns if column not in _FRAME_ONLY + HISTORY_COLUMNS]
    return frame[[*HISTORY_COLUMNS, *metric_columns]].reset_index(drop=True)


_FRAME_ONLY = ("model_name", "items_skipped")
