"""The TokBench suite pages' comparison: reproduced rows beside the published ones, per resolution.

The image suites (``tokbench``, ``tokbench-official``) compare with the reported ``tokbench`` rows,
the video suites (``tokbench-video``, ``tokbench-video-official``) with the reported
``tokbench-video`` rows.
"""

from __future__ import annotations

from typing import Any

from tokbench.report.figures import tokbench_bucket_figure, tokbench_comparison_records, tokbench_resolutions
from tokbench.report.site_html import figure_html

#: Suite page → the suite whose reported rows its reproduced bars stand beside.
REPORTED_SUITE = {
    "tokbench": "tokbench",
    "tokbench-official": "tokbench",
    "tokbench-video": "tokbench-video",
    "tokbench-video-official": "tokbench-video",
}


def tokbench_section(site: Any, suite: str = "tokbench") -> str:
    """One bucket chart per resolution with the reproduced bars of ``suite`` beside the reported rows
    of ``REPORTED_SUITE[suite]``, or "" (also for suites without TokBench rows)."""
    if suite not in REPORTED_SUITE:
        return ""
    members = site.suites.get(suite, [])
    reproduced = [r for r in members if r["source"] == "reproduced" and tokbench_resolutions(r)]
    reported = [r for r in site.suites.get(REPORTED_SUITE[suite], []) if r["source"] == "reported"]
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
