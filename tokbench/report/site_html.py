"""HTML building blocks of the leaderboard site: escaping, figures, metric order, record readers.

Everything a record holds is user-controlled (model names, arguments, citations), so every string
goes through ``esc`` before it reaches a page, JSON that is placed inside ``<script>`` goes through
``escape_script_json``, and only ``http(s)://`` URLs ever become links (``safe_url``).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io

from tokbench.report.figures import record_metric

RATE_METRICS = ("bits_per_pixel", "frame_bits_per_pixel", "num_tokens", "tokens_kept", "encoder_gflops")
_BUCKET_ORDER = {"small": 0, "medium": 1, "large": 2, "mean": 3}
_PREFERRED_ORDER = ("psnr", "ssim", "ms_ssim", "lpips", "rfid", "pfid", "gfid", "t_acc", "t_ned", "f_sim")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class Column:
    """A table column: its header, whether it sorts numerically, its filter label and tooltip."""

    label: str
    numeric: bool = False
    filter: str | None = None
    title: str = ""


# --- escaping -----------------------------------------------------------------------------------------


def esc(value: object) -> str:
    """``str(value)`` with ``& < > " '`` escaped, for element text and attribute values."""
    return html.escape(str(value), quote=True)


def escape_script_json(value: object) -> str:
    """``value`` as JSON that is safe inside ``<script>``: ``<``, ``>``, ``&``, U+2028/9 as ``\\uXXXX``.

    A string is taken to be JSON text already (e.g. from ``plotly.io.to_json``).
    """
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda match: _SCRIPT_ESCAPES[match.group(0)], text)


def safe_url(url: object) -> str | None:
    """``url`` when it is an absolute http(s) URL, else None (no ``javascript:`` or relative links)."""
    if isinstance(url, str) and re.match(r"https?://[^\s<>\"'`]+$", url, flags=re.IGNORECASE):
        return url
    return None


def compact(value: object) -> str:
    """A string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def inline(value: object) -> str:
    """A short human reading of a JSON value: ``k: v · k: v``, sha256 hashes cut to 12 characters."""
    if isinstance(value, dict):
        return " · ".join(f"{k}: {inline(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(inline(v) for v in value)
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return value[:12] + "…"
    return compact(value)


def pre_json(value: object) -> str:
    """An escaped, indented JSON block."""
    return f"<pre>{esc(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))}</pre>"


def num_cell(value: object) -> str:
    """A right-aligned table cell that sorts by its value (empty when None)."""
    text = "" if value is None else str(value)
    return f'<td class="num" data-sort="{esc(text)}">{esc(text)}</td>'


def board(table_id: str, columns: list[Column], rows: list[str], exports: str | None, css: str) -> str:
    """A sortable, filterable table with its toolbar; ``exports`` is the stem of its CSV/JSON files."""
    heads = []
    for column in columns:
        attrs = ' data-type="num" class="num"' if column.numeric else ' data-type="text"'
        if column.filter:
            attrs += f' data-filter="{esc(column.filter)}"'
        if column.title:
            attrs += f' title="{esc(column.title)}"'
        heads.append(f'<th scope="col"{attrs}><button type="button">{esc(column.label)}</button></th>')
    links = ""
    if exports:
        links = (
            f'<span class="exports">Export: <a href="{esc(exports)}.csv">CSV</a>'
            f'<a href="{esc(exports)}.json">JSON</a></span>'
        )
    return (
        '<div class="board-block" data-board><div class="toolbar">'
        '<input type="search" placeholder="Filter rows…" aria-label="Filter rows" data-filter-text>'
        f'<span class="count" data-count>{len(rows)} rows</span>{links}</div>'
        f'<div class="table-wrap"><table class="board {esc(css)}" id="{esc(table_id)}">'
        f"<thead><tr>{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></div>"
    )


# --- figures ------------------------------------------------------------------------------------------


def figure_html(figure: go.Figure, title: str | None, div_id: str) -> str:
    """A figure as a ``<div>`` plus its JSON in a non-executed ``<script>``, drawn by site.js."""
    figure.update_layout(
        template="plotly_white", margin={"t": 40 if title else 20, "l": 60, "r": 20, "b": 50}
    )
    if title:
        figure.update_layout(title={"text": esc(title), "font": {"size": 14}})
    payload = escape_script_json(plotly.io.to_json(figure, validate=False))
    return (
        f'<div><div class="figure" id="{esc(div_id)}"></div>'
        f'<script type="application/json" class="plotly-figure" data-target="{esc(div_id)}">'
        f"{payload}</script></div>"
    )


# --- metrics ------------------------------------------------------------------------------------------


def is_bucket(key: str) -> bool:
    """A TokBench-style per-bucket metric (``t_acc_small`` ...)."""
    return key.rsplit("_", 1)[-1] in ("small", "medium", "large")


def metric_keys(records: list[dict], primary: str | None) -> list[str]:
    """The metric columns of these records: CIs folded in, ``primary`` first, then quality, rate,
    size and timing metrics, means before buckets."""
    keys = {key for record in records for key in record["metrics"]}
    keys = {k for k in keys if not (k.endswith("_ci95") and k.removesuffix("_ci95") in keys)}

    def order(key: str) -> tuple:
        timing, size = key.endswith("_seconds_per_image"), key == "bytes_per_image"
        group = 3 if timing else 2 if size else 1 if key in RATE_METRICS else 0
        base, _, bucket = key.rpartition("_")
        if bucket not in _BUCKET_ORDER:
            base, bucket = key, ""
        known = _PREFERRED_ORDER.index(base) if base in _PREFERRED_ORDER else len(_PREFERRED_ORDER)
        return (key != primary, group, bucket not in ("", "mean"), known, base, _BUCKET_ORDER.get(bucket, -1))

    return sorted(keys, key=order)


# --- what a record says about itself ------------------------------------------------------------------


def protocol_label(record: dict) -> str:
    """``recon v1 · 08ca382018d5`` for reproduced records; the source table for reported ones."""
    if record["source"] == "reported":
        return reported_label(record)
    return f"{record['suite']['name']} v{record['suite']['version']} · {record['protocol_hash'][:12]}"


def reported_label(record: dict) -> str:
    """The source table (and resolution) of a reported record, e.g. ``tokbench_image_256.csv @ 256px``."""
    protocol = record.get("protocol", {})
    table = protocol.get("source_table") or record.get("citation", {}).get("table")
    resolution = protocol.get("resolution")
    return f"{table or record['protocol_hash'][:12]}" + (f" @ {resolution}px" if resolution else "")


def record_resolution(record: dict) -> int | None:
    """The image resolution from the preprocessing, protocol or model arguments, if any."""
    for place in (record.get("preprocess"), record.get("protocol"), record["model"].get("arguments")):
        if isinstance(place, dict) and isinstance(place.get("resolution"), int):
            return place["resolution"]
    return None


def record_tokens(record: dict) -> float | int | None:
    """The token count: the ``num_tokens``/``tokens_kept`` metric, else a model argument."""
    for key in ("num_tokens", "tokens_kept"):
        value = record_metric(record, key)
        if value is not None:
            return int(value) if value.is_integer() else value
    arguments = record["model"].get("arguments", {})
    for key in ("num_tokens", "tokens", "tokens_kept"):
        value = arguments.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def record_judge(record: dict) -> str:
    """The judges named by the protocol or suite config (``judges`` or ``judge``), or ""."""
    for place in (record.get("protocol"), record["suite"].get("config")):
        judges = place.get("judges", place.get("judge")) if isinstance(place, dict) else None
        if judges:
            if isinstance(judges, dict):
                return ", ".join(f"{k}: {compact(v)}" for k, v in sorted(judges.items()))
            if isinstance(judges, list):
                return ", ".join(compact(j) for j in judges)
            return compact(judges)
    return ""
