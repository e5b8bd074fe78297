"""Rate–distortion figures: one subplot per quality metric, one curve per model family.

Records of different protocol hashes are not comparable; callers pass records of one protocol.
Every string taken from a record is HTML-escaped, because Plotly renders some HTML in labels.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from tokbench.errors import ConfigError
from tokbench.records import metric_value
from tokbench.report.metric_info import axis_title

_PALETTE = qualitative.Plotly
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")
_ROW_HEIGHT_PX = 340


@dataclass(frozen=True)
class _Point:
    """One plotted record: its coordinates and the escaped hover text."""

    x: float
    y: float
    hover: str


def record_metric(record: dict, key: str) -> float | None:
    """``record["metrics"][key]`` as a float ("inf"/"-inf" parsed), or None when absent."""
    value = record["metrics"].get(key)
    return None if value is None else metric_value(value)


def format_number(value: float) -> str:
    """Format a number to 4 significant digits ("inf", "-inf" and "nan" as such)."""
    return f"{value:.4g}"


def format_metric(record: dict, key: str) -> str:
    """Format a metric with its ``<key>_ci95`` half-width as "value ± ci", or "" when absent."""
    value = record_metric(record, key)
    if value is None:
        return ""
    ci95 = record_metric(record, f"{key}_ci95")
    if ci95 is None:
        return format_number(value)
    return f"{format_number(value)} ± {format_number(ci95)}"


def _hover_text(record: dict, x: str, y: str) -> str:
    """Escaped hover text: the full model spec, then x and y with their CIs."""
    lines = [
        html.escape(record["model"]["spec"]),
        f"{html.escape(x)}: {html.escape(format_metric(record, x))}",
        f"{html.escape(y)}: {html.escape(format_metric(record, y))}",
    ]
    return "<br>".join(lines)


def _exclusion_reason(record: dict, key: str) -> str | None:
    """Why ``key`` of this record cannot be plotted, or None when it can."""
    value = record_metric(record, key)
    if value is None:
        return f"without {key}"
    if not math.isfinite(value):
        return f"with {key} = {format_number(value)}"
    return None


def _annotation_text(excluded: Counter[str]) -> str:
    """One escaped line per exclusion reason, e.g. "2 records without bits_per_pixel not shown"."""
    lines = []
    for reason, count in sorted(excluded.items()):
        noun = "record" if count == 1 else "records"
        lines.append(f"{count} {noun} {html.escape(reason)} not shown")
    return "<br>".join(lines)


def _family_points(records: list[dict], x: str, y: str) -> tuple[dict[str, list[_Point]], Counter[str]]:
    """Group plottable records by model name (points sorted by x) and count the excluded ones."""
    families: dict[str, list[_Point]] = defaultdict(list)
    excluded: Counter[str] = Counter()
    for record in records:
        reason = _exclusion_reason(record, x) or _exclusion_reason(record, y)
        if reason is not None:
            excluded[reason] += 1
            continue
        point = _Point(record_metric(record, x), record_metric(record, y), _hover_text(record, x, y))
        families[record["model"]["name"]].append(point)
    for points in families.values():
        points.sort(key=lambda point: (point.x, point.y))
    return dict(families), excluded


def rate_distortion_figure(
    records: list[dict], x: str = "bits_per_pixel", y_metrics: tuple[str, ...] = ("psnr", "ssim")
) -> go.Figure:
    """Plot each y metric against ``x`` with one curve per ``model.name``; excluded records are annotated."""
    if not y_metrics:
        raise ConfigError("y_metrics is empty; expected at least one metric name such as ('psnr',)")
    family_names = sorted({record["model"]["name"] for record in records})
    style = {
        name: (_PALETTE[i % len(_PALETTE)], _SYMBOLS[(i // len(_PALETTE)) % len(_SYMBOLS)])
        for i, name in enumerate(family_names)
    }
    figure = make_subplots(rows=len(y_metrics), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    in_legend: set[str] = set()
    for row, y in enumerate(y_metrics, start=1):
        families, excluded = _family_points(records, x, y)
        for name in family_names:
            points = families.get(name)
            if not points:
                continue
            color, symbol = style[name]
            figure.add_trace(
                go.Scatter(
                    x=[point.x for point in points],
                    y=[point.y for point in points],
                    hovertext=[point.hover for point in points],
                    hoverinfo="text",
                    mode="markers" if len(points) == 1 else "lines+markers",
                    name=html.escape(name),
                    legendgroup=html.escape(name),
                    showlegend=name not in in_legend,
                    line={"color": color},
                    marker={"color": color, "symbol": symbol, "size": 8},
                ),
                row=row,
                col=1,
            )
            in_legend.add(name)
        figure.update_yaxes(title_text=html.escape(axis_title(y, records)), row=row, col=1)
        if excluded:
            figure.add_annotation(
                text=_annotation_text(excluded),
                xref="x domain",
                yref="y domain",
                x=0.01,
                y=0.99,
                xanchor="left",
                yanchor="top",
                align="left",
                showarrow=False,
                font={"size": 11},
                bgcolor="rgba(255, 255, 255, 0.8)",
                row=row,
                col=1,
            )
    figure.update_xaxes(title_text=html.escape(axis_title(x, records)), row=len(y_metrics), col=1)
    figure.update_layout(height=_ROW_HEIGHT_PX * len(y_metrics), hovermode="closest")
    return figure


_BUCKETS = ("small", "medium", "large")


def tokbench_bucket_figure(
    records: list[dict], metrics: tuple[str, ...] = ("t_acc", "t_ned", "f_sim")
) -> go.Figure:
    """Grouped bars of ``<metric>_small/_medium/_large`` per model, one subplot per metric with buckets."""
    shown = [m for m in metrics if any(f"{m}_{b}" in r["metrics"] for r in records for b in _BUCKETS)]
    if not shown:
        raise ConfigError(f"no record has bucket metrics such as {metrics[0]}_small; nothing to plot")
    names = [record["model"]["name"] for record in records]
    unique = len(set(names)) == len(names)
    labels = [
        html.escape(name if unique else record["model"]["spec"])
        for name, record in zip(names, records, strict=True)
    ]
    order = sorted(
        range(len(records)),
        key=lambda i: -(record_metric(records[i], f"{shown[0]}_mean") or -math.inf),
    )
    figure = make_subplots(rows=len(shown), cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, metric in enumerate(shown, start=1):
        for index, bucket in enumerate(_BUCKETS):
            key = f"{metric}_{bucket}"
            values = [record_metric(records[i], key) for i in order]
            figure.add_trace(
                go.Bar(
                    x=[labels[i] for i in order],
                    y=[math.nan if value is None else value for value in values],
                    name=bucket,
                    legendgroup=bucket,
                    showlegend=row == 1,
                    marker={"color": _PALETTE[index]},
                ),
                row=row,
                col=1,
            )
        figure.update_yaxes(title_text=html.escape(metric), row=row, col=1)
    figure.update_layout(barmode="group", height=300 * len(shown) + 120, legend_title_text="bucket")
    return figure


_RESOLUTION_KEY = re.compile(r"^(t_acc|t_ned|f_sim)_(\d+)_(small|medium|large|mean)$")


def tokbench_resolutions(record: dict) -> list[int]:
    """The resolutions of a reproduced TokBench record (keys ``t_acc_<R>_<bucket>``), ascending."""
    return sorted({int(m.group(2)) for key in record["metrics"] if (m := _RESOLUTION_KEY.match(key))})


def tokbench_resolution_view(record: dict, resolution: int, label: str | None = None) -> dict:
    """A copy of ``record`` whose metrics are its ``<metric>_<resolution>_<bucket>`` values renamed
    ``<metric>_<bucket>`` (the shape of the published per-resolution rows); ``label`` renames the model."""
    metrics = {
        f"{m.group(1)}_{m.group(3)}": value
        for key, value in record["metrics"].items()
        if (m := _RESOLUTION_KEY.match(key)) and int(m.group(2)) == resolution
    }
    model = {**record["model"], **({"name": label, "spec": label} if label else {})}
    return {**record, "metrics": metrics, "model": model}


def tokbench_bucket_figures(records: list[dict]) -> list[tuple[str, go.Figure]]:
    """Bucket bars: one figure of the records with plain ``t_acc_small`` keys, and one per resolution
    of reproduced multi-resolution records, each with its title suffix (``" @ 256px"``)."""
    plain = [
        r
        for r in records
        if any(k.rsplit("_", 1)[-1] in _BUCKETS and not _RESOLUTION_KEY.match(k) for k in r["metrics"])
    ]
    groups = [("", plain)] if plain else []
    for resolution in sorted({res for r in records for res in tokbench_resolutions(r)}):
        views = [
            tokbench_resolution_view(r, resolution) for r in records if resolution in tokbench_resolutions(r)
        ]
        groups.append((f" @ {resolution}px", views))
    return [(suffix, tokbench_bucket_figure(group)) for suffix, group in groups]


def tokbench_comparison_records(reproduced: list[dict], reported: list[dict], resolution: int) -> list[dict]:
    """Reproduced views and reported rows at one resolution, labelled ``name · reproduced|reported``."""
    rows = [
        tokbench_resolution_view(r, resolution, f"{r['model']['name']} · reproduced")
        for r in reproduced
        if resolution in tokbench_resolutions(r)
    ]
    for record in reported:
        place = record.get("preprocess") or record.get("protocol") or {}
        if place.get("resolution") == resolution:
            name = f"{record['model']['name']} · reported"
            rows.append({**record, "model": {**record["model"], "name": name, "spec": name}})
    return rows


@dataclass(frozen=True)
class CorrelationPoint:
    """One tokenizer–generator pair: x (e.g. rFID) and y (gFID); ``group`` names the protocol pair."""

    label: str
    x: float
    y: float
    group: str


def spearman_rho(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None below 3 points or with constant ranks."""
    import pandas as pd

    if len(xs) != len(ys):
        raise ConfigError(f"xs and ys differ in length ({len(xs)} vs {len(ys)})")
    if len(xs) < 3:
        return None
    rho = pd.Series(xs, dtype="float64").rank().corr(pd.Series(ys, dtype="float64").rank())
    return None if math.isnan(rho) else float(rho)


def rank_correlation_figure(points: list[CorrelationPoint], x: str, y: str) -> go.Figure:
    """Scatter ``y`` against ``x``, one trace per group, each named with its Spearman rho and n."""
    groups: dict[str, list[CorrelationPoint]] = defaultdict(list)
    for point in points:
        groups[point.group].append(point)
    figure = go.Figure()
    for index, (group, members) in enumerate(sorted(groups.items())):
        rho = spearman_rho([p.x for p in members], [p.y for p in members])
        stat = f"Spearman ρ = {rho:.2f}" if rho is not None else "ρ undefined"
        figure.add_trace(
            go.Scatter(
                x=[p.x for p in members],
                y=[p.y for p in members],
                mode="markers",
                name=f"{html.escape(group)}: {stat}, n = {len(members)}",
                hovertext=[
                    f"{html.escape(p.label)}<br>{html.escape(x)}: {format_number(p.x)}"
                    f"<br>{html.escape(y)}: {format_number(p.y)}"
                    for p in members
                ],
                hoverinfo="text",
                marker={"size": 10, "color": _PALETTE[index % len(_PALETTE)]},
            )
        )
    figure.update_xaxes(title_text=html.escape(axis_title(x, [])))
    figure.update_yaxes(title_text=html.escape(axis_title(y, [])))
    figure.update_layout(
        height=420, hovermode="closest", showlegend=True, legend={"orientation": "h", "y": -0.25}
    )
    return figure


#: x axes of the ViT token-reduction curves (``tokbench.semantic.vit_track`` records).
REDUCTION_AXES = ("tokens_kept", "encoder_gflops")


def token_reduction_figure(records: list[dict]) -> go.Figure:
    """Accuracy against tokens kept and against measured image-encoder GFLOPs, one curve per pruner.

    The accuracy is zero-shot top-1 when any record has it (labelled data), else the cosine of the
    reduced and full image embeddings.
    """
    y = "zs_top1" if any(record_metric(r, "zs_top1") is not None for r in records) else "clip_cosine"
    names = sorted({record["model"]["name"] for record in records})
    figure = make_subplots(rows=1, cols=len(REDUCTION_AXES), shared_yaxes=True, horizontal_spacing=0.06)
    for column, x in enumerate(REDUCTION_AXES, start=1):
        families, _ = _family_points(records, x, y)
        for index, name in enumerate(names):
            points = families.get(name)
            if not points:
                continue
            color = _PALETTE[index % len(_PALETTE)]
            figure.add_trace(
                go.Scatter(
                    x=[point.x for point in points],
                    y=[point.y for point in points],
                    hovertext=[point.hover for point in points],
                    hoverinfo="text",
                    mode="lines+markers",
                    name=html.escape(name),
                    legendgroup=html.escape(name),
                    showlegend=column == 1,
                    line={"color": color},
                    marker={"color": color, "size": 8},
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text=html.escape(axis_title(x, records)), row=1, col=column)
    figure.update_yaxes(title_text=html.escape(axis_title(y, records)), row=1, col=1)
    figure.update_layout(height=_ROW_HEIGHT_PX + 60, hovermode="closest")
    return figure
