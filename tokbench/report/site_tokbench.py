"""The TokBench suite page's comparison: reproduced rows beside the published ones, per resolution."""

from __future__ import annotations

from typing import Any

from tokbench.report.figures import tokbench_bucket_figure, tokbench_comparison_records, tokbench_resolutions
from tokbench.report.site_html import figure_html


def tokbench_section(site: Any) -> str:
    """One bucket chart per resolution with the site's reproduced and reported ``tokbench`` bars, or ""."""
    members = site.suites.get("tokbench", [])
    reproduced = [r for r in members if r["source"] == "reproduced" and tokbench_resolutions(r)]
    reported = [r for r in members if r["source"] == "reported"]
    blocks = []
    for resolution in sorted({res for r in reproduced for res in tokbench_resolutions(r)}):
        rows = tokbench_comparison_records(reproduced, reported, resolution)
        if any(r["source"] == "reported" for r in rows):
            chart = figure_html(tokbench_bucket_figure(rows), None, site.next_figure_id())
            blocks.append(f"<h3>{resolution}px: reproduced beside reported</h3>{chart}")
    if not blocks:
        return ""
    return (
        '<section><h2>Reproduced beside reported</h2><p class="muted">Bars labelled <b>reproduced</b> '
        "were measured by tokbench (its judges and data, see the protocol card); bars labelled "
        "<b>reported</b> are the published TokBench numbers (PARSeq and antelopev2 on the official "
        "set). Different judges and data: compare shapes, not digits.</p>" + "".join(blocks) + "</section>"
    )
