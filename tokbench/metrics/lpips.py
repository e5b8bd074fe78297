"""LPIPS between originals and reconstructions: one value per image pair, averaged over images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from tokbench.errors import ConfigError
from tokbench.metrics.base import MeanMetric

if TYPE_CHECKING:
    from tokbench.judges.lpips import LpipsJudge


class LearnedPerceptualImagePatchSimilarity(MeanMetric):
    """Mean per-image LPIPS v0.1 of uint8 reconstructions against uint8 originals (lower is better).

    The judge (``tokbench.judges.lpips.LpipsAlex`` or ``LpipsVgg16``) is built by the caller, which
    resolves its weights, and injected; the metric does no I/O. ``options()`` is the judge's
    ``describe()``, so the protocol hash names the backbone and every weights sha256, and shards
    scored with different judges refuse to merge.
    """

    key = "lpips"
    label = "LPIPS"
    inputs: ClassVar[tuple[str, ...]] = ("originals", "reconstructions")
    higher_is_better = False

    def __init__(self, judge: LpipsJudge) -> None:
        if not (callable(getattr(judge, "distance", None)) and callable(getattr(judge, "describe", None))):
            raise ConfigError(
                f"judge must be an LPIPS judge with distance() and describe() (e.g. "
                f"tokbench.judges.lpips.LpipsVgg16()), got {type(judge).__name__}"
            )
        super().__init__()
        self.judge = judge

    def options(self) -> dict[str, Any]:
        return dict(self.judge.describe())

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        return self.judge.distance(originals, reconstructions).to("cpu", torch.float64)
