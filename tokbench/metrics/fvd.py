"""Fréchet Video Distance: the FID metric's Fréchet code on the I3D judge's clip features.

FVD (Unterthiner et al., 2018) is the Fréchet distance between Gaussians fitted to the 400-d,
time-averaged, pre-softmax Kinetics-400 I3D logits of real and generated clips (the
``i3d-kinetics-400`` judge). The states, merges and the distance are those of
:class:`~tokbench.metrics.fid.FrechetInceptionDistance`; only the width and the record keys differ.
"""

from __future__ import annotations

from typing import ClassVar

from tokbench.judges.i3d_net import NUM_CLASSES
from tokbench.metrics.fid import FrechetInceptionDistance
from tokbench.metrics.frechet import FeatureStatistics


class FrechetVideoDistance(FrechetInceptionDistance):
    """FVD between I3D logits of real clips and fake ones (reconstructions, samples).

    ``compute()`` returns ``{"fvd": value, "fvd_count": number of fake clips}``.
    """

    key = "fvd"
    label = "FVD"
    #: Published tables name FVD by what was generated: reconstructions or samples.
    aliases: ClassVar[dict[str, str]] = {"rfvd": "rFVD", "gfvd": "gFVD"}

    def __init__(
        self,
        feature_dim: int = NUM_CLASSES,
        reference: FeatureStatistics | None = None,
        method: str = "cholesky",
    ) -> None:
        super().__init__(feature_dim=feature_dim, reference=reference, method=method)

    def compute(self) -> dict[str, float]:
        result = super().compute()
        return {"fvd": result["fid"], "fvd_count": result["fid_count"]}
