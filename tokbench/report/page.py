"""A self-contained offline HTML report: per protocol hash, a rate–distortion figure and a table."""

from __future__ import annotations

import html
import math
import os
import tempfile
from pathlib import Path

import plotly.offline

from tokbench.errors import ConfigError
from tokbench.report.figures import (
    format_metric,
    rate_distortion_figure,
    record_metric,
    token_reduction_figure,
)
from tokbench.report.grouping import protocol_groups
from tokbench.report.rate_quality import has_token_sweeps, rate_quality_figure

_RATE_METRIC = "bits_per_pixel"
_CI_SUFFIX = "_ci95"
_REPORT_MODE = 0o644
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.9em; }
"""


def _suite_versions(records: list[dict]) -> str:
    """The distinct suite versions of these records, comma-separated."""
    return ", ".join(sorted({record["suite"]["version"] for record in records}))


def _row_order(record: dict) -> tuple[str, float, str]:
    """Sort table rows by model family, then rate, then spec."""
    rate = record_metric(record, _RATE_METRIC)
    return (record["model"]["name"], math.inf if rate is None else rate, record["model"]["spec"])


def _table(records: list[dict]) -> str:
    """An HTML table with one row per record and one column per metric (CIs folded in as "± x")."""
    all_keys = {key for record in records for key in record["metrics"]}
    metric_keys = sorted(
        key for key in all_keys if not (key.endswith(_CI_SUFFIX) and key.removesuffix(_CI_SUFFIX) in all_keys)
    )
    header = ["model spec", "dataset", "items used", "items skipped", *metric_keys, "source", "created_at"]
    lines = ["<table>", "<thead><tr>", *(f"<th>{html.escape(name)}</th>" for name in header), "</tr></thead>"]
    lines.append("<tbody>")
    for record in sorted(records, key=_row_order):
        dataset = record["dataset"]
        cells = [
            f"<td><code>{html.escape(record['model']['spec'])}</code></td>",
            f"<td>{html.escape(dataset['name'])}</td>",
            f'<td class="num">{html.escape(str(dataset.get("items_used", "")))}</td>',
            f'<td class="num">{html.escape(str(dataset.get("items_skipped", "")))}</td>',
            *(f'<td class="num">{html.escape(format_metric(record, key))}</td>' for key in metric_keys),
            f"<td>{html.escape(record['source'])}</td>",
            f"<td>{html.escape(record['created_at'])}</td>",
        ]
        lines.append(f"<tr>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _protocol_section(records: list[dict]) -> str:
    """The heading, rate–distortion figure and table of the records of one protocol hash."""
    protocol_hash = records[0]["protocol_hash"]
    figure = rate_distortion_figure(records, x=_RATE_METRIC)
    figure_html = figure.to_html(
        include_plotlyjs=False,
        full_html=False,
        div_id=f"rd-{html.escape(protocol_hash[:16])}",
        config={"displaylogo": False},
    )
    heading = (
        f"<h2>suite version {html.escape(_suite_versions(records))} · "
        f"protocol <code>{html.escape(protocol_hash)}</code></h2>"
    )
    if has_token_sweeps(records):  # token-count sweeps: quality vs tokens and bytes, Pareto front marked
        sweep = rate_quality_figure(records).to_html(
            include_plotlyjs=False,
            full_html=False,
            div_id=f"rq-{html.escape(protocol_hash[:16])}",
            config={"displaylogo": False},
        )
        figure_html += "\n<h3>rate–quality: tokens and bytes per image</h3>\n" + sweep
    if any(record_metric(record, "encoder_gflops") is not None for record in records):  # ViT reduction
        curves = token_reduction_figure(records).to_html(
            include_plotlyjs=False,
            full_html=False,
            div_id=f"tr-{html.escape(protocol_hash[:16])}",
            config={"displaylogo": False},
        )
        figure_html += "\n<h3>ViT token reduction: accuracy vs tokens kept and FLOPs</h3>\n" + curves
    return "\n".join(["<section>", heading, figure_html, _table(records), "</section>"])


def _page(records: list[dict], suite: str, title: str) -> str:
    """The whole HTML document, with plotly.js inlined once in the head."""
    groups = protocol_groups(records)
    protocols = ", ".join(
        f"{html.escape(_suite_versions(group))} (<code>{html.escape(group[0]['protocol_hash'])}</code>)"
        for group in groups
    )
    summary = f"<p>suite <b>{html.escape(suite)}</b>, version (protocol hash): {protocols}</p>"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            "</head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            summary,
            *(_protocol_section(group) for group in groups),
            "</body>",
            "</html>",
            "",
        ]
    )


def _write_atomically(text: str, out: Path) -> None:
    """Write ``text`` to a temporary file beside ``out``, then rename it over ``out``."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        temporary = Path(name)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            temporary.chmod(_REPORT_MODE)
            os.replace(temporary, out)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ConfigError(f"cannot write report to {out}: {error}; choose a writable output path") from error


def write_report(
    records: list[dict], out: Path, suite: str, title: str | None = None, store: Path | None = None
) -> Path:
    """Write an offline HTML report of ``suite``'s records to ``out`` and return ``out``."""
    if not records:
        where = f" in store {store}" if store is not None else ""
        raise ConfigError(f"no records for suite {suite}{where}; run `tokbench run --suite {suite}` first")
    for record in records:
        if record["suite"]["name"] != suite:
            raise ConfigError(
                f"record {record.get('record_id', '?')} belongs to suite {record['suite']['name']!r}, "
                f"not {suite!r}; pass only the records of suite {suite!r}"
            )
    out = Path(out)
    _write_atomically(_page(records, suite, title or f"tokbench report: {suite}"), out)
    return out
