"""Inception Score: parity with torch-fidelity, closed forms, order and batch independence."""

from __future__ import annotations

import math

import pytest
import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.inception_score import InceptionScore, inception_score

CLASSES = 20
LOGITS = torch.randn(230, CLASSES, generator=torch.Generator().manual_seed(0)) * 3


@pytest.mark.parametrize(("shuffle", "splits"), [(True, 10), (False, 10), (True, 7)])
def test_matches_torch_fidelity(shuffle: bool, splits: int) -> None:
    from torch_fidelity.metric_isc import isc_features_to_metric

    theirs = isc_features_to_metric(LOGITS, splits=splits, shuffle=shuffle, rng_seed=2020)
    ours = inception_score(LOGITS, splits=splits, shuffle_seed=2020 if shuffle else None)
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
    assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9, abs=1e-12)


def test_closed_forms() -> None:
    uniform = torch.zeros(40, CLASSES)
    assert inception_score(uniform, splits=4) == pytest.approx((1.0, 0.0), abs=1e-12)
    # Confident and evenly spread over 8 classes in every split: IS = 8.
    confident = torch.full((80, 8), -1e4)
    confident[torch.arange(80), torch.arange(80) % 8] = 1e4
    mean, std = inception_score(confident, splits=10, shuffle_seed=None)
    assert mean == pytest.approx(8.0, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_extreme_logits_do_not_produce_nan() -> None:
    logits = torch.full((20, 5), -1e30)
    logits[:, 0] = 1e30
    mean, _ = inception_score(logits, splits=2)
    assert math.isfinite(mean) and mean == pytest.approx(1.0)


def _metric(batch_size: int, order: torch.Tensor) -> InceptionScore:
    metric = InceptionScore(num_classes=CLASSES)
    logits = LOGITS[order]
    for start in range(0, logits.shape[0], batch_size):
        metric.update(logits[start : start + batch_size])
    return metric


def test_metric_is_independent_of_batching_order_and_merges() -> None:
    reference = _metric(230, torch.arange(230)).compute()
    assert _metric(7, torch.randperm(230, generator=torch.Generator().manual_seed(1))).compute() == reference
    shards = [_metric(16, torch.arange(230)[i::3]) for i in range(3)]
    merged = InceptionScore(num_classes=CLASSES)
    for shard in reversed(shards):
        merged.merge_state(shard.state_dict())
    assert merged.compute() == reference
    assert set(reference) == {"inception_score", "inception_score_std"}
    assert 1.0 < reference["inception_score"] < CLASSES


def test_options_and_errors() -> None:
    metric = InceptionScore()
    assert metric.options() == {"num_classes": None, "splits": 10, "seed": 2020}
    keys = set(vars(metric))
    metric.update(LOGITS[:9])
    assert set(vars(metric)) == keys
    with pytest.raises(ConfigError, match="10 splits need at least 10 images, got 9"):
        metric.compute()
    metric.update(LOGITS[:3, :10])
    with pytest.raises(ConfigError, match="different dimensions"):
        metric.compute()
    with pytest.raises(ConfigError, match="fake_logits has dimension 10, expected 20"):
        InceptionScore(num_classes=CLASSES).update(LOGITS[:3, :10])
    with pytest.raises(TokbenchError, match="NaN or Inf"):
        InceptionScore().update(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ConfigError, match="splits must be an int >= 1"):
        InceptionScore(splits=0)
