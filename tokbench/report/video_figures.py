"""Video rate–distortion figures: per-frame fidelity and rFVD against bits per pixel per frame.

Codecs (H.264, H.265, AV1, the identity and resize baselines) and tokenizers are separate series:
a record's role is read from the model registry, whose adapters describe each released variant with
a ``ModelCard`` of kind "codec", "discrete", "continuous", ... (records themselves carry the adapter
kind "video-tokenizer" for both). The curves, Pareto fronts and escaping are those of the image
rate–quality figures (``tokbench.report.rate_quality``).
"""

from __future__ import annotations

import math
from functools import cache

import plotly.graph_objects as go

from tokbench.adapters.registry import MODELS
from tokbench.errors import TokbenchError
from tokbench.report.figures import record_metric
from tokbench.report.rate_quality import rate_quality_figure

#: The x axis of every video figure (the ``video-bits-per-pixel`` metric's key).
FRAME_RATE = "frame_bits_per_pixel"
#: Rows of the per-frame fidelity figure and of the rFVD figure, drawn when some record has them.
FRAME_FIDELITY = ("frame_psnr", "frame_ssim", "frame_lpips")
FVD_METRICS = ("rfvd",)


@cache
def model_role(name: str) -> str:
    """ "codec" when the adapter registered as ``name`` describes itself with a codec card, else
    "tokenizer" (also for names no adapter is registered under, e.g. reported rows)."""
    try:
        cards = MODELS.get(name).cards()
    except (TokbenchError, ImportError):  # unregistered, or an optional package is missing
        return "tokenizer"
    return "codec" if any(card.kind == "codec" for card in cards) else "tokenizer"


def record_role(record: dict) -> str:
    """The role of a record's model: "codec" or "tokenizer" (see ``model_role``)."""
    return model_role(record["model"]["name"])


def video_rate_figures(records: list[dict]) -> list[tuple[str, go.Figure]]:
    """(title, figure) of per-frame PSNR/SSIM/LPIPS and of rFVD against bits per pixel per frame,
    codecs and tokenizers as separate series; a figure is left out unless two records have a finite
    rate and one of its metrics."""
    rated = [r for r in records if (v := record_metric(r, FRAME_RATE)) is not None and math.isfinite(v)]
    figures = []
    for title, metrics in (
        ("per-frame fidelity vs bits per pixel per frame", FRAME_FIDELITY),
        ("rFVD vs bits per pixel per frame", FVD_METRICS),
    ):
        rows = tuple(m for m in metrics if sum(record_metric(r, m) is not None for r in rated) >= 2)
        if rows:
            figure = rate_quality_figure(records, rows, axes=(FRAME_RATE,), role_of=record_role)
            figures.append((title, figure))
    return figures
