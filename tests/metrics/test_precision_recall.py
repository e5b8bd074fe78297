"""Improved precision/recall: parity with torch-fidelity, bounded memory, merge independence."""

from __future__ import annotations

import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.metrics.precision_recall import PrecisionRecall, knn_squared_radii, precision_recall

D = 16


def features(n: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=generator) * scale + shift


REAL = features(150, seed=1)
FAKE = features(120, seed=2, shift=0.4, scale=0.7)  # narrower and shifted: precision ≠ recall


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_torch_fidelity(k: int) -> None:
    from torch_fidelity.metric_prc import calculate_precision_recall_full, calculate_precision_recall_part

    precision, recall = precision_recall(REAL, FAKE, k=k)
    # torch-fidelity's convention: features_1 are generated, features_2 real.
    # They average in float32; fractions of 120 and 150 differ by far more than 1e-6.
    full = calculate_precision_recall_full(FAKE.double(), REAL.double(), k)
    part = calculate_precision_recall_part(FAKE.double(), REAL.double(), k, 64)
    assert (precision, recall) == pytest.approx(full, rel=1e-6)
    assert (precision, recall) == pytest.approx(part, rel=1e-6)
    assert precision != recall and 0.0 < recall < 1.0


def test_radii_are_the_kth_neighbour_distance_with_self_as_zeroth() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_squared_radii(x, k=1).tolist() == [1.0, 1.0, 4.0, 16.0]
    assert knn_squared_radii(x, k=2).tolist() == [9.0, 4.0, 9.0, 36.0]


def test_block_size_only_bounds_memory() -> None:
    # 8 bytes per column: one row per block.
    assert precision_recall(REAL, FAKE, max_block_bytes=8) == precision_recall(REAL, FAKE)


def test_identical_sets_have_full_precision_and_recall() -> None:
    assert precision_recall(REAL, REAL.clone()) == (1.0, 1.0)


def test_metric_is_independent_of_batching_and_merge_order() -> None:
    one_pass = PrecisionRecall(feature_dim=D)
    one_pass.update(REAL[:120], FAKE)
    shards = []
    for start in (60, 0, 90, 30):
        shard = PrecisionRecall(feature_dim=D)
        for i in range(start, start + 30, 7):
            shard.update(REAL[i : min(i + 7, start + 30)], FAKE[i : min(i + 7, start + 30)])
        shards.append(shard)
    merged = PrecisionRecall(feature_dim=D)
    for shard in shards:
        merged.merge_state(shard)
    assert (
        merged.compute()
        == one_pass.compute()
        == dict(zip(("precision", "recall"), precision_recall(REAL[:120], FAKE), strict=True))
    )


def test_options_and_errors() -> None:
    metric = PrecisionRecall(feature_dim=D, k=5)
    assert metric.options() == {"feature_dim": D, "k": 5}
    metric.update(REAL[:5], FAKE[:6])
    with pytest.raises(ConfigError, match="k=5 needs at least 6 real images, got 5"):
        metric.compute()
    with pytest.raises(ConfigError, match="k must be a positive int"):
        PrecisionRecall(k=0)
    with pytest.raises(ConfigError, match="needs at least 4 images per set"):
        knn_squared_radii(REAL[:3], k=3)


def test_in_place_distances_are_bitwise_the_plain_expression() -> None:
    from tokbench.metrics.precision_recall import _squared_distances

    x, y = FAKE.double(), REAL.double()
    nx, ny = (x * x).sum(dim=1), (y * y).sum(dim=1)
    plain = (nx[:, None] + ny[None, :] - 2.0 * x @ y.T).clamp(min=0.0)
    assert torch.equal(_squared_distances(x, nx, y, ny), plain)


def test_norms_by_row_blocks_are_bitwise_the_whole_set_expression() -> None:
    from tokbench.metrics.precision_recall import NORM_BLOCK_ROWS, _row_norms

    for n in (1, NORM_BLOCK_ROWS, NORM_BLOCK_ROWS + 3, 2 * NORM_BLOCK_ROWS + 1):
        x = torch.randn(n, 2048, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        assert torch.equal(_row_norms(x), (x * x).sum(dim=1)), n
