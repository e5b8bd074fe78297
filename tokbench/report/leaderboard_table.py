"""The compact leaderboard of ``tokbench leaderboard``: one ranked text table per suite and protocol.

Each table shows the rank (reproduced rows only, by the suite's primary metric in the direction the
records declare), the model, the suite's headline metrics with their 95% CI (``<key>_ci95``), and
bits per pixel or tokens per image, in at most ``width`` characters. Headline metrics are the
suite's declared record keys (``suite.record_keys``) that have a better direction, without rate,
size, timing and per-bucket keys; those that do not fit are named under the table. Long model
specs drop the arguments every row of their family shares (named under the table), then are cut in
the middle, always staying unique within the table. Reported rows (copied from papers) get their
own tables, one per source, and are never ranked.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field

from tokbench.records import metric_value
from tokbench.report.grouping import protocol_groups
from tokbench.report.metric_info import (
    axis_title,
    metric_direction,
    metric_info,
    primary_metric,
    rank_records,
)
from tokbench.report.site_html import RATE_METRICS, is_bucket, metric_keys, protocol_label, record_tokens

#: Default width of the compact table, in characters.
WIDTH = 120
#: The model column never gets narrower than this (metrics that do not fit are left out instead).
MODEL_MIN_WIDTH = 32
_HEADER_MAX = 14
_GAP = "  "
_ELLIPSIS = "…"


@dataclass(frozen=True)
class CompactTable:
    """One suite and protocol: a title, column headers, formatted rows and notes printed below."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    #: Per column: right-aligned (numbers) or left-aligned (the model).
    numeric: list[bool]
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The table as aligned text lines: title, header, rule, rows, notes."""
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.headers)]

        def line(cells: list[str]) -> str:
            aligned = [
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(cells, widths, self.numeric, strict=True)
            ]
            return _GAP.join(aligned).rstrip()

        rule = _GAP.join("-" * w for w in widths)
        return "\n".join([self.title, line(self.headers), rule, *map(line, self.rows), *self.notes])


def format_compact(records: list[dict], width: int = WIDTH) -> str:
    """Every table of ``compact_tables`` rendered, separated by blank lines ("no records" when empty)."""
    tables = compact_tables(records, width)
    return "\n\n".join(table.render() for table in tables) if tables else "no records"


def compact_tables(records: list[dict], width: int = WIDTH) -> list[CompactTable]:
    """One table per suite and protocol: suites by name, reproduced protocols latest first, then the
    reported sources."""
    by_suite: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_suite[record["suite"]["name"]].append(record)
    tables = []
    for suite in sorted(by_suite):
        for source in ("reproduced", "reported"):
            members = [r for r in by_suite[suite] if r["source"] == source]
            tables += [_table(group, width) for group in protocol_groups(members)]
    return tables


def headline_keys(records: list[dict], primary: str | None) -> list[str]:
    """The metric columns of the compact table, ``primary`` first: the suite's declared keys (all
    keys when the records declare none) that have a better direction and are not rates, sizes,
    timings, buckets or CIs."""
    declared = records[0]["suite"].get("record_keys")
    keys = []
    for key in metric_keys(records, primary):
        if key in RATE_METRICS or key == "bytes_per_image" or key.endswith(("_seconds_per_image", "_ci95")):
            continue
        if is_bucket(key) or (declared and key not in declared) or metric_direction(key, records) is None:
            continue
        keys.append(key)
    return keys


def _table(group: list[dict], width: int) -> CompactTable:
    reproduced = group[0]["source"] == "reproduced"
    primary = primary_metric(group)
    ranks = rank_records(group, primary) if reproduced and primary else {}
    if ranks:
        order = sorted(group, key=lambda r: (ranks.get(r["record_id"], math.inf), r["model"]["spec"]))
    else:
        order = sorted(group, key=lambda r: (r["model"]["name"], r["model"]["spec"]))
    columns: list[tuple[str, list[str]]] = []
    if ranks:
        columns.append(("rank", [str(ranks.get(r["record_id"], "-")) for r in order]))
    rate = _rate_columns(order)
    metrics = [
        (_header(key, group), [_value_with_ci(r, key) for r in order])
        for key in headline_keys(group, primary)
    ]
    fixed = sum(_column_width(c) + len(_GAP) for c in [*columns, *rate])
    specs = [r["model"]["spec"] for r in order]
    model_min = min(MODEL_MIN_WIDTH, max(map(len, drop_shared_arguments(specs)[0])))
    shown, left_out = [], []
    for column, key in zip(metrics, headline_keys(group, primary), strict=True):
        needed = _column_width(column) + len(_GAP)
        if fixed + needed + model_min <= width and not left_out:
            shown.append(column)
            fixed += needed
        else:
            left_out.append(key)
    labels, shared = abbreviate_specs(specs, max(model_min, width - fixed))
    columns.append(("model", labels))
    columns += shown + rate
    notes = [f"{name}: {arguments} in every row" for name, arguments in shared.items()]
    if left_out:
        notes.append(f"not shown (too wide): {', '.join(left_out)}; --all-columns shows every column")
    notes = [
        line
        for note in notes
        for line in textwrap.wrap(note, width, initial_indent="  ", subsequent_indent="    ")
    ]
    return CompactTable(
        title="\n".join(textwrap.wrap(_title(group, primary, bool(ranks)), width, subsequent_indent="  ")),
        headers=[name for name, _ in columns],
        rows=[list(cells) for cells in zip(*(values for _, values in columns), strict=True)],
        numeric=[name != "model" for name, _ in columns],
        notes=notes,
    )


def _title(group: list[dict], primary: str | None, ranked: bool) -> str:
    count = f"{len(group)} record{'s' if len(group) != 1 else ''}"
    if group[0]["source"] == "reported":
        return f"{group[0]['suite']['name']} · reported: {protocol_label(group[0])} · {count} · not ranked"
    if not ranked:
        return f"{protocol_label(group[0])} · reproduced · {count} · no ranking metric"
    direction = metric_direction(primary, group)
    ranking = f"ranked by {axis_title(primary, group)}, {direction} is better"
    return f"{protocol_label(group[0])} · reproduced · {count} · {ranking}"


def _header(key: str, records: list[dict]) -> str:
    """The metric's label and unit when short (``PSNR dB``), else its record key; then ↑ or ↓."""
    info = metric_info(key, records)
    label = f"{info.label} {info.unit}".strip() if info is not None else key
    label = label if len(label) <= _HEADER_MAX else key
    arrow = {"higher": " ↑", "lower": " ↓"}.get(metric_direction(key, records) or "", "")
    return f"{label}{arrow}"


def _rate_columns(records: list[dict]) -> list[tuple[str, list[str]]]:
    columns = []
    bits = [_number(r, "bits_per_pixel") for r in records]
    if any(bits):
        columns.append(("bpp", bits))
    tokens = [record_tokens(r) for r in records]
    if any(t is not None for t in tokens):
        columns.append(("tokens", ["" if t is None else _format(float(t)) for t in tokens]))
    return columns


def _column_width(column: tuple[str, list[str]]) -> int:
    name, values = column
    return max(len(name), *(len(v) for v in values))


def _number(record: dict, key: str) -> str:
    value = record["metrics"].get(key)
    return "" if value is None else _format(metric_value(value))


def _value_with_ci(record: dict, key: str) -> str:
    value = _number(record, key)
    ci = record["metrics"].get(f"{key}_ci95")
    if not value or ci is None:
        return value
    return f"{value}±{metric_value(ci):.2g}"


def _format(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def abbreviate_specs(specs: list[str], width: int) -> tuple[list[str], dict[str, str]]:
    """Model labels of at most ``width`` characters, unique when the specs are, and the arguments
    left out of them per family: when a spec is longer than ``width``, first the arguments shared by
    a family's rows go (``drop_shared_arguments``), then labels still too long are cut in the middle
    (at the end when that keeps them unique; numbered as a last resort)."""
    labels, shared = drop_shared_arguments(specs) if any(len(s) > width for s in specs) else (specs, {})
    for keep_end in (True, False):
        cut = [_cut(label, width, keep_end) for label in labels]
        if len(set(cut)) == len(set(labels)):
            return cut, shared
    return [_cut(label, width, True, tail=f"#{i}") for i, label in enumerate(labels)], shared


def drop_shared_arguments(specs: list[str]) -> tuple[list[str], dict[str, str]]:
    """Specs without the ``key=value`` arguments that every spec of their family (the name before
    ``:``) shares, for families with several specs, and those arguments per family."""
    families: dict[str, list[list[str]]] = defaultdict(list)
    for spec in specs:
        name, _, arguments = spec.partition(":")
        families[name].append(_split_arguments(arguments))
    common: dict[str, set[str]] = {}
    shared: dict[str, str] = {}
    for name, argument_lists in families.items():
        together = set.intersection(*(set(a) for a in argument_lists)) if len(argument_lists) > 1 else set()
        if together:
            common[name] = together
            shared[name] = ",".join(a for a in argument_lists[0] if a in together)
    labels = []
    for spec in specs:
        name, _, arguments = spec.partition(":")
        kept = [a for a in _split_arguments(arguments) if a not in common.get(name, set())]
        labels.append(f"{name}:{','.join(kept)}" if kept else name)
    return labels, shared


def _split_arguments(arguments: str) -> list[str]:
    """``"a=1,b=x,y"`` → ``["a=1", "b=x,y"]``: a comma starts a new argument only before ``key=``."""
    parts: list[str] = []
    for piece in arguments.split(",") if arguments else []:
        if parts and "=" not in piece:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return parts


def _cut(label: str, width: int, keep_end: bool, tail: str = "") -> str:
    if len(label) + len(tail) <= width:
        return label + tail
    room = width - len(_ELLIPSIS) - len(tail)
    if not keep_end:
        return label[:room] + _ELLIPSIS + tail
    end = room // 3
    return label[: room - end] + _ELLIPSIS + label[len(label) - end :] + tail
