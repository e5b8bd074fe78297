"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel.

k(x, y) = (xᵀy / d + 1)³; KID is the mean (and standard deviation) of the unbiased MMD² estimate
over ``subsets`` random subsets of ``subset_size`` images drawn without replacement from each set
(torch-fidelity's defaults: 100 subsets of 1000, seed 2020; the subset size is clipped to the
smaller set, as clean-fid does). Subsets are drawn exactly as torch-fidelity draws them, so
``kernel_inception_distance`` reproduces ``kid_features_to_metric`` given the same row order. Kernel
sums are computed in float64.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError
from tokbench.metrics.base import Metric
from tokbench.metrics.feature_sets import check_rows, gather_rows


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(x yᵀ / d + 1)³ for row sets x (m × d) and y (n × d)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased MMD² estimate between two equally sized samples with the polynomial kernel."""
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise ConfigError(f"mmd2_unbiased: needs two samples of the same size >= 2, got {m} and {y.shape[0]}")
    x, y = x.to(torch.float64), y.to(torch.float64)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum()) + (k_yy.sum() - k_yy.diagonal().sum())
    return float(within / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 2020
) -> tuple[float, float]:
    """Mean and population standard deviation of MMD² over random subsets; rows order matters.

    Each subset draws ``min(subset_size, len(real), len(fake))`` real rows, then as many fake rows,
    without replacement, from ``numpy.random.RandomState(seed)``.
    """
    _check_options("kernel_inception_distance", subsets, subset_size, seed)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(
            f"kernel_inception_distance: need (n, d) features of equal d, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}"
        )
    n_real, n_fake = real.shape[0], fake.shape[0]
    size = min(subset_size, n_real, n_fake)
    if size < 2:
        raise ConfigError(f"KID needs at least 2 real and 2 fake images, got {n_real} real and {n_fake} fake")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        real_rows = torch.from_numpy(rng.choice(n_real, size, replace=False))
        fake_rows = torch.from_numpy(rng.choice(n_fake, size, replace=False))
        values[i] = mmd2_unbiased(real[real_rows], fake[fake_rows])  # float64 per subset only
    return float(values.mean()), float(values.std())


def _check_options(where: str, subsets: int, subset_size: int, seed: int) -> None:
    for name, value, low in (("subsets", subsets, 1), ("subset_size", subset_size, 2), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{where}: {name} must be an int >= {low}, got {value!r}")


class KernelInceptionDistance(Metric):
    """KID between judge features of real and fake images: ``{"kid": mean, "kid_std": std}``.

    Keeps every feature row (float32, 8 KB per image at d = 2048) in ``"cat"`` states; rows are put
    in a content-defined order before subsets are drawn, so the value does not depend on batching or
    on the order in which shards are merged.
    """

    inputs: ClassVar[tuple[str, ...]] = ("real_features", "fake_features")
    key = "kid"
    label = "KID"
    higher_is_better = False

    def __init__(
        self, feature_dim: int = 2048, subsets: int = 100, subset_size: int = 1000, seed: int = 2020
    ) -> None:
        super().__init__()
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(
                f"KernelInceptionDistance: feature_dim must be a positive int, got {feature_dim!r}"
            )
        _check_options("KernelInceptionDistance", subsets, subset_size, seed)
        self._options = {
            "feature_dim": feature_dim,
            "subsets": subsets,
            "subset_size": subset_size,
            "seed": seed,
        }
        self.add_state("real_features", [], "cat")
        self.add_state("fake_features", [], "cat")

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def update(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> None:
        dim = self._options["feature_dim"]
        real = check_rows(real_features, "KernelInceptionDistance", "real_features", dim)
        fake = check_rows(fake_features, "KernelInceptionDistance", "fake_features", dim)
        self.real_features.append(real)
        self.fake_features.append(fake)

    def compute(self) -> dict[str, float]:
        real = gather_rows(self.real_features, "KernelInceptionDistance", "real_features")
        fake = gather_rows(self.fake_features, "KernelInceptionDistance", "fake_features")
        if real.shape[0] < 2 or fake.shape[0] < 2:
            raise ConfigError(
                f"KernelInceptionDistance: needs at least 2 real and 2 fake images, got {real.shape[0]} real "
                f"and {fake.shape[0]} fake"
            )
        mean, std = kernel_inception_distance(
            real,
            fake,
            subsets=self._options["subsets"],
            subset_size=self._options["subset_size"],
            seed=self._options["seed"],
        )
        return {"kid": mean, "kid_std": std}
