"""pFID against the official ``add_perturbation`` (lxa9867/ImageFolder) on its golden inputs: the
candidate lists, the selection given the official draws, the output, the per-batch β rule, and
tokbench's own draws (rank frequencies, replacement rate).

Reference data: ``shared/reference/protocols/pfid`` (its README, Part 2, states the official rule).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tokbench.perturb import CodebookPerturbation

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "protocols" / "pfid"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"pFID reference data not found at {REFERENCE}"
)
#: Upper 0.1% points of χ² with 15, 7 and 3 degrees of freedom.
CHI2_999 = {15: 37.70, 7: 24.32, 3: 16.27}


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict[str, torch.Tensor]]:
    """The reference's JSON (settings, tables) and its tensors."""
    return (
        json.loads((REFERENCE / "pfid_reference.json").read_text()),
        load_file(REFERENCE / "pfid_reference.safetensors"),
    )


def _setting_ids() -> list[str]:
    if not REFERENCE.is_dir():
        return ["no-reference"]
    return [s["name"] for s in json.loads((REFERENCE / "pfid_reference.json").read_text())["settings"]]


def _inputs(tensors: dict[str, torch.Tensor], normalise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The golden z as 64 tokens ((b·h + y)·w + x) × 8 and the codebook, l2-normalised if asked."""
    latents = tensors["z"].permute(0, 2, 3, 1).reshape(-1, 8)
    codebook = tensors["codebook_weight"]
    if normalise:
        return F.normalize(latents, dim=-1), F.normalize(codebook, dim=-1)
    return latents, codebook


@needs_reference
@pytest.mark.parametrize("name", _setting_ids())
def test_candidates_selection_and_output_equal_the_official_ones(name: str, reference) -> None:
    meta, tensors = reference
    setting = next(s for s in meta["settings"] if s["name"] == name)
    alpha, beta, delta, norm = (setting[k] for k in ("alpha", "beta", "delta", "codebook_norm"))
    golden = {key[len(name) + 1 :]: value for key, value in tensors.items() if key.startswith(f"{name}.")}
    latents, codebook = _inputs(tensors, norm)
    perturbation = CodebookPerturbation(alpha, beta, delta, rule="per-batch-official")

    # candidates: the code itself (the argmin), then the nearest entries to z, in the official order
    candidates = perturbation.candidates(latents, golden["nearest_indices"], codebook)
    assert torch.equal(candidates, golden["topk_indices"])
    own = torch.cdist(latents.double(), codebook.double()).argmin(dim=1)
    assert torch.equal(own, golden["nearest_indices"])

    # the official draws: rank 0 unless u <= α, then the drawn rank; the code at that rank
    rank = torch.where(golden["random_prob"] > alpha, 0, golden["random_idx_drawn"])
    assert torch.equal(rank, golden["rank_used"])
    selected = candidates.gather(1, rank[:, None]).squeeze(1)
    assert torch.equal(selected, golden["selected_indices"])

    # the output: straight-through codebook rows for the first ⌊B·β⌋ images, z_q for the others
    rows = F.normalize(tensors["codebook_weight"][selected], dim=-1) if norm else codebook[selected]
    perturbed = (latents + (rows - latents)).view(4, 4, 4, 8).permute(0, 3, 1, 2)
    images = perturbation.images_to_perturb([f"image-{i}" for i in range(4)])
    assert int(images.sum()) == setting["n_images_perturbed"]
    output = torch.where(images[:, None, None, None], perturbed, golden["z_q_input"])
    assert torch.equal(output, golden["output"])


@needs_reference
def test_per_batch_rule_perturbs_the_official_number_of_images(reference) -> None:
    meta, _ = reference
    table = meta["perturbed_images_table"]
    assert len(table) == 132
    for row in table:
        perturbation = CodebookPerturbation(0.5, row["beta"], 2, rule="per-batch-official")
        chosen = perturbation.images_to_perturb([str(i) for i in range(row["B"])])
        count = row["n_perturbed_official"]
        assert chosen.tolist() == [True] * count + [False] * (row["B"] - count), row


@needs_reference
@pytest.mark.parametrize("name", ["s2_half_batch", "s3_all_random", "s5_norm_three_quarters"])
def test_own_draws_move_tokens_only_to_official_candidates(name: str, reference) -> None:
    meta, tensors = reference
    setting = next(s for s in meta["settings"] if s["name"] == name)
    latents, codebook = _inputs(tensors, setting["codebook_norm"])
    nearest = tensors[f"{name}.nearest_indices"].view(4, 16)
    allowed = tensors[f"{name}.topk_indices"].view(4, 16, -1)
    for rule in ("per-image", "per-batch-official"):
        perturbation = CodebookPerturbation(setting["alpha"], setting["beta"], setting["delta"], 1, rule)
        names = [f"image-{i}" for i in range(4)]
        perturbed = perturbation.apply(nearest, latents.view(4, 16, 8), names, codebook)
        assert (allowed == perturbed[..., None]).any(dim=-1).all()
        images = perturbation.images_to_perturb(names)
        assert torch.equal(perturbed[~images], nearest[~images])


@pytest.mark.parametrize(("alpha", "delta"), [(0.5, 16), (1.0, 8), (0.3, 4)])
def test_rank_frequencies_follow_the_official_distribution(alpha: float, delta: int) -> None:
    """χ² of the candidate ranks of 65,536 tokens against (1 − α + α/δ, α/δ, …), as the official
    runs of the reference (χ² 16.8 on 15 dof, 8.3 on 7)."""
    perturbation = CodebookPerturbation(alpha, 1.0, delta, seed=123)
    ranks = []
    for image in range(2048):
        replace, choices = perturbation.token_draws(f"image-{image}", 32)
        ranks.append(torch.where(replace, choices, 0))
    counts = torch.bincount(torch.cat(ranks), minlength=delta).double()
    expected = torch.full((delta,), alpha / delta, dtype=torch.float64)
    expected[0] += 1 - alpha
    expected *= counts.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < CHI2_999[delta - 1], (chi2, counts.tolist())
