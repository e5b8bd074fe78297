"""Fréchet distance: exactness against the cross-Gram form, parity with scipy/clean-fid/torch-fidelity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.metrics.frechet import (
    METHODS,
    FeatureStatistics,
    frechet_distance,
    statistics_from_features,
    statistics_from_sums,
)


def realistic_features(n: int, d: int, seed: int, shift: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """Inception-like features: non-negative (ReLU), correlated, power-law covariance spectrum."""
    mixer = np.random.default_rng(1).standard_normal((d, d)) / np.sqrt(d)
    mixer *= (np.arange(1, d + 1) ** -0.8)[:, None]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) @ mixer * 3.0 + 0.2 + shift
    if noise:
        x += noise * rng.standard_normal((n, d)) @ mixer
    return np.maximum(x, 0.0).astype(np.float32)


def pair(n_real: int, n_fake: int, d: int) -> tuple[FeatureStatistics, FeatureStatistics]:
    real = statistics_from_features(realistic_features(n_real, d, seed=10), "real", keep_features=True)
    fake = statistics_from_features(
        realistic_features(n_fake, d, seed=11, shift=0.05, noise=0.5), "fake", keep_features=True
    )
    return real, fake


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize(("n", "d"), [(40, 256), (1000, 256), (512, 2048)])
def test_fid_of_a_set_with_itself_is_zero(n: int, d: int) -> None:
    stats = statistics_from_features(realistic_features(n, d, seed=3))
    assert abs(frechet_distance(stats, stats)) < 1e-6


@pytest.mark.parametrize(
    ("n_real", "n_fake", "d"), [(512, 512, 2048), (100, 60, 256), (60, 1000, 256), (1000, 700, 256)]
)
def test_cholesky_trace_equals_the_exact_cross_gram_form(n_real: int, n_fake: int, d: int) -> None:
    # The cross-Gram nuclear norm never forms a covariance: the exact value even when n < d.
    real, fake = pair(n_real, n_fake, d)
    exact = frechet_distance(real, fake, method="gram")
    assert relative(frechet_distance(real, fake), exact) < 1e-9
    assert relative(frechet_distance(fake, real), exact) < 1e-9


def test_all_methods_agree_on_full_rank_covariances() -> None:
    real, fake = pair(800, 900, 128)
    values = {method: frechet_distance(real, fake, method=method) for method in METHODS}
    for method, value in values.items():
        assert relative(value, values["gram"]) < 1e-9, (method, values)


def test_sqrtm_itself_drifts_when_covariances_are_singular() -> None:
    # Why the default is not scipy's sqrtm: with n < d it takes square roots of round-off and lands
    # ~1e-6 below the exact value, while the Cholesky form stays exact. Both agree to < 1e-5.
    real, fake = pair(160, 160, 512)
    exact = frechet_distance(real, fake, method="gram")
    ours = frechet_distance(real, fake)
    scipy_value = frechet_distance(real, fake, method="sqrtm")
    assert relative(ours, exact) < 1e-10
    assert relative(scipy_value, exact) > relative(ours, exact)
    assert relative(ours, scipy_value) < 1e-5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")
def test_agrees_with_clean_fid_and_torch_fidelity_on_2048_d_features() -> None:
    # One 2048×2048 sqrtm (~10 s on 2 cores): full rank (n = 3000 > d), where sqrtm is accurate.
    from cleanfid.fid import frechet_distance as clean_fid_distance
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    real_features = realistic_features(3000, 2048, seed=10)
    fake_features = realistic_features(3000, 2048, seed=11, shift=0.05, noise=0.5)
    real, fake = statistics_from_features(real_features), statistics_from_features(fake_features)
    ours = frechet_distance(real, fake)
    # Their own feature-to-statistics steps (np.mean / np.cov in float64).
    mu1, sigma1 = (
        real_features.astype(np.float64).mean(0),
        np.cov(real_features.astype(np.float64), rowvar=False),
    )
    mu2, sigma2 = (
        fake_features.astype(np.float64).mean(0),
        np.cov(fake_features.astype(np.float64), rowvar=False),
    )
    clean_fid = float(clean_fid_distance(mu1, sigma1, mu2, sigma2))
    fidelity = fid_statistics_to_metric(
        {"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False
    )
    assert relative(ours, clean_fid) < 1e-6
    assert relative(ours, fidelity["frechet_inception_distance"]) < 1e-6


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")
@pytest.mark.parametrize("n", [120, 600])
def test_agrees_with_clean_fid_fid_from_feats(n: int) -> None:
    from cleanfid.fid import fid_from_feats

    real_features = realistic_features(n, 256, seed=4).astype(np.float64)
    fake_features = realistic_features(n, 256, seed=5, shift=0.1, noise=0.3).astype(np.float64)
    ours = frechet_distance(statistics_from_features(real_features), statistics_from_features(fake_features))
    assert relative(ours, float(fid_from_feats(real_features, fake_features))) < 1e-6


def test_statistics_from_sums_match_direct_statistics() -> None:
    x = torch.from_numpy(realistic_features(300, 64, seed=7)).double()
    from_sums = statistics_from_sums(x.shape[0], x.sum(0), x.T @ x)
    direct = statistics_from_features(x)
    np.testing.assert_allclose(from_sums.mean, direct.mean, rtol=1e-13)
    np.testing.assert_allclose(from_sums.covariance, direct.covariance, rtol=1e-9, atol=1e-13)
    np.testing.assert_array_equal(from_sums.covariance, from_sums.covariance.T)
    assert from_sums.count == 300


def test_statistics_are_read_only_copies() -> None:
    mean = np.zeros(3)
    stats = FeatureStatistics(count=5, mean=mean, covariance=np.eye(3))
    mean[0] = 1.0
    assert stats.mean[0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        stats.covariance[0, 0] = 2.0


def test_mismatched_dimensions_name_both_sets() -> None:
    a = FeatureStatistics(count=10, mean=np.zeros(4), covariance=np.eye(4), source="real features")
    b = FeatureStatistics(count=10, mean=np.zeros(5), covariance=np.eye(5), source="ref.npz")
    with pytest.raises(ConfigError, match=r"real features has d=4, ref.npz has d=5"):
        frechet_distance(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": np.array([0.0, np.nan])}, "fake features: mean contains NaN"),
        (
            {"covariance": np.array([[1.0, np.inf], [np.inf, 1.0]])},
            "fake features: covariance contains NaN or Inf",
        ),
        ({"count": 1}, "fake features: a covariance needs at least 2 images, got 1"),
        ({"covariance": np.eye(3)}, r"covariance must have shape \(2, 2\)"),
        ({"mean": np.zeros((2, 1))}, r"mean must have shape \(d,\)"),
    ],
)
def test_bad_statistics_are_refused_with_their_name(kwargs: dict, message: str) -> None:
    fields = {"count": 10, "mean": np.zeros(2), "covariance": np.eye(2), "source": "fake features"}
    with pytest.raises(ConfigError, match=message):
        FeatureStatistics(**{**fields, **kwargs})


def test_fewer_than_two_images_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="fake features: a covariance needs at least 2 images, got 1"):
        statistics_from_sums(1, np.ones(3), np.ones((3, 3)), source="fake features")
    with pytest.raises(ConfigError, match="at least 2 images, got 0"):
        statistics_from_sums(torch.tensor(0), np.zeros(3), np.zeros((3, 3)))


def test_unknown_method_and_gram_without_features_are_refused() -> None:
    stats = FeatureStatistics(count=10, mean=np.zeros(2), covariance=np.eye(2), source="real")
    with pytest.raises(ConfigError, match="method must be one of"):
        frechet_distance(stats, stats, method="svd")
    with pytest.raises(ConfigError, match="needs the features themselves; missing for real"):
        frechet_distance(stats, stats, method="gram")


def test_zero_covariance_and_known_closed_form() -> None:
    # Two isotropic Gaussians: FID = ‖μ₁−μ₂‖² + d(σ₁ − σ₂)².
    a = FeatureStatistics(count=None, mean=np.zeros(8), covariance=4.0 * np.eye(8))
    b = FeatureStatistics(count=None, mean=np.ones(8), covariance=np.eye(8))
    assert frechet_distance(a, b) == pytest.approx(8 + 8 * (2 - 1) ** 2, rel=1e-14)
    zero = FeatureStatistics(count=3, mean=np.zeros(8), covariance=np.zeros((8, 8)))
    assert frechet_distance(zero, b) == pytest.approx(8 + 8, rel=1e-14)
