"""Fréchet Inception Distance as a streaming metric: float64 sums, exact merges, no I/O.

States per distribution (``real``/``fake``): the feature sum (d), the uncentred outer-product sum
XᵀX (d × d) and the image count, all float64/int64 and merged by summation, so memory is flat in the
number of images and shards merge exactly. Features are upcast to float64 before the outer product.
The covariance is formed at ``compute`` time as (XᵀX − n μμᵀ)/(n − 1).

With ``reference`` (precomputed statistics of the real set, e.g. loaded by
``tokbench.stats_io.load_statistics``) only the fake side is accumulated, and the instance's
``inputs`` become ``("fake_features",)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.base import Metric
from tokbench.metrics.frechet import METHODS, FeatureStatistics, frechet_distance, statistics_from_sums

SIDES = ("real", "fake")


class FrechetInceptionDistance(Metric):
    """FID between judge features of real images (originals) and fake ones (reconstructions, samples).

    ``compute()`` returns ``{"fid": value, "fid_count": number of fake images}``.
    """

    inputs: ClassVar[tuple[str, ...]] = ("real_features", "fake_features")
    key = "fid"
    label = "FID"
    higher_is_better = False
    #: Published tables name FID by what was generated: reconstructions, perturbed ones, samples.
    aliases: ClassVar[dict[str, str]] = {"rfid": "rFID", "pfid": "pFID", "gfid": "gFID"}

    def __init__(
        self, feature_dim: int = 2048, reference: FeatureStatistics | None = None, method: str = "cholesky"
    ) -> None:
        super().__init__()
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(
                f"FrechetInceptionDistance: feature_dim must be a positive int, got {feature_dim!r}"
            )
        if method not in METHODS or method == "gram":
            allowed = tuple(m for m in METHODS if m != "gram")
            raise ConfigError(f"FrechetInceptionDistance: method must be one of {allowed}, got {method!r}")
        if reference is not None:
            if not isinstance(reference, FeatureStatistics):
                raise ConfigError(
                    "FrechetInceptionDistance: reference must be FeatureStatistics "
                    f"(see tokbench.stats_io.load_statistics), got {type(reference).__name__}"
                )
            if reference.dim != feature_dim:
                raise ConfigError(
                    f"FrechetInceptionDistance: reference statistics {reference.source} have "
                    f"d={reference.dim}, "
                    f"but feature_dim={feature_dim}; use statistics made with the same judge layer"
                )
            self.inputs = ("fake_features",)
        self._feature_dim = feature_dim
        self._method = method
        self._reference = reference
        self._reference_fingerprint = None if reference is None else reference.fingerprint()
        for side in SIDES:
            self.add_state(f"{side}_feature_sum", torch.zeros(feature_dim, dtype=torch.float64), "sum")
            self.add_state(
                f"{side}_outer_sum", torch.zeros(feature_dim, feature_dim, dtype=torch.float64), "sum"
            )
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.int64), "sum")

    @property
    def reference(self) -> FeatureStatistics | None:
        """The precomputed real-side statistics, if any."""
        return self._reference

    def options(self) -> dict[str, Any]:
        return {
            "feature_dim": self._feature_dim,
            "method": self._method,
            "reference": self._reference_fingerprint,
        }

    def update(self, *features: torch.Tensor) -> None:
        """Accumulate one batch: ``(real, fake)`` features, or ``(fake,)`` with a reference."""
        if len(features) != len(self.inputs):
            raise ConfigError(
                f"FrechetInceptionDistance.update takes {len(self.inputs)} tensor(s) {self.inputs}, "
                f"got {len(features)}"
            )
        checked = [self._check(side, x) for side, x in zip(self._sides(), features, strict=True)]
        for side, x in zip(self._sides(), checked, strict=True):  # validate all before writing any
            self._accumulate(side, x)

    def update_real(self, features: torch.Tensor) -> None:
        """Accumulate features of real images (``n × feature_dim``)."""
        if self._reference is not None:
            raise ConfigError(
                "FrechetInceptionDistance.update_real: this metric uses reference statistics "
                f"({self._reference.source}) for the real side; create it without reference to feed "
                "real images"
            )
        self._accumulate("real", self._check("real", features))

    def update_fake(self, features: torch.Tensor) -> None:
        """Accumulate features of fake images (``n × feature_dim``)."""
        self._accumulate("fake", self._check("fake", features))

    def _sides(self) -> tuple[str, ...]:
        return ("fake",) if self._reference is not None else SIDES

    def _accumulate(self, side: str, x: torch.Tensor) -> None:
        setattr(self, f"{side}_feature_sum", getattr(self, f"{side}_feature_sum") + x.sum(dim=0))
        setattr(self, f"{side}_outer_sum", getattr(self, f"{side}_outer_sum") + x.T @ x)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + x.shape[0])

    def _check(self, side: str, features: torch.Tensor) -> torch.Tensor:
        if not isinstance(features, torch.Tensor):
            features = torch.as_tensor(np.asarray(features))
        if features.ndim != 2 or features.shape[1] != self._feature_dim:
            raise ConfigError(
                f"FrechetInceptionDistance: {side}_features must have shape (batch, {self._feature_dim}), "
                f"got {tuple(features.shape)}"
            )
        if features.is_complex() or features.dtype == torch.bool:
            raise ConfigError(f"FrechetInceptionDistance: {side}_features must be real, got {features.dtype}")
        x = features.detach().to("cpu", torch.float64)
        if not torch.isfinite(x).all():
            raise TokbenchError(f"FrechetInceptionDistance: {side}_features contain NaN or Inf")
        return x

    def statistics(self, side: str) -> FeatureStatistics:
        """Mean and covariance of one side (``"real"`` or ``"fake"``) from the states."""
        if side not in SIDES:
            raise ConfigError(
                f"FrechetInceptionDistance.statistics: side must be one of {SIDES}, got {side!r}"
            )
        if side == "real" and self._reference is not None:
            return self._reference
        return statistics_from_sums(
            getattr(self, f"{side}_count"),
            getattr(self, f"{side}_feature_sum"),
            getattr(self, f"{side}_outer_sum"),
            source=f"{side} features",
        )

    def compute(self) -> dict[str, float]:
        if self._reference is not None and int(self.real_count) != 0:
            raise ConfigError(
                "FrechetInceptionDistance: real features were merged into a metric that uses reference "
                f"statistics ({self._reference.source}); merge only states of the same configuration"
            )
        real, fake = self.statistics("real"), self.statistics("fake")
        return {"fid": frechet_distance(real, fake, self._method), "fid_count": int(self.fake_count)}
