"""ToMe's merge against the official code (facebookresearch/ToMe af95e4b, ``tome/merge.py``:
``bipartite_soft_matching``, ``merge_wavg``, ``merge_source``) on the reference's stored metric and
tokens, r = 16/100/288/400, with and without the class token.

Reference data: ``shared/reference/pruning/tome.*`` (its README, Part 1: "ToMe"). Which tokens merge
(``source_argmax``) and the sizes are compared exactly, merged tokens to 1e-5. ToMe's output is
``[unmerged A, all B]``; ``tome_merge`` keeps the same slots in original order, so the official
slots are put in that order first, from the stored ``source_argmax`` alone.
"""

from __future__ import annotations

import pytest
import torch
from pruning_reference import NEEDS_REFERENCE, reference_data

from tokbench.pruning import rules

pytestmark = NEEDS_REFERENCE
RUNS = [f"r{r}_cls{cls}" for r in (16, 100, 288, 400) for cls in (1, 0)]


@pytest.fixture(scope="module")
def golden() -> tuple[dict, dict[str, torch.Tensor]]:
    """The reference's run settings and tensors."""
    meta, tensors = reference_data("tome")
    return meta["runs"], tensors


def _official_order(source_argmax: torch.Tensor, tokens_in: int, tokens_out: int) -> torch.Tensor:
    """The original index standing for each official output slot (``B×K``): unmerged A, then B."""
    b = source_argmax.shape[0]
    unmerged = tokens_out - tokens_in // 2
    rep = torch.empty(b, tokens_out, dtype=torch.long)
    a_pos = torch.arange(0, tokens_in, 2)
    for i in range(b):
        slots = source_argmax[i, a_pos]
        alone = slots < unmerged
        rep[i, slots[alone]] = a_pos[alone]
    rep[:, unmerged:] = torch.arange(1, tokens_in, 2)
    return rep


@pytest.mark.parametrize("run", RUNS)
def test_tome_merge_is_the_official_merge(golden: tuple[dict, dict[str, torch.Tensor]], run: str) -> None:
    settings, tensors = golden
    setting = settings[run]
    x, metric = tensors["x"], tensors["metric"]
    n = x.shape[1]
    protected = int(setting["class_token"])
    merged = rules.tome_merge(x, setting["r_requested"], metric=metric, protected=protected)
    assert merged.tokens.shape[1] == setting["tokens_out"] == n - setting["r_effective"]

    rep = _official_order(tensors[f"{run}/source_argmax"], n, setting["tokens_out"])
    order = torch.argsort(rep, dim=1)
    assert torch.equal(merged.index, torch.gather(rep, 1, order))
    slot_of = torch.argsort(order, dim=1)
    assert merged.source is not None
    assert torch.equal(merged.source, torch.gather(slot_of, 1, tensors[f"{run}/source_argmax"]))
    assert torch.equal(merged.sizes, rules.gather_tokens(tensors[f"{run}/size"], order)[..., 0])
    expected = rules.gather_tokens(tensors[f"{run}/merged_x"], order)
    torch.testing.assert_close(merged.tokens, expected, rtol=1e-5, atol=1e-5)
    if f"{run}/merge_mode_mean" in tensors:  # unit sizes: ToMe's "mean" mode includes the destination
        mean = rules.gather_tokens(tensors[f"{run}/merge_mode_mean"], order)
        torch.testing.assert_close(merged.tokens, mean, rtol=1e-5, atol=1e-5)
        unmerged = rules.gather_tokens(merged.tokens, merged.source)
        torch.testing.assert_close(unmerged, tensors[f"{run}/unmerge_of_merged_x"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("run", [run for run in RUNS if run.startswith("r100")])
def test_tome_merge_weights_by_the_given_sizes(
    golden: tuple[dict, dict[str, torch.Tensor]], run: str
) -> None:
    settings, tensors = golden
    setting = settings[run]
    x, metric, sizes = tensors["x"], tensors["metric"], tensors["size_in"][..., 0]
    merged = rules.tome_merge(x, 100, sizes, metric, protected=int(setting["class_token"]))
    rep = _official_order(tensors[f"{run}/source_argmax"], x.shape[1], setting["tokens_out"])
    order = torch.argsort(rep, dim=1)
    expected_sizes = rules.gather_tokens(tensors[f"{run}/size_given_sizes"], order)[..., 0]
    torch.testing.assert_close(merged.sizes, expected_sizes, rtol=1e-6, atol=1e-6)
    expected = rules.gather_tokens(tensors[f"{run}/merged_x_given_sizes"], order)
    torch.testing.assert_close(merged.tokens, expected, rtol=1e-5, atol=1e-5)
