"""FrechetInceptionDistance: float64 sums, exact merges, batch independence, reference statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.fid import FrechetInceptionDistance
from tokbench.metrics.frechet import FeatureStatistics, frechet_distance, statistics_from_features

D = 96


def features(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixer = torch.randn(D, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64) / D**0.5
    x = torch.randn(n, D, generator=generator, dtype=torch.float64) @ mixer * 2 + 0.3 + shift
    return x.clamp(min=0).float()


REAL, FAKE = features(150, seed=2), features(150, seed=3, shift=0.1)


def feed(metric: FrechetInceptionDistance, batch_size: int, real=REAL, fake=FAKE) -> FrechetInceptionDistance:
    for start in range(0, real.shape[0], batch_size):
        metric.update(real[start : start + batch_size], fake[start : start + batch_size])
    return metric


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_value_matches_the_functional_form_and_counts_images() -> None:
    result = feed(FrechetInceptionDistance(feature_dim=D), 32).compute()
    expected = frechet_distance(statistics_from_features(REAL), statistics_from_features(FAKE))
    assert set(result) == {"fid", "fid_count"}
    assert relative(result["fid"], expected) < 1e-12
    assert result["fid_count"] == 150


def test_batch_size_does_not_change_the_value() -> None:
    values = [feed(FrechetInceptionDistance(feature_dim=D), size).compute()["fid"] for size in (1, 7, 64)]
    assert max(relative(v, values[0]) for v in values) < 1e-12


def test_merging_shards_equals_one_pass_over_the_union() -> None:
    one_pass = feed(FrechetInceptionDistance(feature_dim=D), 150).compute()["fid"]
    first = feed(FrechetInceptionDistance(feature_dim=D), 16, REAL[:61], FAKE[:61])
    second = feed(FrechetInceptionDistance(feature_dim=D), 16, REAL[61:], FAKE[61:])
    merged_instance = FrechetInceptionDistance(feature_dim=D)
    merged_instance.merge_state(second)
    merged_instance.merge_state(first)
    merged_dicts = FrechetInceptionDistance(feature_dim=D)  # filled only by merge_state
    merged_dicts.merge_state(first.state_dict())
    merged_dicts.merge_state(second.state_dict())
    assert relative(merged_instance.compute()["fid"], one_pass) < 1e-12
    assert relative(merged_dicts.compute()["fid"], one_pass) < 1e-12


def test_states_are_float64_sums_of_upcast_features() -> None:
    metric = FrechetInceptionDistance(feature_dim=D)
    fresh_keys = set(vars(FrechetInceptionDistance(feature_dim=D)))
    metric.update(REAL[:10], FAKE[:10].half())
    assert set(vars(metric)) == fresh_keys
    x64 = REAL[:10].double()
    assert metric.real_feature_sum.dtype == torch.float64 and metric.real_count.dtype == torch.int64
    assert torch.equal(metric.real_outer_sum, x64.T @ x64)
    assert torch.equal(metric.fake_outer_sum, FAKE[:10].half().double().T @ FAKE[:10].half().double())
    assert int(metric.fake_count) == 10


def test_api_users_feed_each_side_separately() -> None:
    metric = FrechetInceptionDistance(feature_dim=D)
    metric.update_real(REAL)
    metric.update_fake(FAKE[:40])
    metric.update_fake(FAKE[40:])
    assert (
        relative(metric.compute()["fid"], feed(FrechetInceptionDistance(feature_dim=D), 150).compute()["fid"])
        < 1e-12
    )


def test_reference_statistics_replace_the_real_side() -> None:
    reference = statistics_from_features(REAL, source="ref.npz")
    metric = FrechetInceptionDistance(feature_dim=D, reference=reference)
    assert metric.inputs == ("fake_features",)
    assert FrechetInceptionDistance.inputs == ("real_features", "fake_features")
    assert metric.options()["reference"] == reference.fingerprint()
    for start in range(0, 150, 50):
        metric.update(FAKE[start : start + 50])
    expected = feed(FrechetInceptionDistance(feature_dim=D), 150).compute()["fid"]
    assert relative(metric.compute()["fid"], expected) < 1e-10
    with pytest.raises(ConfigError, match=r"uses reference statistics \(ref.npz\)"):
        metric.update_real(REAL)
    with pytest.raises(ConfigError, match="takes 1 tensor"):
        metric.update(REAL, FAKE)


def test_metrics_with_different_references_do_not_merge() -> None:
    a = FrechetInceptionDistance(feature_dim=D, reference=statistics_from_features(REAL))
    b = FrechetInceptionDistance(feature_dim=D, reference=statistics_from_features(FAKE))
    with pytest.raises(ConfigError, match="cannot merge"):
        a.merge_state(b)
    with pytest.raises(ConfigError, match="cannot merge"):
        a.merge_state(FrechetInceptionDistance(feature_dim=D))


def test_real_states_merged_into_a_reference_metric_are_refused_at_compute() -> None:
    metric = FrechetInceptionDistance(feature_dim=D, reference=statistics_from_features(REAL))
    metric.merge_state(feed(FrechetInceptionDistance(feature_dim=D), 150).state_dict())
    with pytest.raises(ConfigError, match="real features were merged"):
        metric.compute()


def test_reference_of_another_width_is_refused() -> None:
    reference = FeatureStatistics(count=None, mean=np.zeros(8), covariance=np.eye(8), source="ref.npz")
    with pytest.raises(ConfigError, match=r"ref.npz have d=8, but feature_dim=96"):
        FrechetInceptionDistance(feature_dim=D, reference=reference)


def test_fewer_than_two_images_is_a_clear_error() -> None:
    metric = FrechetInceptionDistance(feature_dim=D)
    with pytest.raises(ConfigError, match="real features: a covariance needs at least 2 images, got 0"):
        metric.compute()
    metric.update(REAL[:1], FAKE[:1])
    with pytest.raises(ConfigError, match="at least 2 images, got 1"):
        metric.compute()


def test_bad_inputs_are_refused() -> None:
    metric = FrechetInceptionDistance(feature_dim=D)
    with pytest.raises(ConfigError, match=r"real_features must have shape \(batch, 96\), got \(4, 95\)"):
        metric.update(REAL[:4, :95], FAKE[:4])
    with pytest.raises(ConfigError, match="takes 2 tensor"):
        metric.update(REAL[:4])
    bad = FAKE[:4].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(TokbenchError, match="fake_features contain NaN or Inf"):
        metric.update(REAL[:4], bad)
    assert int(metric.real_count) == 0  # nothing was written by the failed updates
    with pytest.raises(ConfigError, match="method must be one of"):
        FrechetInceptionDistance(method="gram")
    with pytest.raises(ConfigError, match="feature_dim must be a positive int"):
        FrechetInceptionDistance(feature_dim=0)


def test_options_and_reset() -> None:
    metric = FrechetInceptionDistance(feature_dim=D, method="sqrtm")
    assert metric.options() == {"feature_dim": D, "method": "sqrtm", "reference": None}
    feed(metric, 50)
    metric.reset()
    assert int(metric.fake_count) == 0 and not metric.fake_outer_sum.any()
