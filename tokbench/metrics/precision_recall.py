"""Improved precision and recall (Kynkäänniemi et al. 2019) on judge features.

Each set's manifold is the union of balls around its samples whose radius is the distance to the
sample's k-th nearest neighbour in the same set (the sample itself counts as the 0-th, as in the
reference code, torch-fidelity and the ADM evaluator). Precision is the fraction of fake samples
inside the real manifold; recall the fraction of real samples inside the fake manifold.

Squared distances ‖x‖² + ‖y‖² − 2xᵀy are computed in float64, in row blocks whose size keeps the
working matrix under ``max_block_bytes`` (16 MiB by default; two such buffers live at once), so memory
is O(n) beyond the features, which are gathered once, straight to float64.
Time is (n_real² + n_fake² + n_real·n_fake)·d multiply-adds: ~3·10¹³ for 50k + 50k images at
d = 2048, i.e. tens of minutes on two CPU cores (the ADM evaluator uses a 10k reference batch).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from tokbench.errors import ConfigError
from tokbench.metrics.base import Metric, OutputInfo
from tokbench.metrics.feature_sets import check_rows, gather_rows

DEFAULT_BLOCK_BYTES = 16 * 2**20
#: Rows per block when squaring and summing features for their norms.
NORM_BLOCK_ROWS = 1024


def _block_rows(n_columns: int, max_block_bytes: int) -> int:
    return max(1, max_block_bytes // (8 * max(1, n_columns)))


def _squared_distances(
    rows: torch.Tensor, row_norms: torch.Tensor, cols: torch.Tensor, col_norms: torch.Tensor
) -> torch.Tensor:
    """(‖x‖² + ‖y‖²) − 2xᵀy clamped at 0, in that order, with two block-sized buffers (not four)."""
    products = rows @ cols.T
    products.mul_(2.0)
    distances = row_norms[:, None] + col_norms[None, :]
    return distances.sub_(products).clamp_(min=0.0)


def knn_squared_radii(
    features: torch.Tensor, k: int = 3, max_block_bytes: int = DEFAULT_BLOCK_BYTES
) -> torch.Tensor:
    """Squared distance from each row to its k-th nearest neighbour in the same set (self is the 0-th)."""
    x = features.to(torch.float64)
    return _radii(x, _row_norms(x), k, max_block_bytes)


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    """``(x * x).sum(dim=1)`` a block of rows at a time (the same values, no n × d temporary)."""
    return torch.cat([(block * block).sum(dim=1) for block in x.split(NORM_BLOCK_ROWS)])


def _radii(x: torch.Tensor, norms: torch.Tensor, k: int, max_block_bytes: int) -> torch.Tensor:
    n = x.shape[0]
    if n < k + 1:
        raise ConfigError(f"precision/recall with k={k} needs at least {k + 1} images per set, got {n}")
    radii = torch.empty(n, dtype=torch.float64)
    step = _block_rows(n, max_block_bytes)
    for start in range(0, n, step):
        block = _squared_distances(x[start : start + step], norms[start : start + step], x, norms)
        radii[start : start + step] = block.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, max_block_bytes: int = DEFAULT_BLOCK_BYTES
) -> tuple[float, float]:
    """(precision, recall) of fake features against real features.

    Three passes over O(n²) distances (real radii, fake radii, fake-vs-real), each row block of the
    cross distances serving both precision and recall. Float64 inputs are used as they are (no copy).
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(
            f"precision_recall: need (n, d) features of equal d, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}"
        )
    r, f = real.to(torch.float64), fake.to(torch.float64)
    r_norms, f_norms = _row_norms(r), _row_norms(f)
    real_radii = _radii(r, r_norms, k, max_block_bytes)
    fake_radii = _radii(f, f_norms, k, max_block_bytes)
    fake_inside = 0  # fake rows inside some real ball
    real_covered = torch.zeros(r.shape[0], dtype=torch.bool)  # real rows inside some fake ball
    step = _block_rows(r.shape[0], max_block_bytes)
    for start in range(0, f.shape[0], step):
        block = _squared_distances(f[start : start + step], f_norms[start : start + step], r, r_norms)
        fake_inside += int((block <= real_radii[None, :]).any(dim=1).sum())
        real_covered |= (block <= fake_radii[start : start + step, None]).any(dim=0)
    return fake_inside / f.shape[0], int(real_covered.sum()) / r.shape[0]


class PrecisionRecall(Metric):
    """Improved precision/recall of fake vs real judge features: ``{"precision": p, "recall": r}``.

    Keeps every feature row (float32) in ``"cat"`` states.
    """

    inputs: ClassVar[tuple[str, ...]] = ("real_features", "fake_features")
    key = "precision"
    label = "precision"
    higher_is_better = True

    def __init__(
        self, feature_dim: int = 2048, k: int = 3, max_block_bytes: int = DEFAULT_BLOCK_BYTES
    ) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("k", k), ("max_block_bytes", max_block_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"PrecisionRecall: {name} must be a positive int, got {value!r}")
        self._feature_dim = feature_dim
        self._k = k
        self._max_block_bytes = max_block_bytes  # memory only: not an option, the value does not change
        self.add_state("real_features", [], "cat")
        self.add_state("fake_features", [], "cat")

    def options(self) -> dict[str, Any]:
        return {"feature_dim": self._feature_dim, "k": self._k}

    @classmethod
    def output_info(cls, output: str) -> OutputInfo | None:
        """Precision (the primary key) and recall, both higher is better."""
        if output == "recall":
            return OutputInfo("recall", cls.higher_is_better, cls.unit)
        return super().output_info(output)

    def update(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> None:
        self.real_features.append(
            check_rows(real_features, "PrecisionRecall", "real_features", self._feature_dim)
        )
        self.fake_features.append(
            check_rows(fake_features, "PrecisionRecall", "fake_features", self._feature_dim)
        )

    def compute(self) -> dict[str, float]:
        real = gather_rows(self.real_features, "PrecisionRecall", "real_features", torch.float64)
        fake = gather_rows(self.fake_features, "PrecisionRecall", "fake_features", torch.float64)
        for name, rows in (("real", real), ("fake", fake)):
            if rows.shape[0] < self._k + 1:
                raise ConfigError(
                    f"PrecisionRecall: k={self._k} needs at least {self._k + 1} {name} images, "
                    f"got {rows.shape[0]}"
                )
        precision, recall = precision_recall(real, fake, self._k, self._max_block_bytes)
        return {"precision": precision, "recall": recall}
