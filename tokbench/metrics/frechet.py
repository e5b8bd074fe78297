"""Fréchet distance between Gaussian feature statistics (FID), as pure functions. No I/O.

FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂). Everything here is float64 numpy.

The trace of the square root is the sum of the square roots of the eigenvalues of Σ₁Σ₂, which equal
those of any symmetric product Fᵀ Σ₂ F with F Fᵀ = Σ₁. Methods:

``"cholesky"`` (default)
    Rank-revealing pivoted Cholesky factors Σ₁ = F₁F₁ᵀ and Σ₂ = F₂F₂ᵀ (LAPACK ``dpstrf``, pivots below
    d·ε·max diag treated as zero), then tr √(Σ₁Σ₂) = Σ σᵢ(F₂ᵀF₁), the singular values taken as square
    roots of the eigenvalues of the smaller Gram matrix of F₂ᵀF₁. With fewer images than dimensions
    the covariances are singular; dropping their numerically-zero directions (rather than taking
    square roots of round-off) keeps the trace exact to ~1e-12 relative, measured against the
    cross-Gram nuclear norm of the features themselves. It is also the fastest (about 1 s for
    2048×2048, see ``benchmarks/results/sqrt_trace.md``).
``"symmetric-eigh"``
    Eigenvalues of √Σ₁ Σ₂ √Σ₁ with √Σ₁ from ``eigh`` and negative eigenvalues clipped to zero. Kept
    for comparison: with fewer images than dimensions the square roots of ~d round-off eigenvalues
    add up to a bias of a few 1e-6 relative (about 2× slower than ``"cholesky"`` at full rank).
``"sqrtm"``
    ``scipy.linalg.sqrtm(Σ₁Σ₂)``, as clean-fid, pytorch-fid and the ADM evaluator do (torch-fidelity
    sums √eig(Σ₁Σ₂)); ~10× slower, and it shares the round-off bias when n < d. For parity tests.
``"gram"``
    The nuclear norm of the cross-Gram matrix of the centred features (needs ``features`` on both
    statistics); exact, fast when n < d. A reference for tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from tokbench.errors import ConfigError

METHODS = ("cholesky", "symmetric-eigh", "sqrtm", "gram")


def _as_float64(value: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ConfigError(f"{name}: expected a real-valued array, got dtype {array.dtype}")
    array = np.array(array, dtype=np.float64, order="C", copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FeatureStatistics:
    """Mean and covariance of a set of features (float64, read-only copies).

    ``count`` is the number of images, or ``None`` when a statistics file does not record it.
    ``features`` optionally keeps the ``count × d`` features the statistics came from (needed by the
    ``"gram"`` method, by KID and by precision/recall). ``source`` names the set in error messages
    (``"fake features"``, a file path).
    """

    count: int | None
    mean: np.ndarray
    covariance: np.ndarray
    features: np.ndarray | None = None
    source: str = "statistics"

    def __post_init__(self) -> None:
        where = self.source
        mean = _as_float64(self.mean, f"{where}: mean")
        covariance = _as_float64(self.covariance, f"{where}: covariance")
        if mean.ndim != 1 or mean.shape[0] == 0:
            raise ConfigError(f"{where}: mean must have shape (d,), got {mean.shape}")
        d = mean.shape[0]
        if covariance.shape != (d, d):
            raise ConfigError(
                f"{where}: covariance must have shape ({d}, {d}) to match the mean, got {covariance.shape}"
            )
        if not np.isfinite(mean).all():
            raise ConfigError(f"{where}: mean contains NaN or Inf")
        if not np.isfinite(covariance).all():
            raise ConfigError(f"{where}: covariance contains NaN or Inf")
        if self.count is not None:
            if isinstance(self.count, bool) or not isinstance(self.count, (int, np.integer)):
                raise ConfigError(f"{where}: count must be an int or None, got {self.count!r}")
            if self.count < 2:
                raise ConfigError(
                    f"{where}: a covariance needs at least 2 images, got {int(self.count)}; "
                    "feed more images before computing FID"
                )
            object.__setattr__(self, "count", int(self.count))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", covariance)
        if self.features is not None:
            features = _as_float64(self.features, f"{where}: features")
            if features.ndim != 2 or features.shape[1] != d:
                raise ConfigError(f"{where}: features must have shape (count, {d}), got {features.shape}")
            if self.count is not None and features.shape[0] != self.count:
                raise ConfigError(f"{where}: {features.shape[0]} feature rows but count is {self.count}")
            object.__setattr__(self, "features", features)

    @property
    def dim(self) -> int:
        """The feature dimension d."""
        return int(self.mean.shape[0])

    def fingerprint(self) -> str:
        """sha256 of count, mean and covariance: identifies reference statistics in a protocol hash."""
        digest = hashlib.sha256()
        digest.update(repr(self.count).encode())
        digest.update(self.mean.tobytes())
        digest.update(self.covariance.tobytes())
        return digest.hexdigest()


def statistics_from_sums(
    count: int | torch.Tensor,
    feature_sum: np.ndarray | torch.Tensor,
    outer_sum: np.ndarray | torch.Tensor,
    source: str = "features",
) -> FeatureStatistics:
    """Mean and unbiased covariance from n, Σx and Σxxᵀ (float64 sums, as FID states keep them)."""
    n = int(count.item()) if isinstance(count, torch.Tensor) else int(count)
    if n < 2:
        raise ConfigError(
            f"{source}: a covariance needs at least 2 images, got {n}; feed more images before computing FID"
        )
    total = _as_float64(feature_sum, f"{source}: feature sum")
    outer = _as_float64(outer_sum, f"{source}: outer-product sum")
    if total.ndim != 1 or outer.shape != (total.shape[0], total.shape[0]):
        raise ConfigError(
            f"{source}: sums have shapes {total.shape} and {outer.shape}; expected (d,) and (d, d)"
        )
    mean = total / n
    covariance = (outer - np.outer(total, mean)) / (n - 1)
    covariance = (covariance + covariance.T) / 2
    return FeatureStatistics(count=n, mean=mean, covariance=covariance, source=source)


def statistics_from_features(
    features: np.ndarray | torch.Tensor, source: str = "features", keep_features: bool = False
) -> FeatureStatistics:
    """Mean and unbiased covariance of ``n × d`` features, computed in float64."""
    x = _as_float64(features, source)
    if x.ndim != 2:
        raise ConfigError(f"{source}: features must be a 2-D (n, d) array, got shape {x.shape}")
    if x.shape[0] < 2:
        raise ConfigError(f"{source}: a covariance needs at least 2 images, got {x.shape[0]}")
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / (x.shape[0] - 1)
    covariance = (covariance + covariance.T) / 2
    return FeatureStatistics(
        count=x.shape[0],
        mean=mean,
        covariance=covariance,
        features=x if keep_features else None,
        source=source,
    )


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics, method: str = "cholesky") -> float:
    """The Fréchet distance between two Gaussians given by their statistics (see module notes)."""
    if method not in METHODS:
        raise ConfigError(f"frechet_distance: method must be one of {METHODS}, got {method!r}")
    for name, stats in (("a", a), ("b", b)):
        if not isinstance(stats, FeatureStatistics):
            raise ConfigError(
                f"frechet_distance: {name} must be FeatureStatistics, got {type(stats).__name__}"
            )
    if a.dim != b.dim:
        raise ConfigError(
            f"frechet_distance: feature dimensions differ: {a.source} has d={a.dim}, "
            f"{b.source} has d={b.dim}; "
            "both sets must come from the same judge layer"
        )
    difference = a.mean - b.mean
    trace_sqrt = trace_sqrt_product(a, b, method)
    value = difference @ difference + np.trace(a.covariance) + np.trace(b.covariance) - 2.0 * trace_sqrt
    return float(value)


def trace_sqrt_product(a: FeatureStatistics, b: FeatureStatistics, method: str = "cholesky") -> float:
    """tr √(Σ_a Σ_b) by the named method."""
    if method == "cholesky":
        return _trace_sqrt_cholesky(a.covariance, b.covariance)
    if method == "symmetric-eigh":
        return _trace_sqrt_symmetric_eigh(a.covariance, b.covariance)
    if method == "sqrtm":
        return _trace_sqrt_scipy(a.covariance, b.covariance)
    if method == "gram":
        return _trace_sqrt_gram(a, b)
    raise ConfigError(f"trace_sqrt_product: method must be one of {METHODS}, got {method!r}")


def psd_factor(covariance: np.ndarray) -> np.ndarray:
    """F (d × r) with F Fᵀ = Σ, r the numerical rank, by LAPACK's rank-revealing pivoted Cholesky."""
    from scipy.linalg import lapack

    # dpstrf stops when the largest remaining pivot is below d·ε·max(diag) (tol < 0 selects that).
    packed, pivots, rank, info = lapack.dpstrf(covariance, lower=1, tol=-1.0)
    if info < 0:
        raise ConfigError(f"pivoted Cholesky rejected argument {-info}")
    lower = np.tril(packed[:, :rank])
    factor = np.empty_like(lower)
    factor[pivots - 1] = lower  # Σ[p][:, p] = L Lᵀ, so Σ = F Fᵀ with F[p] = L
    return factor


def _trace_sqrt_cholesky(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    factor_a, factor_b = psd_factor(sigma_a), psd_factor(sigma_b)
    cross = factor_b.T @ factor_a  # r_b × r_a; its singular values are √eig(Σ_a Σ_b)
    if cross.size == 0:
        return 0.0
    gram = cross @ cross.T if cross.shape[0] <= cross.shape[1] else cross.T @ cross
    return _sum_sqrt_eigenvalues(gram)


def _trace_sqrt_symmetric_eigh(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    values, vectors = np.linalg.eigh(sigma_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    return _sum_sqrt_eigenvalues(root_a @ sigma_b @ root_a)


def _trace_sqrt_scipy(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    import scipy.linalg

    root = scipy.linalg.sqrtm(sigma_a @ sigma_b)
    trace = np.trace(root).real
    if not np.isfinite(trace):
        raise ConfigError("scipy.linalg.sqrtm returned a non-finite square root; use method='cholesky'")
    return float(trace)


def _trace_sqrt_gram(a: FeatureStatistics, b: FeatureStatistics) -> float:
    features_a, features_b = a.features, b.features
    if features_a is None or features_b is None:
        missing = [stats.source for stats in (a, b) if stats.features is None]
        raise ConfigError(f"method 'gram' needs the features themselves; missing for {', '.join(missing)}")
    centred_a = (features_a - a.mean) / np.sqrt(features_a.shape[0] - 1)
    centred_b = (features_b - b.mean) / np.sqrt(features_b.shape[0] - 1)
    return float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum())


def _sum_sqrt_eigenvalues(symmetric: np.ndarray) -> float:
    symmetric = (symmetric + symmetric.T) / 2
    eigenvalues = np.linalg.eigvalsh(symmetric)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
