"""T-ACC, T-NED, F-Sim and buckets against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.text_face import (
    FaceFidelity,
    TextFidelity,
    bucket_of,
    check_edges,
    edit_distance,
    normalized_edit_similarity,
)

EDGES = (0.02, 0.03, 0.04, 1.0)


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("kitten", "sitting", 3),
        ("Hello", "hello", 1),
        ("café", "cafe", 1),
        ("ab", "ba", 2),
    ],
)
def test_edit_distance_by_hand(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance == edit_distance(b, a)


def test_normalized_similarity_by_hand() -> None:
    assert normalized_edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert normalized_edit_similarity("abc", "") == 0.0  # empty prediction scores nothing
    assert normalized_edit_similarity("", "") == 1.0
    assert normalized_edit_similarity("Straße", "Strasse") == pytest.approx(1 - 2 / 7)  # non-ASCII


def test_bucket_edges_are_half_open() -> None:
    assert bucket_of(0.02, EDGES) == "small"
    assert bucket_of(0.0299999, EDGES) == "small"
    assert bucket_of(0.03, EDGES) == "medium"
    assert bucket_of(0.04, EDGES) == "large"
    assert bucket_of(0.0199999, EDGES) is None
    assert bucket_of(1.0, EDGES) is None


def test_text_fidelity_hand_computed() -> None:
    metric = TextFidelity(EDGES)
    # small: exact + case mismatch; medium: empty prediction; large: non-ASCII exact; one below the edges
    metric.update(["Exit", "Shop"], ["Exit", "shop"], [0.02, 0.025])
    metric.update(
        ["abcd", "Café", "tiny"], ["", "Café", "tiny"], torch.tensor([0.03, 0.5, 0.01], dtype=torch.float64)
    )
    values = metric.compute()
    assert values["t_acc_small"] == pytest.approx(50.0)  # "Shop" != "shop": case-sensitive
    assert values["t_ned_small"] == pytest.approx((100.0 + 75.0) / 2)
    assert values["t_acc_medium"] == 0.0 and values["t_ned_medium"] == 0.0
    assert values["t_acc_large"] == 100.0
    assert values["t_acc_mean"] == pytest.approx((50.0 + 0.0 + 100.0) / 3)  # unweighted mean of buckets
    assert metric.bucket_counts() == {"below": 1, "above": 0, "small": 2, "medium": 1, "large": 1}


def test_mean_needs_every_bucket() -> None:
    metric = TextFidelity(EDGES)
    metric.update(["a"], ["a"], [0.025])
    values = metric.compute()
    assert values == {"t_acc_small": 100.0, "t_ned_small": 100.0}


def test_face_fidelity_cosine_per_bucket() -> None:
    metric = FaceFidelity((0.1, 0.2, 0.3, 1.0))
    first = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    second = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, -1.0]])
    metric.update(first, second, [0.15, 0.25, 0.9])
    values = metric.compute()
    assert values["f_sim_small"] == pytest.approx(1.0)
    assert values["f_sim_medium"] == pytest.approx(2**-0.5)
    assert values["f_sim_large"] == pytest.approx(-1.0)
    assert values["f_sim_mean"] == pytest.approx((1.0 + 2**-0.5 - 1.0) / 3)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ConfigError, match="strictly increasing"):
        check_edges([0.1, 0.1, 0.2, 1.0])
    with pytest.raises(ConfigError, match="4 finite"):
        TextFidelity([0.1, 0.2])
    with pytest.raises(TokbenchError, match="2 targets but 1"):
        TextFidelity().update(["a", "b"], ["a"], [0.1, 0.1])
    with pytest.raises(TokbenchError, match="before any update"):
        FaceFidelity().compute()
    with pytest.raises(TokbenchError, match="zero embedding"):
        FaceFidelity().update(torch.zeros(1, 3), torch.ones(1, 3), [0.5])
