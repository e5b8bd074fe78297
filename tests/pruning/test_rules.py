"""Selection rules on constructed inputs: each returns the set its paper defines."""

from __future__ import annotations

import itertools

import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.pruning import rules


def test_random_indices_are_distinct_sorted_and_seeded() -> None:
    first = rules.random_indices(576, 64, torch.Generator().manual_seed(0))
    again = rules.random_indices(576, 64, torch.Generator().manual_seed(0))
    other = rules.random_indices(576, 64, torch.Generator().manual_seed(1))
    assert first.shape == (64,) and len(set(first.tolist())) == 64
    assert torch.equal(first, first.sort().values) and torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("keep", [0, -3, 577])
def test_bad_keep_is_named(keep: int) -> None:
    with pytest.raises(ConfigError, match="keep"):
        rules.random_indices(576, keep)


def test_topk_returns_the_largest_in_original_order_with_ties_to_lower_index() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9, 0.0, 0.7]])
    assert rules.topk_indices(scores, 3).tolist() == [[1, 3, 5]]
    assert rules.topk_indices(torch.ones(1, 5), 2).tolist() == [[0, 1]]


def test_cls_attention_scores_are_the_head_mean_of_the_cls_row() -> None:
    attentions = torch.rand(2, 4, 10, 10)
    scores = rules.cls_attention_scores(attentions)
    assert scores.shape == (2, 9)
    assert torch.allclose(scores, attentions[:, :, 0, 1:].mean(1))
    attentions[:, :, 0, 1:] = 0.0
    attentions[:, :, 0, [3, 7]] = 1.0  # patches 2 and 6
    kept = rules.topk_indices(rules.cls_attention_scores(attentions), 2)
    assert kept.tolist() == [[2, 6], [2, 6]]


def test_query_attention_scores_read_the_last_query_row() -> None:
    attentions = torch.zeros(1, 2, 8, 8)
    attentions[0, :, -1, 4] = 1.0
    attentions[0, :, 3, 2] = 5.0  # another query row: ignored
    scores = rules.query_attention_scores(attentions, torch.arange(1, 6))
    assert rules.topk_indices(scores, 1).tolist() == [[3]]


def test_pool_tokens_averages_blocks_of_the_grid() -> None:
    tokens = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)
    pooled = rules.pool_tokens(tokens, (4, 4), 4)
    assert pooled.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert rules.pool_grid((24, 24), 64) == (8, 8)
    assert rules.pool_grid((24, 24), 192) in ((12, 16), (16, 12))
    assert rules.pool_tokens(torch.rand(2, 576, 3), (24, 24), 128).shape == (2, 128, 3)
    with pytest.raises(ConfigError, match="grid"):
        rules.pool_grid((4, 4), 13)


def _min_pairwise(points: torch.Tensor, chosen: list[int]) -> float:
    unit = torch.nn.functional.normalize(points[chosen].double(), dim=-1)
    distance = 1 - unit @ unit.T
    return float(distance[~torch.eye(len(chosen), dtype=torch.bool)].min())


def test_divprune_returns_the_max_min_set_on_clusters() -> None:
    generator = torch.Generator().manual_seed(0)
    directions = torch.eye(6)[:, :6] * 10  # six orthogonal cluster centres
    members = [directions[c] + 0.05 * torch.randn(6, 6, generator=generator) for c in range(5)]
    points = torch.cat(members)  # 30 points, five tight clusters of six
    chosen = rules.divprune_indices(points, 5)
    assert sorted({int(i) // 6 for i in chosen}) == [0, 1, 2, 3, 4]  # one per cluster
    assert torch.equal(chosen, chosen.sort().values)


def test_divprune_matches_brute_force_max_min_on_a_small_instance() -> None:
    # Directions of a regular octagon plus two rescaled duplicates (cosine distance 0): the greedy
    # must pick a square, which is the optimum over all 4-subsets.
    angles = torch.arange(8) * (2 * torch.pi / 8)
    points = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    points = torch.cat([points, points[:2] * 1.5])
    chosen = rules.divprune_indices(points, 4).tolist()
    best = max(_min_pairwise(points, list(s)) for s in itertools.combinations(range(10), 4))
    assert _min_pairwise(points, chosen) == pytest.approx(best, abs=1e-9)
    assert sorted(chosen) == [0, 2, 4, 6]


def test_divprune_is_within_the_greedy_factor_two_of_the_optimum() -> None:
    points = torch.randn(11, 3, generator=torch.Generator().manual_seed(3))
    chosen = rules.divprune_indices(points, 4).tolist()
    best = max(_min_pairwise(points, list(s)) for s in itertools.combinations(range(11), 4))
    assert _min_pairwise(points, chosen) >= best / 2


def _forbid_host_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every tensor → Python conversion (a device→host sync on an accelerator) raise."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a tensor was read on the host inside a selection loop")

    for name in ("item", "tolist", "__int__", "__index__", "__float__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


def test_selection_loops_never_read_tensors_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    points = torch.randn(40, 8, generator=torch.Generator().manual_seed(5))
    tokens = torch.randn(2, 33, 8, generator=torch.Generator().manual_seed(6))
    order = rules.divprune_order(points, 12)
    reduced = rules.tome_reduce(tokens, 9, protected=1)
    monkeypatch.undo()
    assert len(set(order.tolist())) == 12 and reduced.tokens.shape == (2, 9, 8)
    unit = torch.nn.functional.normalize(points.double(), dim=-1)
    distance = (1 - unit @ unit.T).masked_fill(torch.eye(40, dtype=torch.bool), float("inf"))
    assert int(order[0]) == int(distance.min(dim=0).values.argmax())


def test_divprune_order_is_the_max_min_greedy_with_duplicates() -> None:
    points = torch.randn(12, 4, generator=torch.Generator().manual_seed(7))
    points = torch.cat([points, points[:6] * 2.0])  # exact cosine ties
    unit = torch.nn.functional.normalize(points.double(), dim=-1)
    distance = 1 - unit @ unit.T
    order = rules.divprune_order(points, 10).tolist()
    for step in range(1, 10):
        closest = distance[order[:step]].min(dim=0).values
        closest[order[:step]] = -float("inf")
        assert order[step] == int(closest.argmax())


def test_tome_merges_the_most_similar_pairs_with_size_weights() -> None:
    tokens = torch.tensor([[[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [-1.0, 0.3], [0.5, 0.5], [0.9, -1.0]]])
    merged = rules.tome_merge(tokens, r=1)
    # A = 0,2,4 ; B = 1,3,5 ; the best edge is 0→1 (nearly identical)
    assert merged.index.tolist() == [[1, 2, 3, 4, 5]]
    assert merged.sizes.tolist() == [[2.0, 1.0, 1.0, 1.0, 1.0]]
    assert torch.allclose(merged.tokens[0, 0], torch.tensor([1.0, 0.005]))
    protected = rules.tome_merge(tokens, r=1, protected=1)
    assert protected.index[0, 0] == 0


def test_tome_reduce_reaches_keep_and_preserves_total_mass() -> None:
    tokens = torch.rand(2, 576, 8, generator=torch.Generator().manual_seed(0))
    reduced = rules.tome_reduce(tokens, 64)
    assert reduced.tokens.shape == (2, 64, 8)
    assert reduced.sizes.sum(1).tolist() == [576.0, 576.0]
    weighted = (reduced.tokens * reduced.sizes.unsqueeze(-1)).sum(1)
    assert torch.allclose(weighted, tokens.sum(1), rtol=1e-4)
    assert torch.all(reduced.index[:, 1:] > reduced.index[:, :-1])
