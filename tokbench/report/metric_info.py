"""What records say about their metric keys: label, unit, better direction, and the ranking metric.

A record written by the evaluator carries ``metric_info`` (from the metric classes) and names its
suite's primary key; older records and reported ones may not, and then the key's declaration
(``tokbench.metrics.info.key_info``) is used. Reports never keep their own list of directions.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokbench.errors import StoreError
from tokbench.metrics.base import OutputInfo
from tokbench.metrics.info import key_info
from tokbench.records import metric_value

#: The ranking key of records whose suite names no primary (stored before suites named one).
DEFAULT_PRIMARY = {"recon": "psnr", "tokbench": "t_acc_256_mean", "pfid": "pfid", "gen": "gfid"}


def carried_info(record: dict, key: str) -> OutputInfo | None:
    """The info ``record["metric_info"]`` carries for ``key``, or None; a malformed entry raises."""
    where = f"record {record.get('record_id', '?')}: metric_info"
    table = record.get("metric_info") or {}
    if not isinstance(table, dict):
        raise StoreError(f"{where} must be an object keyed by metric key, got {table!r}")
    entry = table.get(key)
    if entry is None:
        return None
    if not _is_info_entry(entry):
        raise StoreError(
            f"{where}.{key} must be an object with a non-empty label, a unit (text) and "
            f"higher_is_better (true, false or null), got {entry!r}"
        )
    return OutputInfo(entry["label"], entry["higher_is_better"], entry.get("unit", ""))


def _is_info_entry(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    label, unit = entry.get("label"), entry.get("unit", "")
    higher = entry.get("higher_is_better", "missing")
    return (
        isinstance(label, str)
        and bool(label)
        and isinstance(unit, str)
        and (higher is None or isinstance(higher, bool))
    )


def metric_info(key: str, records: Iterable[dict]) -> OutputInfo | None:
    """The info of ``key`` in these records: the first record that carries it, else its declaration."""
    for record in records:
        info = carried_info(record, key)
        if info is not None:
            return info
    return key_info(key)


def metric_direction(key: str, records: Iterable[dict]) -> str | None:
    """'higher' or 'lower' when ``key`` has a better direction in these records, else None."""
    info = metric_info(key, records)
    if info is None or info.higher_is_better is None:
        return None
    return "higher" if info.higher_is_better else "lower"


def metric_label(key: str, records: Iterable[dict]) -> str:
    """The column header of a metric: its record key (as in the exports), with ↑ or ↓ for its direction."""
    direction = metric_direction(key, records)
    arrow = " ↑" if direction == "higher" else " ↓" if direction == "lower" else ""
    return key.replace("_seconds_per_image", " s/image") + arrow


def metric_title(key: str, records: Iterable[dict]) -> str:
    """A header tooltip: the metric's display name and unit, and its better direction."""
    records = list(records)
    direction = metric_direction(key, records)
    return axis_title(key, records) + (f" · {direction} is better" if direction else "")


def axis_title(key: str, records: Iterable[dict]) -> str:
    """The display name of a metric with its unit, e.g. ``PSNR (dB)``; the key when nothing names it."""
    info = metric_info(key, records)
    if info is None:
        return key.replace("_", " ")
    return f"{info.label} ({info.unit})" if info.unit else info.label


def primary_metric(records: list[dict]) -> str | None:
    """The key that ranks these records (one protocol): the suite's primary, else the suite's default,
    else the suite config's first metric; the first one the records have with a known direction."""
    if not records:
        return None
    suite = records[0]["suite"]
    entries = suite.get("config", {}).get("metrics", [])
    configured = [(e.get("key") or e.get("name")) if isinstance(e, dict) else e for e in entries]
    candidates = [suite.get("primary"), DEFAULT_PRIMARY.get(suite["name"]), *configured]
    present = {key for record in records for key in record["metrics"]}
    for candidate in candidates:
        key = str(candidate).replace("-", "_") if candidate else None
        if key in present and metric_direction(key, records) is not None:
            return key
    return None


def rank_records(records: list[dict], key: str) -> dict[str, int]:
    """Competition ranks (1, 2, 2, 4) by ``key`` in its better direction (as the records declare it);
    records without it are unranked."""
    sign = -1.0 if metric_direction(key, records) == "higher" else 1.0
    scored = sorted(
        (sign * metric_value(value), r["record_id"])
        for r in records
        if (value := r["metrics"].get(key)) is not None
    )
    ranks: dict[str, int] = {}
    previous_score, previous_rank = None, 0
    for position, (score, record_id) in enumerate(scored, start=1):
        rank = previous_rank if score == previous_score else position
        ranks[record_id] = rank
        previous_score, previous_rank = score, rank
    return ranks
