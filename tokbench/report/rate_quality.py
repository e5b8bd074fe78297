"""Rate–quality figures of sweeps: quality against tokens and bytes per image, or (video) against
bits per pixel per frame.

One curve per sweep: records of one model family whose identity arguments agree once the swept
rate argument (``num_tokens`` for tokenizers, ``quality`` for JPEG/WebP, ``crf`` for the video
codecs, ``factor`` for resize) is left out. Codecs have no tokens, so they appear on the bytes axis
only, beside the tokenizers. Given a ``role_of`` function (e.g. codec or tokenizer), each curve's
legend name starts with its role and the roles get different line styles. In each subplot the points
on the Pareto front (no other point has a lower rate and better quality) are marked.
Callers pass the records of one protocol hash.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from tokbench.adapters.spec import parse_model_spec
from tokbench.errors import ConfigError
from tokbench.report.figures import format_metric, format_number, record_metric
from tokbench.report.metric_info import axis_title, metric_info

#: Arguments that move a model along its own rate curve (token count, codec quality or CRF, resize
#: factor); the other arguments name the curve.
SWEPT_ARGUMENTS = ("num_tokens", "quality", "crf", "factor")
#: x axes of image sweeps: the token count, and the encoded size in bytes.
RATE_AXES = ("num_tokens", "bytes_per_image")
#: Every x axis a curve can be drawn on: (column title, axis title).
AXIS_TITLES = {
    "num_tokens": ("tokens per image", "tokens"),
    "bytes_per_image": ("bytes per image", "bytes"),
    "frame_bits_per_pixel": ("bits per pixel per frame", "bits per pixel per frame"),
}
#: Line dash of each role (curves without a role are solid).
ROLE_DASH = {"codec": "solid", "tokenizer": "dot"}
#: Quality metrics drawn when present (their direction comes from the records).
QUALITY_METRICS = ("psnr", "lpips", "fid", "rfid")
_PALETTE = qualitative.Plotly
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")


@dataclass(frozen=True)
class RatePoint:
    """One record on a rate–quality plane: rate ``x``, quality ``y`` and escaped hover text."""

    x: float
    y: float
    hover: str


@dataclass(frozen=True)
class RateCurve:
    """The points of one sweep (sorted by rate); ``name`` is the legend label, ``family`` the model,
    ``role`` what ``role_of`` called it ("" without one)."""

    name: str
    family: str
    points: tuple[RatePoint, ...]
    role: str = ""


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the non-dominated (rate, quality) points, by increasing rate.

    A point is dominated when another has a rate no larger and a quality no worse, one of them
    strictly; of identical points the first is kept.
    """
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1], i))
    front: list[int] = []
    best = -math.inf
    for index in order:
        quality = sign * points[index][1]
        if quality > best:
            front.append(index)
            best = quality
    return front


def record_bytes(record: dict) -> tuple[float | None, bool]:
    """Bytes per image and whether they were derived: the ``bytes_per_image`` metric, else
    ``num_tokens × log2(codebook_size) / 8`` from a record's integer ``codebook_size`` argument."""
    value = record_metric(record, "bytes_per_image")
    if value is not None:
        return value, False
    tokens = record_metric(record, "num_tokens")
    codebook = record["model"].get("arguments", {}).get("codebook_size")
    if tokens is None or isinstance(codebook, bool) or not isinstance(codebook, int) or codebook < 2:
        return None, False
    return tokens * math.log2(codebook) / 8.0, True


def _rate(record: dict, axis: str) -> tuple[float | None, bool]:
    return record_bytes(record) if axis == "bytes_per_image" else (record_metric(record, axis), False)


def _fixed_arguments(record: dict) -> tuple[tuple[str, str], ...]:
    """The identity arguments of a record's canonical spec other than the swept ones."""
    spec = record["model"]["spec"].split("@", 1)[0]
    try:
        parsed = parse_model_spec(spec)
    except ConfigError:  # reported rows carry free-form names, not specs
        return ()
    return tuple(sorted((k, v) for k, v in parsed.raw_args.items() if k not in SWEPT_ARGUMENTS))


def _curve_names(records: list[dict]) -> dict[tuple, str]:
    """Legend label of each (family, fixed arguments) key: the family, plus the arguments that
    differ between that family's curves."""
    keys = {(r["model"]["name"], _fixed_arguments(r)) for r in records}
    by_family: dict[str, list[tuple]] = defaultdict(list)
    for key in keys:
        by_family[key[0]].append(key)
    names = {}
    for family, members in by_family.items():
        values: dict[str, set[str | None]] = defaultdict(set)
        for _, arguments in members:
            for k, _ in arguments:
                values[k] |= {dict(arguments).get(k) for _, arguments in members}
        varying = {k for k, seen in values.items() if len(seen) > 1}
        for key in members:
            shown = ", ".join(f"{k}={v}" for k, v in key[1] if k in varying)
            names[key] = f"{family} ({shown})" if shown else family
    return names


def rate_quality_curves(
    records: list[dict], x: str, y: str, role_of: Callable[[dict], str] | None = None
) -> tuple[list[RateCurve], Counter[str]]:
    """The curves of ``y`` against ``x`` (an ``AXIS_TITLES`` name) and why other records are left out;
    with ``role_of``, each curve's name starts with its records' role ("codec: h264")."""
    if x not in AXIS_TITLES:
        raise ConfigError(f"x must be one of {', '.join(AXIS_TITLES)}, got {x!r}")
    names = _curve_names(records)
    grouped: dict[str, list[RatePoint]] = defaultdict(list)
    families: dict[str, str] = {}
    roles: dict[str, str] = {}
    excluded: Counter[str] = Counter()
    for record in records:
        rate, derived = _rate(record, x)
        quality = record_metric(record, y)
        if rate is None or quality is None:
            excluded[f"without {x if rate is None else y}"] += 1
            continue
        if not (math.isfinite(rate) and rate > 0):
            excluded[f"with {x} ≤ 0 or non-finite"] += 1
            continue
        if not math.isfinite(quality):
            excluded[f"with {y} = {format_number(quality)}"] += 1
            continue
        name = names[(record["model"]["name"], _fixed_arguments(record))]
        role = role_of(record) if role_of else ""
        name = f"{role}: {name}" if role else name
        note = " (derived: tokens × log2(codebook size) / 8)" if derived else ""
        hover = "<br>".join(
            [
                html.escape(record["model"]["spec"]),
                f"{html.escape(x)}: {format_number(rate)}{note}",
                f"{html.escape(y)}: {html.escape(format_metric(record, y))}",
            ]
        )
        grouped[name].append(RatePoint(rate, quality, hover))
        families[name], roles[name] = record["model"]["name"], role
    curves = [
        RateCurve(name, families[name], tuple(sorted(points, key=lambda p: (p.x, p.y))), roles[name])
        for name, points in sorted(grouped.items())
    ]
    return curves, excluded


def has_token_sweeps(records: list[dict]) -> bool:
    """True when at least two records carry a finite token count and some record a quality metric
    (then a rate–quality figure is worth drawing)."""
    counts = [record_metric(r, "num_tokens") for r in records]
    quality = any(key in QUALITY_METRICS for record in records for key in record["metrics"])
    return quality and sum(v is not None and math.isfinite(v) for v in counts) >= 2


def rate_quality_figure(
    records: list[dict],
    y_metrics: tuple[str, ...] | None = None,
    axes: tuple[str, ...] = RATE_AXES,
    role_of: Callable[[dict], str] | None = None,
) -> go.Figure:
    """Quality (rows) against each rate axis (columns; tokens and bytes per image by default), one
    curve per sweep (styled by role with ``role_of``), with the Pareto front of each subplot drawn as
    a dashed line through its points."""
    present = {key for record in records for key in record["metrics"]}
    rows = y_metrics if y_metrics is not None else tuple(m for m in QUALITY_METRICS if m in present)
    if not rows:
        raise ConfigError(
            f"no record has a quality metric among {', '.join(QUALITY_METRICS)}; nothing to plot"
        )
    figure = make_subplots(
        rows=len(rows),
        cols=len(axes),
        shared_xaxes="columns",
        horizontal_spacing=0.08,
        vertical_spacing=0.06,
        column_titles=[AXIS_TITLES[x][0] for x in axes] if len(axes) > 1 else None,
    )
    every_name = sorted(
        {c.name for y in rows for x in axes for c in rate_quality_curves(records, x, y, role_of)[0]}
    )
    style = {
        n: (_PALETTE[i % len(_PALETTE)], _SYMBOLS[(i // len(_PALETTE)) % len(_SYMBOLS)])
        for i, n in enumerate(every_name)
    }
    in_legend: set[str] = set()
    for row, y in enumerate(rows, start=1):
        for col, x in enumerate(axes, start=1):
            curves, excluded = rate_quality_curves(records, x, y, role_of)
            for curve in curves:
                color, symbol = style[curve.name]
                figure.add_trace(
                    go.Scatter(
                        x=[p.x for p in curve.points],
                        y=[p.y for p in curve.points],
                        hovertext=[p.hover for p in curve.points],
                        hoverinfo="text",
                        mode="markers" if len(curve.points) == 1 else "lines+markers",
                        name=html.escape(curve.name),
                        legendgroup=html.escape(curve.name),
                        showlegend=curve.name not in in_legend,
                        line={"color": color, "dash": ROLE_DASH.get(curve.role, "solid")},
                        marker={"color": color, "symbol": symbol, "size": 8},
                    ),
                    row=row,
                    col=col,
                )
                in_legend.add(curve.name)
            info = metric_info(y, records)
            higher = info is None or info.higher_is_better is not False  # unknown: higher is better
            _add_front(figure, curves, higher, row, col, show_legend=row == 1 and col == 1)
            if excluded:
                _annotate(figure, excluded, row, col)
            figure.update_xaxes(type="log", row=row, col=col)
        figure.update_yaxes(title_text=html.escape(axis_title(y, records)), row=row, col=1)
    for col, x in enumerate(axes, start=1):
        figure.update_xaxes(title_text=AXIS_TITLES[x][1], row=len(rows), col=col)
    figure.update_layout(height=320 * len(rows) + 60, hovermode="closest")
    return figure


def _add_front(
    figure: go.Figure, curves: list[RateCurve], higher_is_better: bool, row: int, col: int, show_legend: bool
) -> None:
    points = [p for curve in curves for p in curve.points]
    if len(points) < 2:
        return
    front = [points[i] for i in pareto_front([(p.x, p.y) for p in points], higher_is_better)]
    figure.add_trace(
        go.Scatter(
            x=[p.x for p in front],
            y=[p.y for p in front],
            mode="lines+markers",
            name="Pareto front",
            legendgroup="pareto-front",
            showlegend=show_legend,
            hoverinfo="skip",
            line={"color": "rgba(0, 0, 0, 0.55)", "dash": "dash", "shape": "hv"},
            marker={"symbol": "circle-open", "size": 15, "color": "rgba(0, 0, 0, 0.7)", "line": {"width": 2}},
        ),
        row=row,
        col=col,
    )


def _annotate(figure: go.Figure, excluded: Counter[str], row: int, col: int) -> None:
    lines = [
        f"{count} {'record' if count == 1 else 'records'} {html.escape(reason)} not shown"
        for reason, count in sorted(excluded.items())
    ]
    figure.add_annotation(
        text="<br>".join(lines),
        xref="x domain",
        yref="y domain",
        x=0.01,
        y=0.01,
        xanchor="left",
        yanchor="bottom",
        align="left",
        showarrow=False,
        font={"size": 10},
        bgcolor="rgba(255, 255, 255, 0.8)",
        row=row,
        col=col,
    )
