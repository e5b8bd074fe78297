"""Codebook perturbation (pFID): validation, neighbours, replacement rate, β selection, batch
independence, and α = 0 reproducing the plain reconstruction bit for bit."""

from __future__ import annotations

import pytest
import torch

import tokbench.perturb as perturb_module
from tokbench.errors import ConfigError
from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer, content_keys


def images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def keys(count: int, prefix: str = "item") -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


@pytest.mark.parametrize(
    "arguments",
    [
        {"alpha": -0.1, "beta": 1.0, "delta": 2},
        {"alpha": 0.1, "beta": 1.5, "delta": 2},
        {"alpha": True, "beta": 1.0, "delta": 2},
        {"alpha": 0.1, "beta": 1.0, "delta": 0},
        {"alpha": 0.1, "beta": 1.0, "delta": 2.5},
        {"alpha": 0.1, "beta": 1.0, "delta": 2, "seed": -1},
    ],
)
def test_parameters_are_validated(arguments: dict) -> None:
    with pytest.raises(ConfigError, match=r"perturbation: (alpha|beta|delta|seed)"):
        CodebookPerturbation(**arguments)


def test_delta_above_codebook_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="delta=5 exceeds the codebook size K=4"):
        CodebookPerturbation(0.1, 1.0, 5).neighbours(torch.eye(4))


# Entry 5 duplicates entry 0; 1, 2 and 3 are equidistant from 0: ties are broken by index.
TIED = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])


def test_neighbours_itself_first_then_by_distance_ties_by_index() -> None:
    found = CodebookPerturbation(0.5, 1.0, 6).neighbours(TIED)
    assert found.dtype == torch.int64
    assert found[0].tolist() == [0, 5, 1, 2, 3, 4]
    assert found[5].tolist() == [5, 0, 1, 2, 3, 4]
    assert found[1].tolist() == [1, 0, 4, 5, 2, 3]
    assert found[4].tolist() == [4, 1, 0, 5, 2, 3]
    assert CodebookPerturbation(0.5, 1.0, 3).neighbours(TIED).tolist() == found[:, :3].tolist()


def test_neighbours_blocks_agree_with_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    codebook = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))
    whole = CodebookPerturbation(0.5, 1.0, 7).neighbours(codebook)
    monkeypatch.setattr(perturb_module, "NEIGHBOUR_BLOCK_ELEMENTS", 120)  # 2 rows per block
    assert torch.equal(CodebookPerturbation(0.5, 1.0, 7).neighbours(codebook), whole)
    brute = torch.cdist(codebook.double(), codebook.double()).argsort(dim=1, stable=True)[:, :7]
    assert torch.equal(whole, brute)


def test_neighbours_of_an_l2_normalised_codebook_rank_by_cosine(tiny_titok) -> None:
    tokenizer = tiny_titok(use_l2_norm=True)
    found = CodebookPerturbation(0.5, 1.0, 5).neighbours(tokenizer.codebook())
    raw = tokenizer.model.quantize.embedding.weight.double()
    unit = raw / raw.norm(dim=1, keepdim=True)
    by_cosine = (-(unit @ unit.T)).argsort(dim=1, stable=True)[:, :5]
    assert torch.equal(found, by_cosine)
    assert torch.equal(found[:, 0], torch.arange(64))


def test_alpha_zero_leaves_indices_unchanged() -> None:
    indices = torch.randint(0, 32, (20, 16), generator=torch.Generator().manual_seed(0))
    perturbation = CodebookPerturbation(0.0, 1.0, 8, seed=3)
    neighbours = perturbation.neighbours(torch.randn(32, 4))
    assert torch.equal(perturbation.apply(indices, keys(20), neighbours), indices)


@pytest.mark.parametrize(("alpha", "delta"), [(0.1, 2), (0.3, 10), (0.5, 100), (1.0, 4)])
def test_replacement_rate_matches_alpha_times_delta_minus_one_over_delta(alpha: float, delta: int) -> None:
    count, tokens = 2000, 32  # 64,000 tokens
    indices = torch.randint(0, 128, (count, tokens), generator=torch.Generator().manual_seed(0))
    perturbation = CodebookPerturbation(alpha, 1.0, delta, seed=0)
    neighbours = perturbation.neighbours(torch.randn(128, 8, generator=torch.Generator().manual_seed(2)))
    changed = perturbation.apply(indices, keys(count), neighbours) != indices
    rate = changed.double().mean().item()
    assert abs(rate - perturbation.expected_replacement_rate) < 0.01
    # every change is to one of the token's δ nearest entries
    perturbed = perturbation.apply(indices, keys(count), neighbours)
    assert (neighbours[indices] == perturbed.unsqueeze(-1)).any(dim=-1).all()


def test_beta_selects_about_beta_n_images_independently_of_the_set() -> None:
    names = keys(10_000)
    for beta in (0.0, 0.25, 0.5, 1.0):
        mask = CodebookPerturbation(0.5, beta, 2, seed=7).images_to_perturb(names)
        chosen = int(mask.sum())
        assert abs(chosen - beta * len(names)) <= 4 * (len(names) * beta * (1 - beta)) ** 0.5
        part = CodebookPerturbation(0.5, beta, 2, seed=7).images_to_perturb(names[3000:3100][::-1])
        assert torch.equal(part, mask[3000:3100].flip(0))
    assert (CodebookPerturbation(0.5, 1.0, 2).images_to_perturb(names)).all()
    assert not (CodebookPerturbation(0.5, 0.0, 2).images_to_perturb(names)).any()
    other = CodebookPerturbation(0.5, 0.5, 2, seed=8).images_to_perturb(names)
    assert not torch.equal(other, CodebookPerturbation(0.5, 0.5, 2, seed=7).images_to_perturb(names))


def test_unselected_images_keep_their_tokens() -> None:
    indices = torch.randint(0, 32, (400, 16), generator=torch.Generator().manual_seed(0))
    perturbation = CodebookPerturbation(1.0, 0.5, 8, seed=1)
    neighbours = perturbation.neighbours(torch.randn(32, 4))
    perturbed = perturbation.apply(indices, keys(400), neighbours)
    selected = perturbation.images_to_perturb(keys(400))
    assert torch.equal(perturbed[~selected], indices[~selected])
    assert (perturbed[selected] != indices[selected]).any(dim=1).all()


def test_an_image_gets_the_same_perturbation_in_any_batch() -> None:
    indices = torch.randint(0, 64, (12, 16), generator=torch.Generator().manual_seed(0))
    names = keys(12)
    perturbation = CodebookPerturbation(0.6, 0.7, 5, seed=11)
    neighbours = perturbation.neighbours(torch.randn(64, 4))
    whole = perturbation.apply(indices, names, neighbours)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(4)).tolist()
    for size in (1, 5):
        for start in range(0, 12, size):
            rows = order[start : start + size]
            part = perturbation.apply(indices[rows], [names[r] for r in rows], neighbours)
            assert torch.equal(part, whole[rows])


def test_wrapper_with_alpha_zero_reproduces_the_reconstruction_bit_for_bit(tiny_titok) -> None:
    tokenizer = tiny_titok()
    batch = images(4)
    plain = tokenizer.decode(tokenizer.encode(batch))
    wrapped = PerturbedTokenizer(tokenizer, CodebookPerturbation(0.0, 1.0, 16, seed=0))
    encoded = wrapped.encode(batch)
    assert torch.equal(wrapped.decode(encoded), plain)
    assert torch.equal(encoded.bits, tokenizer.encode(batch).bits)
    assert wrapped.describe()["scheme"] == perturb_module.SCHEME


def test_wrapper_is_independent_of_batch_composition_and_order(tiny_titok) -> None:
    wrapped = PerturbedTokenizer(tiny_titok(), CodebookPerturbation(0.8, 1.0, 16, seed=5))
    batch = images(6)
    whole = wrapped.encode(batch).payload
    assert not torch.equal(whole, wrapped.base.encode_indices(batch))  # something was perturbed
    for rows in ([5, 0, 3], [1], [4, 2]):
        assert torch.equal(wrapped.encode(batch[rows]).payload, whole[rows])
    assert torch.equal(wrapped.encode(torch.cat([batch[:2], images(3, seed=9)])).payload[:2], whole[:2])


def test_content_keys_follow_the_uint8_pixels() -> None:
    levels = torch.randint(1, 254, (2, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    batch = levels.float() / 255
    first = content_keys(batch)
    assert first[0] != first[1]
    assert content_keys(batch + 1e-4) == first  # same uint8 quantisation, same key
    assert content_keys(batch + 1 / 255)[0] != first[0]
    assert content_keys(batch.reshape(2, 3, 4, 16))[0] != first[0]  # the shape is part of the key


def test_wrapper_refuses_continuous_tokenizers(tiny_titok) -> None:
    with pytest.raises(ConfigError, match="pfid: not applicable: continuous tokenizer"):
        PerturbedTokenizer(tiny_titok("vae"), CodebookPerturbation(0.1, 1.0, 2))
