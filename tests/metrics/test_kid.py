"""KID: parity with torch-fidelity and clean-fid, order and batch independence of the metric."""

from __future__ import annotations

import pytest
import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.kid import KernelInceptionDistance, kernel_inception_distance, mmd2_unbiased

D = 32


def features(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, D, generator=generator) + 0.5 + shift).clamp(min=0)


REAL, FAKE = features(70, seed=1), features(60, seed=2, shift=0.2)


def test_subset_mmd_matches_torch_fidelity() -> None:
    from torch_fidelity.metric_kid import kernel_mmd

    x, y = REAL[:40].double(), FAKE[:40].double()
    theirs = kernel_mmd(x.numpy(), y.numpy(), kid_kernel="poly")
    assert mmd2_unbiased(x, y) == pytest.approx(float(theirs), rel=1e-10)


def test_kid_matches_torch_fidelity_given_the_same_rows_and_seed() -> None:
    from torch_fidelity.metric_kid import kid_features_to_metric

    ours = kernel_inception_distance(REAL, FAKE, subsets=25, subset_size=30, seed=7)
    theirs = kid_features_to_metric(
        REAL.double(), FAKE.double(), kid_subsets=25, kid_subset_size=30, rng_seed=7, verbose=False
    )
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-9)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-9)


def test_kid_on_whole_sets_matches_clean_fid() -> None:
    # With the subset size clipped to the set size every subset is the whole set, so clean-fid's
    # unseeded draws do not matter.
    from cleanfid.fid import kernel_distance

    real, fake = REAL[:50], FAKE[:50]
    ours, std = kernel_inception_distance(real, fake, subsets=3, subset_size=1000)
    assert ours == pytest.approx(
        kernel_distance(fake.double().numpy(), real.double().numpy(), 3, 1000), rel=1e-9
    )
    assert std == pytest.approx(0.0, abs=1e-12)


def test_subset_size_is_clipped_to_the_smaller_set() -> None:
    assert kernel_inception_distance(
        REAL, FAKE, subsets=5, subset_size=1000, seed=3
    ) == kernel_inception_distance(REAL, FAKE, subsets=5, subset_size=60, seed=3)


def test_identical_distributions_score_near_zero_and_shifted_ones_do_not() -> None:
    same, _ = kernel_inception_distance(features(300, 5), features(300, 6), subsets=10, subset_size=200)
    shifted, _ = kernel_inception_distance(
        features(300, 5), features(300, 6, shift=0.5), subsets=10, subset_size=200
    )
    assert abs(same) < 0.01 < shifted


def _metric_over(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> KernelInceptionDistance:
    metric = KernelInceptionDistance(feature_dim=D, subsets=10, subset_size=40)
    for real, fake in batches:
        metric.update(real, fake)
    return metric


def test_metric_is_independent_of_batching_and_merge_order() -> None:
    real = REAL[:60]
    one_pass = _metric_over([(real, FAKE)]).compute()
    batched = _metric_over([(real[i : i + 7], FAKE[i : i + 7]) for i in range(0, 60, 7)]).compute()
    shards = [_metric_over([(real[i : i + 20], FAKE[i : i + 20])]) for i in (40, 0, 20)]
    merged = KernelInceptionDistance(feature_dim=D, subsets=10, subset_size=40)
    for shard in shards:
        merged.merge_state(shard.state_dict())
    assert batched == one_pass
    assert merged.compute() == one_pass
    assert set(one_pass) == {"kid", "kid_std"}


def test_metric_keeps_float32_rows_and_only_declared_states() -> None:
    metric = KernelInceptionDistance(feature_dim=D)
    keys = set(vars(metric))
    metric.update(REAL[:5].double(), FAKE[:5].double())
    assert set(vars(metric)) == keys
    assert metric.real_features[0].dtype == torch.float32
    assert metric.options() == {"feature_dim": D, "subsets": 100, "subset_size": 1000, "seed": 2020}


def test_bad_inputs_and_options_are_refused() -> None:
    metric = KernelInceptionDistance(feature_dim=D)
    with pytest.raises(ConfigError, match="needs at least 2 real and 2 fake images, got 1 real"):
        metric.update(REAL[:1], FAKE[:3])
        metric.compute()
    with pytest.raises(ConfigError, match="real_features has dimension 31, expected 32"):
        metric.update(REAL[:3, :31], FAKE[:3])
    nan = FAKE[:3].clone()
    nan[1, 1] = float("inf")
    with pytest.raises(TokbenchError, match="fake_features contains NaN or Inf"):
        metric.update(REAL[:3], nan)
    with pytest.raises(ConfigError, match="subset_size must be an int >= 2"):
        KernelInceptionDistance(subset_size=1)
    with pytest.raises(ConfigError, match="subsets must be an int >= 1"):
        kernel_inception_distance(REAL, FAKE, subsets=0)
