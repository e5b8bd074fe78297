"""The site's index (every registered suite, with its records or "none yet") and coverage page."""

from __future__ import annotations

from collections.abc import Callable

from tokbench.catalog import SuiteEntry
from tokbench.report.coverage import HEADERS, CoverageRow, coverage_cells
from tokbench.report.grouping import protocol_groups
from tokbench.report.site_html import Column, board, esc, protocol_label

COVERAGE_PAGE = "coverage.html"
_LEAD = (
    '<p class="lead">Every number here is a record in the tokbench store. <span class="badge '
    'reproduced">reproduced</span> rows were measured by tokbench under the pinned protocol whose '
    'hash each page shows; <span class="badge reported">reported</span> rows are copied from papers '
    "and project pages with their citation, under their own protocols, and are never ranked with "
    "reproduced rows.</p>"
)


def index_body(
    suites: dict[str, list[dict]], entries: list[SuiteEntry], page_name: Callable[[str], str]
) -> str:
    """The index: one row per registered suite (and per suite that only the store knows), with its
    kind, latest reproduced protocol and record counts, or "none yet" when it has no records."""
    kinds = {e.name: e.kind or f"does not load: {e.error}" for e in entries}
    rows = []
    for suite in sorted(set(kinds) | set(suites)):
        members = suites.get(suite, [])
        kind = kinds.get(suite, "not on the suite path")
        if not members:
            cells = f"<td>{esc(suite)}</td><td>{esc(kind)}</td><td>none yet</td>"
            rows.append(f"<tr>{cells}" + '<td class="num" data-sort="0">0</td>' * 4 + "</tr>")
            continue
        reproduced = [r for r in members if r["source"] == "reproduced"]
        groups = protocol_groups(reproduced)
        latest = protocol_label(groups[0][0]) if groups else "none reproduced yet"
        counts = (
            len(groups[0]) if groups else 0,
            len(reproduced),
            len(members) - len(reproduced),
            max(len(groups) - 1, 0),
        )
        rows.append(
            f'<tr><td><a href="{page_name(suite)}">{esc(suite)}</a></td><td>{esc(kind)}</td>'
            f"<td>{esc(latest)}</td>"
            + "".join(f'<td class="num" data-sort="{count}">{count}</td>' for count in counts)
            + "</tr>"
        )
    columns = [
        Column("suite"),
        Column("kind", filter="kind"),
        Column("latest protocol (version · hash)"),
        Column("records, latest protocol", numeric=True),
        Column("reproduced, all protocols", numeric=True),
        Column("reported", numeric=True),
        Column("older protocols", numeric=True),
    ]
    coverage = (
        f"<p>Which published tokenizers tokbench can run, and how each adapter is verified: "
        f'<a href="{COVERAGE_PAGE}">tokenizer coverage</a>.</p>'
    )
    empty = "" if suites else "<p>The store has no records yet.</p>"
    table = board("suites", columns, rows, None, "")
    return "\n".join(["<h1>tokbench leaderboard</h1>", _LEAD, empty, coverage, table])


def coverage_body(rows: list[CoverageRow]) -> str:
    """The coverage page: every tokenizer of TokBench's table and the seed families, with its adapter,
    hub id, verification and status (from ``tokbench/report/coverage.yaml``)."""
    html_rows = []
    for cells in coverage_cells(rows):
        parts = [
            f"<td><code>{esc(cell)}</code></td>"
            if index in (2, 3) and cell != "–"
            else f"<td>{esc(cell)}</td>"
            for index, cell in enumerate(cells)
        ]
        html_rows.append(f"<tr>{''.join(parts)}</tr>")
    columns = [Column(name, filter="verified" if name == "verified" else None) for name in HEADERS]
    lead = (
        "<p class=\"lead\">Every tokenizer row of TokBench's published table and of the seed papers' "
        "families, with the tokbench adapter that runs it. <b>golden</b>: reproduces tensors made by the "
        "official code bit for bit; <b>library</b>: the official architecture as diffusers, transformers or "
        "Pillow ship it. Status <b>planned</b>: the adapter is being built; rows without an adapter say "
        "why. <code>tokbench list models --details</code> lists every released variant of each adapter.</p>"
    )
    return "\n".join(["<h1>Tokenizer coverage</h1>", lead, board("coverage", columns, html_rows, None, "")])
