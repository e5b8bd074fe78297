"""Leaderboard tables (with their CSV/JSON export rows) and record detail pages of the site."""

from __future__ import annotations

import math
from collections.abc import Callable

from tokbench.report.figures import format_metric, record_metric
from tokbench.report.metric_info import axis_title, metric_label, metric_title
from tokbench.report.site_html import (
    RATE_METRICS,
    Column,
    compact,
    esc,
    inline,
    metric_keys,
    num_cell,
    pre_json,
    protocol_label,
    record_judge,
    record_resolution,
    record_tokens,
    safe_url,
)
from tokbench.reported import citation_line

_EXTRAS = {"resolution": record_resolution, "tokens": record_tokens, "judge": record_judge}
_FACTS_NOTE = (
    '<p class="muted">As the source\'s official evaluation code and documentation state them ("unknown" '
    "where they do not); each fact's origin is named in SOURCE_FACTS of tokbench/reported.py.</p>"
)


def leaderboard_table(
    records: list[dict],
    ranks: dict[str, int] | None,
    primary: str | None,
    href: Callable[[dict], str],
    comparable: dict[str, str] | None = None,
) -> tuple[list[Column], list[str], list[dict]]:
    """Columns, HTML rows and export rows of one table.

    Columns come in reading order: rank, model, the quality metrics (``primary`` first), bits and
    tokens, then family, resolution, sizes and timings, and the record's provenance. Judges and the
    rest of the protocol are in the protocol card above the table, not in a column (the exports
    keep them). ``ranks`` is None for reported records: they get a badge and their citation instead
    of a rank, and, with ``comparable`` (protocol hash to text), which reproduced protocols they
    compare with. Optional columns (resolution, tokens) appear only when some record fills them.
    """
    reported = ranks is None
    all_keys = keys = metric_keys(records, primary)
    extras = {name: [read(r) for r in records] for name, read in _EXTRAS.items()}
    filled = {name for name, values in extras.items() if any(v not in (None, "") for v in values)}
    if "tokens" in filled:  # the tokens column already shows them
        keys = [key for key in keys if key not in ("num_tokens", "tokens_kept")]
    quality = [k for k in keys if k not in RATE_METRICS and not _is_cost(k)]
    rates = [k for k in keys if k in RATE_METRICS]
    costs = [k for k in keys if _is_cost(k) and k not in RATE_METRICS]
    index = {id(record): i for i, record in enumerate(records)}

    def metric(key: str) -> tuple[Column, Callable[[dict], str]]:
        column = Column(metric_label(key, records), numeric=True, title=metric_title(key, records))
        return column, lambda record: _metric_cell(record, key)

    def extra(name: str) -> tuple[Column, Callable[[dict], str]]:
        return Column(name, numeric=True, filter=name), lambda record: num_cell(
            extras[name][index[id(record)]]
        )

    parts: list[tuple[Column, Callable[[dict], str]]] = []
    if ranks:
        parts.append(
            (
                Column("rank", numeric=True, title=f"by {primary}"),
                lambda r: num_cell(ranks.get(r["record_id"])),
            )
        )
    parts.append((Column("model"), lambda r: _model_cell(r, href, reported)))
    parts += [metric(key) for key in quality + rates]
    parts += [extra("tokens")] if "tokens" in filled else []
    parts.append(
        (
            Column("family", filter="family"),
            lambda r: f'<td><div class="family">{esc(r["model"]["name"])}</div></td>',
        )
    )
    parts += [extra("resolution")] if "resolution" in filled else []
    parts += [metric(key) for key in costs]
    if reported:
        parts.append((Column("source"), _citation_cell))
        if comparable is not None:
            parts.append(
                (
                    Column("comparable with", filter="comparable with"),
                    lambda r: f"<td>{esc(comparable.get(r['protocol_hash'], 'none'))}</td>",
                )
            )
    else:
        parts += [
            (Column("items", numeric=True), lambda r: num_cell(r["dataset"].get("items_used"))),
            (Column("skipped", numeric=True), lambda r: num_cell(r["dataset"].get("items_skipped"))),
            (
                Column("date"),
                lambda r: f'<td data-sort="{esc(r["created_at"])}">{esc(r["created_at"][:10])}</td>',
            ),
        ]

    def order(i: int) -> tuple:
        first = ranks.get(records[i]["record_id"], math.inf) if ranks else protocol_label(records[i])
        return first, records[i]["model"]["name"], records[i]["model"]["spec"]

    rows, export = [], []
    for i in sorted(range(len(records)), key=order):
        record = records[i]
        cells = "".join(cell(record) for _, cell in parts)
        rows.append(f'<tr data-source="{esc(record["source"])}">{cells}</tr>')
        rank = ranks.get(record["record_id"]) if ranks else None
        row = export_row(record, rank, {name: extras[name][i] for name in extras}, all_keys)
        if reported and comparable is not None:
            row["comparable_with"] = comparable.get(record["protocol_hash"], "none")
        export.append(row)
    return [column for column, _ in parts], rows, export


def _is_cost(key: str) -> bool:
    """Sizes and timings: shown after the family, not beside the quality metrics."""
    return key == "bytes_per_image" or key.endswith(("_seconds_per_image", "_seconds_per_frame"))


def _model_cell(record: dict, href: Callable[[dict], str], reported: bool) -> str:
    badge = ' <span class="badge reported">reported</span>' if reported else ""
    spec = esc(record["model"]["spec"]).replace(",", ",<wbr>")
    return f'<td><div class="model"><a href="{href(record)}"><code>{spec}</code></a>{badge}</div></td>'


def _metric_cell(record: dict, key: str) -> str:
    value = record_metric(record, key)
    sort = "" if value is None else repr(value).replace("inf", "Infinity")
    return f'<td class="num" data-sort="{esc(sort)}">{esc(format_metric(record, key))}</td>'


def _citation_cell(record: dict) -> str:
    citation = record.get("citation", {})
    title = esc(citation.get("title", "not given"))
    url = safe_url(citation.get("url"))
    text = f'<a href="{esc(url)}" rel="noopener noreferrer">{title}</a>' if url else title
    return f'<td title="{esc(citation_line(record))}"><div class="source">{text}</div></td>'


def export_row(record: dict, rank: int | None, extras: dict, keys: list[str]) -> dict:
    """One flat CSV/JSON row: identity, extras, each metric and its CI ("inf" for infinities)."""
    dataset = record["dataset"]
    row: dict[str, object] = {"rank": rank} if record["source"] == "reproduced" else {}
    row.update(
        source=record["source"],
        suite=record["suite"]["name"],
        suite_version=record["suite"]["version"],
        protocol_hash=record["protocol_hash"],
        model=record["model"]["spec"],
        model_name=record["model"]["name"],
        **extras,
        dataset=dataset["name"],
        items_used=dataset.get("items_used"),
        items_skipped=dataset.get("items_skipped"),
    )
    for key in keys:
        for name in (key, f"{key}_ci95"):
            value = record_metric(record, name)
            if value is not None and not math.isfinite(value):
                value = "inf" if value > 0 else "-inf"
            row[name] = value
    row.update(created_at=record["created_at"], record_id=record["record_id"])
    if record["source"] == "reported":
        row["citation"] = citation_line(record)
        row["citation_url"] = safe_url(record.get("citation", {}).get("url"))
    return row


def protocol_card(record: dict, count: int) -> str:
    """The version, hash and main fields of a protocol, with the full protocol folded away."""
    protocol = record.get("protocol", {})
    items = [
        ("suite version", esc(record["suite"]["version"])),
        ("protocol hash", f"<code>{esc(record['protocol_hash'])}</code>"),
        ("dataset", esc(inline(protocol.get("dataset", record["dataset"])))),
    ]
    for key in ("preprocess", "metric_versions", "quantization", "judges"):
        if protocol.get(key) not in (None, "", {}, []):
            items.append((key.replace("_", " "), esc(inline(protocol[key]))))
    items.append(("records", str(count)))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    full = f"<details><summary>full protocol</summary>{pre_json(protocol)}</details>"
    return f'<div class="card"><dl>{rows}</dl>{full}</div>'


def record_body(record: dict, stem: str, suite_href: str, comparability_html: str | None = None) -> str:
    """The body of a record's detail page: full provenance, metrics, skipped items, citation; for a
    reported record its protocol facts and how it compares with the reproduced protocols (HTML)."""
    model, dataset, suite = record["model"], record["dataset"], record["suite"]
    source = record["source"]
    counts = " / ".join(str(dataset.get(k, "–")) for k in ("items_requested", "items_used", "items_skipped"))
    facts = [
        ("suite", f'<a href="{suite_href}">{esc(suite["name"])}</a> version {esc(suite["version"])}'),
        ("protocol hash", f"<code>{esc(record['protocol_hash'])}</code>"),
        ("record id", f"<code>{esc(record['record_id'])}</code>"),
        ("created", esc(record["created_at"])),
        ("model family", esc(model["name"])),
        ("model kind", esc(model.get("kind", "not given"))),
        ("arguments", f"<code>{esc(compact(model.get('arguments', {})))}</code>"),
        ("adapter version", esc(model.get("adapter_version", "not given"))),
        ("weights sha256", f"<code>{esc(model.get('weights_sha256') or 'none (no weights file)')}</code>"),
        ("dataset", esc(dataset["name"])),
        ("manifest hash", f"<code>{esc(dataset.get('manifest_hash') or 'not given')}</code>"),
        ("items requested / used / skipped", esc(counts)),
    ]
    body = [
        f'<p><a href="{suite_href}">← {esc(suite["name"])}</a></p>',
        f'<h1><code>{esc(model["spec"])}</code> <span class="badge {esc(source)}">{esc(source)}</span></h1>',
        _definition_card(facts),
    ]
    if source == "reported":
        body.append(_citation_block(record))
        facts = record.get("protocol", {}).get("facts")
        if facts:
            body.append("<h2>Protocol facts</h2>" + _FACTS_NOTE + _kv_table(facts))
        if comparability_html:
            body.append(f'<div class="card comparability">{comparability_html}</div>')
    metric_rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(axis_title(k, [record]))}</td>"
        f'<td class="num">{esc(format_metric(record, k))}</td></tr>'
        for k in metric_keys([record], None)
    )
    body.append(
        '<h2>Metrics</h2><table class="kv"><tr><th>metric</th><th>name (unit)</th>'
        f"<th>value ± 95% CI</th></tr>{metric_rows}</table>"
    )
    if record.get("not_applicable"):
        body.append("<h2>Not applicable</h2>" + _kv_table(record["not_applicable"]))
    skipped = record.get("skipped")
    if skipped is not None:
        rows = "".join(f"<tr><td>{esc(s['item'])}</td><td>{esc(s['reason'])}</td></tr>" for s in skipped)
        table = f'<table class="kv"><tr><th>item</th><th>reason</th></tr>{rows}</table>'
        body.append(f"<h2>Skipped items ({len(skipped)})</h2>" + (table if skipped else "<p>none</p>"))
    for key in ("environment", "timings", "run", "preprocess"):
        if record.get(key):
            body.append(f"<h2>{esc(key.capitalize())}</h2>" + _kv_table(record[key]))
    if record.get("protocol"):
        body.append(f"<h2>Protocol</h2>{pre_json(record['protocol'])}")
    body.append(
        f'<h2>Record file</h2><p><a href="{esc(stem)}.json">{esc(stem)}.json</a> '
        "(the stored record, as submitted in a pull request)</p>"
    )
    return "\n".join(body)


def _definition_card(items: list[tuple[str, str]], extra: str = "") -> str:
    """A card of ``<dt>``/``<dd>`` pairs; names are escaped, values must already be HTML."""
    rows = "".join(f"<dt>{esc(name)}</dt><dd>{value}</dd>" for name, value in items)
    return f'<div class="card"><dl>{rows}</dl>{extra}</div>'


def _citation_block(record: dict) -> str:
    citation = record.get("citation", {})
    first = ("title", "authors", "year", "table", "row")
    keys = [k for k in first if k in citation] + sorted(set(citation) - {*first, "url", "notes"})
    items = [(key, esc(compact(citation[key]))) for key in keys]
    if citation.get("url"):
        url = safe_url(citation["url"])
        link = f'<a href="{esc(url)}" rel="noopener noreferrer">{esc(url)}</a>' if url else None
        items.append(("url", link or esc(compact(citation["url"]))))
    notes = "".join(f"<li>{esc(note)}</li>" for note in citation.get("notes", []) if isinstance(note, str))
    extra = f"<p>Caveats:</p><ul>{notes}</ul>" if notes else ""
    extra += f"<p>Cite as:</p><pre>{esc(citation_line(record))}</pre>"
    return "<h2>Citation</h2>" + _definition_card(items, extra)


def _kv_table(mapping: dict) -> str:
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td><code>{esc(compact(v))}</code></td></tr>"
        for k, v in sorted(mapping.items())
    )
    return f'<table class="kv">{rows}</table>'
