"""Inception Score (Salimans et al. 2016) from judge logits.

IS = exp(E_x KL(p(y|x) ‖ p(y))), computed in float64 on each of ``splits`` equal parts (part i is
rows ⌊iN/s⌋ … ⌊(i+1)N/s⌋), reported as the mean and population standard deviation over parts.
``inception_score`` follows torch-fidelity's ``isc_features_to_metric`` (10 splits, rows shuffled
with ``numpy.random.RandomState(2020)``); with ``shuffle_seed=None`` and N = 50,000 it splits like the
ADM evaluator (parts of 5,000 in the given order).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError
from tokbench.metrics.base import Metric
from tokbench.metrics.feature_sets import check_rows, gather_rows


def inception_score(
    logits: torch.Tensor, splits: int = 10, shuffle_seed: int | None = 2020
) -> tuple[float, float]:
    """Mean and standard deviation of the Inception Score over ``splits`` parts of ``N × classes`` logits."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ConfigError(f"inception_score: logits must be (N, classes >= 2), got {tuple(logits.shape)}")
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ConfigError(f"inception_score: splits must be a positive int, got {splits!r}")
    n = logits.shape[0]
    if n < splits:
        raise ConfigError(f"Inception Score with {splits} splits needs at least {splits} images, got {n}")
    x = logits.to(torch.float64)
    if shuffle_seed is not None:
        x = x[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(n))]
    log_p = x.log_softmax(dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        part_p, part_log_p = (
            p[i * n // splits : (i + 1) * n // splits],
            log_p[i * n // splits : (i + 1) * n // splits],
        )
        log_marginal = part_p.mean(dim=0).log()
        terms = part_p * (part_log_p - log_marginal)  # a class no image predicts contributes 0, not NaN
        kl = torch.where(part_p > 0, terms, torch.zeros_like(terms)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


class InceptionScore(Metric):
    """Inception Score of fake images from judge logits: ``{"inception_score": m, "inception_score_std": s}``.

    Keeps every logit row (float32) in a ``"cat"`` state; rows are put in a content-defined order
    and then shuffled with ``seed`` before splitting, so the value does not depend on batching or on
    the order in which shards are merged (it differs from a run over the same rows in another order
    only by the choice of splits).
    """

    inputs: ClassVar[tuple[str, ...]] = ("fake_logits",)
    key = "inception_score"
    label = "IS"
    higher_is_better = True

    def __init__(self, num_classes: int | None = None, splits: int = 10, seed: int = 2020) -> None:
        super().__init__()
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ConfigError(f"InceptionScore: num_classes must be an int >= 2 or None, got {num_classes!r}")
        for name, value, low in (("splits", splits, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"InceptionScore: {name} must be an int >= {low}, got {value!r}")
        self._options = {"num_classes": num_classes, "splits": splits, "seed": seed}
        self.add_state("fake_logits", [], "cat")

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def update(self, fake_logits: torch.Tensor) -> None:
        self.fake_logits.append(
            check_rows(fake_logits, "InceptionScore", "fake_logits", self._options["num_classes"])
        )

    def compute(self) -> dict[str, float]:
        logits = gather_rows(self.fake_logits, "InceptionScore", "fake_logits")
        splits = self._options["splits"]
        if logits.shape[0] < splits:
            raise ConfigError(
                f"InceptionScore: {splits} splits need at least {splits} images, got {logits.shape[0]}"
            )
        mean, std = inception_score(logits, splits=splits, shuffle_seed=self._options["seed"])
        return {"inception_score": mean, "inception_score_std": std}
