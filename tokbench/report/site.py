"""The static leaderboard site: ``build_site(store_root, out)`` writes pages that work opened from disk.

Layout of ``out``::

    index.html                       suites, record counts, latest protocol of each
    <suite>.html                     latest reproduced protocol, then the reported rows
    <suite>@<hash12>.html            each older (or other) reproduced protocol of the suite
    <suite>.csv|json                 the reproduced table of <suite>.html ('@<hash12>' likewise)
    <suite>@reported.csv|json        the reported table of <suite>.html
    records/<record_id>.html|json    one detail page (and the record file) per record
    assets/site.css|site.js|plotly.min.js

Suite names cannot contain '@', so these names never collide. Reproduced rows are ranked only against
rows of the same protocol hash; reported rows (copied from papers, with their citation) sit in their
own table and are never ranked. Every string from a record is HTML-escaped, and JSON placed inside a
``<script>`` element has ``<``, ``>`` and ``&`` escaped, so no record can inject markup or script.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import plotly.offline

from tokbench.catalog import suite_entries
from tokbench.comparability import compares_with
from tokbench.provenance import tokbench_version
from tokbench.records import record_to_json
from tokbench.report.coverage import load_coverage
from tokbench.report.exports import frame_to_csv
from tokbench.report.figures import (
    CorrelationPoint,
    rank_correlation_figure,
    rate_distortion_figure,
    record_metric,
    tokbench_bucket_figures,
)
from tokbench.report.grouping import protocol_groups
from tokbench.report.metric_info import axis_title, metric_direction, primary_metric, rank_records
from tokbench.report.rate_quality import has_token_sweeps, rate_quality_figure
from tokbench.report.site_comparability import COMPARABILITY_NOTE, comparability_html, compare_reported
from tokbench.report.site_html import (
    RATE_METRICS,
    board,
    esc,
    escape_script_json,
    figure_html,
    is_bucket,
    metric_keys,
    protocol_label,
    reported_label,
    safe_url,
)
from tokbench.report.site_index import COVERAGE_PAGE, coverage_body, index_body
from tokbench.report.site_out import check_out, install, new_staging, write_manifest
from tokbench.report.site_pages import leaderboard_table, protocol_card, record_body
from tokbench.report.site_tokbench import tokbench_section
from tokbench.report.video_figures import FRAME_RATE, video_rate_figures
from tokbench.store import RecordStore

__all__ = [
    "SiteSummary",
    "build_site",
    "correlation_points",
    "escape_script_json",
    "primary_metric",
    "protocol_groups",
    "rank_records",
    "safe_url",
    "suite_page_name",
]

logger = logging.getLogger(__name__)
_ASSETS = ("site.css", "site.js")
_REPORTED_NOTE = (
    '<p class="muted">Copied exactly from papers, official repositories and project pages, each row '
    "with its source. They are <b>not</b> reproduced by tokbench, were measured under the sources' own "
    "protocols (each source table is its own protocol hash) and are <b>never ranked</b>.</p>"
)


@dataclass(frozen=True)
class SiteSummary:
    """What ``build_site`` wrote: HTML pages, records shown, total bytes of the site and build seconds."""

    out: Path
    pages: int
    records: int
    bytes: int
    seconds: float


def build_site(store_root: Path, out: Path) -> SiteSummary:
    """Build the site of every record in ``store_root`` into ``out`` and return what was written.

    A malformed record file is skipped with a warning naming the file and field. ``out`` must be new,
    empty or an earlier build holding only the files its manifest (``.tokbench-site``) lists, and must
    neither contain the store nor lie inside it; it is replaced only once the new build is complete,
    and only the files the earlier build wrote are deleted.
    """
    start = time.perf_counter()
    out = Path(out)
    owned = check_out(Path(store_root), out)
    scan = RecordStore(Path(store_root)).scan()
    for problem in scan.problems:
        logger.warning("site build: skipped %s", problem.message)
    records = list(scan.records)
    staging = new_staging(out)
    try:
        _write_site(records, staging)
        write_manifest(staging)
        size = sum(path.stat().st_size for path in staging.rglob("*") if path.is_file())
        pages = sum(1 for _ in staging.rglob("*.html"))
        install(staging, out, owned)
    finally:
        if staging.exists():
            shutil.rmtree(staging)  # our own staging folder, never renamed into place
    return SiteSummary(out, pages, len(records), size, time.perf_counter() - start)


def suite_page_name(suite: str) -> str:
    """The file of a suite's main page (``index`` and ``coverage`` are taken by the site's own pages)."""
    return f"{suite}@suite.html" if suite in ("index", "coverage") else f"{suite}.html"


def correlation_points(
    x_records: list[dict], gen_records: list[dict], x_metric: str, y_metric: str = "gfid"
) -> list[CorrelationPoint]:
    """Pair each generator record (``model.arguments.tokenizer``) with the tokenizer records it names.

    Only records of one source are paired, and each point's group names the two protocols, so ranks
    are compared only within one protocol pair.
    """
    points = []
    for gen in gen_records:
        tokenizer = gen["model"].get("arguments", {}).get("tokenizer") or gen.get("generation", {}).get(
            "tokenizer"
        )  # reproduced gen records name it under generation.tokenizer, e.g. "sd-vae:variant=sd-ft-ema"
        y = record_metric(gen, y_metric)
        if tokenizer is None or y is None or not math.isfinite(y):
            continue
        for tok in x_records:
            x = record_metric(tok, x_metric)
            if x is None and tok["suite"]["name"] == _FID_SUITES.get(x_metric):
                x = record_metric(tok, "fid")  # reproduced recon/pfid records keep the metric's key
            named = _names_tokenizer(tokenizer, tok["model"])
            if tok["source"] != gen["source"] or not named or x is None or not math.isfinite(x):
                continue
            x_label, y_label = protocol_label(tok), protocol_label(gen)
            group = x_label if x_label == y_label else f"{x_label} × {y_label}"
            points.append(CorrelationPoint(f"{tokenizer} → {gen['model']['name']}", x, y, group))
    return points


#: The suite whose reproduced ``fid`` is the correlation's x metric.
_FID_SUITES = {"rfid": "recon", "pfid": "pfid"}


def _names_tokenizer(tokenizer: str, model: dict) -> bool:
    """Whether ``tokenizer`` (a name, a spec, or ``name:key=value,...``) names this record's model."""
    if tokenizer in (model["name"], model["spec"]):
        return True
    name, _, text = tokenizer.partition(":")
    pairs = [item.partition("=") for item in text.split(",")] if text else []
    arguments = model.get("arguments") or {}
    return bool(pairs) and name == model["name"] and all(str(arguments.get(k)) == v for k, _, v in pairs)


# --- the whole site -----------------------------------------------------------------------------------


class _Site:
    """Writes the files of one build; knows every suite and the page of every record."""

    def __init__(self, records: list[dict], root: Path):
        self.root = root
        self.records = records
        self.suites: dict[str, list[dict]] = defaultdict(list)
        ids: dict[str, int] = defaultdict(int)
        for record in records:
            self.suites[record["suite"]["name"]].append(record)
            ids[record["record_id"]] += 1
        self.record_stem = {  # an id stored under both sources gets one page per source
            (r["source"], r["record_id"]): r["record_id"]
            if ids[r["record_id"]] == 1
            else f"{r['record_id']}-{r['source']}"
            for r in records
        }
        self.figures = 0
        self.comparisons: dict[str, tuple[list[dict], list[str]]] = {}

    def comparison(self, reported: dict) -> tuple[list[dict], list[str]]:
        """The reproduced protocols a reported record is comparable with, and why not with the others."""
        digest = reported["protocol_hash"]
        if digest not in self.comparisons:
            suite = reported["suite"]["name"]
            family = [
                r
                for r in self.records
                if r["source"] == "reproduced"
                and compares_with(
                    suite, r["suite"]["name"], reported["model"].get("kind"), r["model"].get("kind")
                )
            ]
            self.comparisons[digest] = compare_reported(
                reported, [group[0] for group in protocol_groups(family)]
            )
        return self.comparisons[digest]

    def next_figure_id(self) -> str:
        self.figures += 1
        return f"figure-{self.figures}"

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)

    def record_href(self, record: dict) -> str:
        return f"records/{self.record_stem[(record['source'], record['record_id'])]}.html"

    def page(self, title: str, body: str, prefix: str = "", current: str | None = None) -> str:
        """A whole document; plotly.js is loaded only when the body has figures."""
        nav = "".join(
            f'<a href="{prefix}{suite_page_name(s)}"{" class=current" if s == current else ""}>{esc(s)}</a>'
            for s in sorted(self.suites)
        )
        here = " class=current" if current == COVERAGE_PAGE else ""
        nav += f'<a href="{prefix}{COVERAGE_PAGE}"{here}>coverage</a>'
        plotly_js = f'<script src="{prefix}assets/plotly.min.js"></script>'
        counts: dict[str, int] = defaultdict(int)
        for record in self.records:
            counts[record["source"]] += 1
        return "\n".join(
            [
                '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{esc(title)}</title>",
                f'<link rel="stylesheet" href="{prefix}assets/site.css">',
                plotly_js if 'class="plotly-figure"' in body else "",
                f'<script src="{prefix}assets/site.js"></script>',
                "</head><body>",
                f'<header class="top"><a class="brand" href="{prefix}index.html">tokbench leaderboard</a>'
                f"<nav>{nav}</nav></header>",
                f"<main>{body}</main>",
                f"<footer>Built by tokbench {esc(tokbench_version())} from {len(self.records)} records "
                f"({counts['reproduced']} reproduced, {counts['reported']} reported). Reproduced rows are "
                "ranked only against rows of the same protocol hash; reported rows are never ranked."
                "</footer>\n</body></html>\n",
            ]
        )

    def write_exports(self, stem: str, rows: list[dict]) -> None:
        self.write(f"{stem}.json", json.dumps(rows, indent=1, allow_nan=False, ensure_ascii=False) + "\n")
        self.write(f"{stem}.csv", frame_to_csv(pd.DataFrame(rows)))


def _write_site(records: list[dict], root: Path) -> None:
    site = _Site(records, root)
    assets = resources.files("tokbench.report").joinpath("site_assets")
    for name in _ASSETS:
        site.write(f"assets/{name}", assets.joinpath(name).read_text(encoding="utf-8"))
    site.write("assets/plotly.min.js", plotly.offline.get_plotlyjs())
    for suite, members in sorted(site.suites.items()):
        _write_suite(site, suite, members)
    for record in records:
        stem = site.record_stem[(record["source"], record["record_id"])]
        suite_href = f"../{suite_page_name(record['suite']['name'])}"
        reported = record["source"] == "reported"
        comparability = comparability_html(record, *site.comparison(record)) if reported else None
        body = record_body(record, stem, suite_href, comparability)
        title = f"tokbench · {record['model']['spec']}"
        site.write(
            f"records/{stem}.html", site.page(title, body, prefix="../", current=record["suite"]["name"])
        )
        site.write(f"records/{stem}.json", record_to_json(record, where=f"record {record['record_id']}"))
    site.write(
        "index.html",
        site.page("tokbench leaderboard", index_body(site.suites, suite_entries(), suite_page_name)),
    )
    coverage = coverage_body(load_coverage())
    site.write(COVERAGE_PAGE, site.page("tokbench · tokenizer coverage", coverage, current=COVERAGE_PAGE))


# --- suite pages --------------------------------------------------------------------------------------


def _write_suite(site: _Site, suite: str, members: list[dict]) -> None:
    groups = protocol_groups([r for r in members if r["source"] == "reproduced"])
    main = suite_page_name(suite)
    stems = [suite] + [f"{suite}@{group[0]['protocol_hash'][:12]}" for group in groups[1:]]
    nav = ""
    if len(groups) > 1:
        links = [
            f'<a href="{main if i == 0 else stems[i] + ".html"}">{esc(protocol_label(group[0]))}'
            f"{' (latest)' if i == 0 else ''}</a> · {len(group)} records"
            for i, group in enumerate(groups)
        ]
        nav = f'<p class="muted">Reproduced protocols: {" | ".join(links)}</p>'
    for index, (stem, group) in enumerate(zip(stems, groups or [[]], strict=True)):
        parts = [f"<h1>{esc(suite)}</h1>", nav]
        if index > 0:
            parts.append(
                f'<div class="banner">You are viewing an older or other protocol of <b>{esc(suite)}</b>. '
                f'The latest protocol, and the reported rows, are on <a href="{main}">{esc(main)}</a>.</div>'
            )
        parts.append(_reproduced_section(site, group, stem))
        if index == 0:
            parts.append(_reported_section(site, [r for r in members if r["source"] == "reported"], suite))
            parts.append(_correlation_section(site) if suite == "gen" else tokbench_section(site, suite))
        page_name = main if index == 0 else f"{stem}.html"
        site.write(page_name, site.page(f"tokbench · {suite}", "\n".join(parts), current=suite))


def _reproduced_section(site: _Site, group: list[dict], stem: str) -> str:
    heading = '<h2>Reproduced by tokbench <span class="badge reproduced">reproduced</span></h2>'
    if not group:
        empty = '<p class="muted">No reproduced records for this suite yet.</p>'
        return f'<section class="reproduced-section">{heading}{empty}</section>'
    primary = primary_metric(group)
    ranks = rank_records(group, primary) if primary else {}
    columns, rows, export = leaderboard_table(group, ranks, primary, site.record_href)
    site.write_exports(stem, export)
    rank_note = (
        f"Ranked by <b>{esc(axis_title(primary, group))}</b> (<code>{esc(primary)}</code>, "
        f"{metric_direction(primary, group)} is better)."
        if primary
        else "No rank column: this suite has no ranking metric."
    )
    return "\n".join(
        [
            '<section class="reproduced-section">',
            heading,
            protocol_card(group[0], len(group)),
            f'<p class="muted">{rank_note} Values are means ± 95% confidence half-widths where the '
            "record has them.</p>",
            board(f"board-{stem}", columns, rows, exports=stem, css=""),
            _figures(site, group, "reproduced"),
            "</section>",
        ]
    )


def _reported_section(site: _Site, records: list[dict], suite: str) -> str:
    if not records:
        return ""
    groups = protocol_groups(records)
    comparable = {}
    notes = []
    for group in groups:
        matches, reasons = site.comparison(group[0])
        comparable[group[0]["protocol_hash"]] = ", ".join(protocol_label(r) for r in matches) or "none"
        source = group[0]["protocol"].get("source_name") or group[0].get("citation", {}).get("title", "")
        notes.append(
            f"<li><b>{esc(reported_label(group[0]))}</b> · {esc(source)}: "
            f"{comparability_html(group[0], matches, reasons)}</li>"
        )
    columns, rows, export = leaderboard_table(records, None, None, site.record_href, comparable=comparable)
    stem = f"{suite}@reported"
    site.write_exports(stem, export)
    charts = [_figures(site, group, reported_label(group[0])) for group in groups]
    return "\n".join(
        [
            '<section class="reported-section">',
            '<h2>Reported by papers <span class="badge reported">reported</span></h2>',
            _REPORTED_NOTE,
            f'<div class="card comparability">{COMPARABILITY_NOTE}<ul>{"".join(notes)}</ul></div>',
            board(f"board-{stem}", columns, rows, exports=stem, css="reported"),
            *charts,
            "</section>",
        ]
    )


# --- figures ------------------------------------------------------------------------------------------


def _figures(site: _Site, records: list[dict], label: str) -> str:
    """Rate–distortion figures (one per quality metric; video: per-frame fidelity and rFVD against
    bits per pixel per frame) and TokBench bucket bars for one protocol."""
    keys = metric_keys(records, None)
    quality = [k for k in keys if metric_direction(k, records) == "higher" and not is_bucket(k)]
    quality += [k for k in keys if k in ("rfid", "pfid", "gfid")]
    blocks = []
    sweeps = has_token_sweeps(records)
    for x in RATE_METRICS:
        if (x == "num_tokens" and sweeps) or x == FRAME_RATE:  # drawn below, with the Pareto front
            continue
        plotted = [r for r in records if (v := record_metric(r, x)) is not None and math.isfinite(v)]
        if len(plotted) < 2:
            continue
        for y in quality:
            if y != x and sum(record_metric(r, y) is not None for r in plotted) >= 2:
                figure = rate_distortion_figure(records, x=x, y_metrics=(y,))
                title = f"{axis_title(y, records)} vs {axis_title(x, records)}"
                blocks.append(figure_html(figure, title, site.next_figure_id()))
    text = ""
    if blocks:
        text = f'<h3>{esc(label)}: rate–distortion</h3><div class="figures">{"".join(blocks)}</div>'
    if sweeps:
        heading = f"<h3>{esc(label)}: quality vs tokens and bytes per image</h3>"
        text += heading + figure_html(rate_quality_figure(records), None, site.next_figure_id())
    for title, figure in video_rate_figures(records):
        text += f"<h3>{esc(label)}: {esc(title)}</h3>" + figure_html(figure, None, site.next_figure_id())
    bucketed = [r for r in records if any(is_bucket(k) for k in r["metrics"])]
    if bucketed:
        for suffix, figure in tokbench_bucket_figures(bucketed):
            chart = figure_html(figure, None, site.next_figure_id())
            text += f"<h3>{esc(label + suffix)}: bucket bars</h3>" + chart
    return text


def _correlation_section(site: _Site) -> str:
    gen = site.suites.get("gen", [])
    tokenizers = site.suites.get("recon", []) + site.suites.get("pfid", [])
    blocks = []
    for x_metric in ("rfid", "pfid"):
        for source in ("reproduced", "reported"):
            x_records = [r for r in tokenizers if r["source"] == source]
            points = correlation_points(x_records, [r for r in gen if r["source"] == source], x_metric)
            if points:
                figure = rank_correlation_figure(points, x_metric, "gfid")
                title = f"{axis_title(x_metric, x_records)} vs {axis_title('gfid', gen)} ({source})"
                blocks.append(figure_html(figure, title, site.next_figure_id()))
    if not blocks:
        return ""
    return (
        '<section><h2>Does reconstruction predict generation?</h2><p class="muted">Each point pairs a '
        "generator with the tokenizer it was trained on. Spearman's ρ is computed within one protocol pair "
        "and one source; reported and reproduced numbers are never mixed.</p>"
        f'<div class="figures">{"".join(blocks)}</div></section>'
    )
