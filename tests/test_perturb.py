"""Codebook perturbation (pFID): validation, candidates nearest the latent, replacement rate, the two
β rules, batch independence, and α = 0 reproducing the plain reconstruction bit for bit."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import tokbench.perturb as perturb_module
from tokbench.errors import ConfigError
from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer, content_keys
from tokbench.suites import load_suite
from tokbench.tracks.recon import _perturbation


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


def test_rule_is_validated_and_recorded() -> None:
    with pytest.raises(ConfigError, match="perturbation: rule must be one of per-image, per-batch-official"):
        CodebookPerturbation(0.1, 1.0, 2, rule="first-images")
    assert CodebookPerturbation(0.1, 1.0, 2).rule == "per-image"
    described = CodebookPerturbation(0.1, 1.0, 2, rule="per-batch-official").describe()
    assert described["rule"] == "per-batch-official" and described["candidates"] == "nearest-to-latent"


def test_delta_above_codebook_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="delta=5 exceeds the codebook size K=4"):
        CodebookPerturbation(0.1, 1.0, 5).prepare_codebook(torch.eye(4))


# Entry 5 duplicates entry 0; 1, 2 and 3 are equidistant from 0: ties are broken by index.
TIED = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])


def test_candidates_own_code_first_then_nearest_to_the_latent_ties_by_index() -> None:
    perturbation = CodebookPerturbation(0.5, 1.0, 6)
    latents = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.9, 0.0], [0.5, 0.0]])
    codes = torch.tensor([0, 5, 1, 1])
    found = perturbation.candidates(latents, codes, TIED)
    assert found.dtype == torch.int64
    assert found[0].tolist() == [0, 5, 1, 2, 3, 4]
    assert found[1].tolist() == [5, 0, 1, 2, 3, 4]
    assert found[2].tolist() == [1, 0, 5, 4, 2, 3]  # ranked by the latent, not by entry 1
    assert found[3].tolist() == [1, 0, 5, 2, 3, 4]  # its code 1 first, though 0 and 5 are as near
    narrow = CodebookPerturbation(0.5, 1.0, 3).candidates(latents, codes, TIED)
    assert narrow.tolist() == found[:, :3].tolist()


def test_candidates_blocks_agree_with_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(1)
    codebook, latents = torch.randn(50, 6, generator=generator), torch.randn(30, 6, generator=generator)
    codes = torch.cdist(latents, codebook).argmin(dim=1)
    whole = CodebookPerturbation(0.5, 1.0, 7).candidates(latents, codes, codebook)
    monkeypatch.setattr(perturb_module, "NEIGHBOUR_BLOCK_ELEMENTS", 120)  # 2 rows per block
    assert torch.equal(CodebookPerturbation(0.5, 1.0, 7).candidates(latents, codes, codebook), whole)
    brute = torch.cdist(latents.double(), codebook.double()).argsort(dim=1, stable=True)[:, :7]
    assert torch.equal(whole, brute)


@pytest.mark.parametrize(
    ("latents", "codes", "message"),
    [
        (torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64), "latents must be M×2"),
        (torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), r"codes must be int64 of shape \(3,\)"),
        (torch.zeros(3, 2), torch.full((3,), 6), r"codes must lie in \[0, 6\)"),
    ],
)
def test_candidates_validate_their_inputs(latents: torch.Tensor, codes: torch.Tensor, message: str) -> None:
    with pytest.raises(ConfigError, match=f"perturbation: {message}"):
        CodebookPerturbation(0.5, 1.0, 2).candidates(latents, codes, TIED)


def test_candidates_of_an_l2_normalising_tokenizer_rank_by_cosine(tiny_titok) -> None:
    tokenizer = tiny_titok(use_l2_norm=True)
    codes, latents = tokenizer.encode_latents(images(2))
    found = CodebookPerturbation(0.5, 1.0, 5).candidates(
        latents.flatten(0, 1), codes.flatten(), tokenizer.codebook()
    )
    raw = tokenizer.model.quantize.embedding.weight.double()
    unit = raw / raw.norm(dim=1, keepdim=True)
    by_cosine = (-(latents.flatten(0, 1).double() @ unit.T)).argsort(dim=1, stable=True)[:, :5]
    assert torch.equal(found, by_cosine)
    assert torch.equal(found[:, 0], codes.flatten())


def random_tokens(count: int, tokens: int, size: int = 128, width: int = 8) -> tuple[torch.Tensor, ...]:
    """A random codebook, latents and their nearest codes (int64 count×tokens)."""
    generator = torch.Generator().manual_seed(2)
    codebook = torch.randn(size, width, generator=generator)
    latents = torch.randn(count, tokens, width, generator=generator)
    codes = torch.cdist(latents, codebook[None]).argmin(dim=-1)
    return codebook, latents, codes


def test_alpha_zero_leaves_indices_unchanged() -> None:
    codebook, latents, indices = random_tokens(20, 16)
    perturbation = CodebookPerturbation(0.0, 1.0, 8, seed=3)
    assert torch.equal(perturbation.apply(indices, latents, keys(20), codebook), indices)


@pytest.mark.parametrize(("alpha", "delta"), [(0.1, 2), (0.3, 10), (0.5, 100), (1.0, 4)])
def test_replacement_rate_matches_alpha_times_delta_minus_one_over_delta(alpha: float, delta: int) -> None:
    count, tokens = 2000, 32  # 64,000 tokens
    codebook, latents, indices = random_tokens(count, tokens)
    perturbation = CodebookPerturbation(alpha, 1.0, delta, seed=0)
    perturbed = perturbation.apply(indices, latents, keys(count), codebook)
    rate = (perturbed != indices).double().mean().item()
    assert abs(rate - perturbation.expected_replacement_rate) < 0.005
    # every change is to one of the δ entries nearest the token's latent
    allowed = torch.cdist(latents.double(), codebook.double()[None]).argsort(dim=-1, stable=True)[..., :delta]
    assert (allowed == perturbed.unsqueeze(-1)).any(dim=-1).all()


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


def test_per_batch_official_rule_takes_the_first_images_of_each_batch() -> None:
    perturbation = CodebookPerturbation(0.5, 0.29, 2, rule="per-batch-official")
    assert int(perturbation.images_to_perturb(keys(100)).sum()) == 28  # int(100 * 0.29), not 29
    assert perturbation.images_to_perturb(keys(7)).tolist() == [True, True] + [False] * 5
    assert not perturbation.images_to_perturb(keys(3)).any()
    assert not perturbation.images_to_perturb(keys(7, "other"))[2:].any()  # keys play no part


def test_unselected_images_keep_their_tokens() -> None:
    codebook, latents, indices = random_tokens(400, 16, size=32, width=4)
    for rule in perturb_module.RULES:
        perturbation = CodebookPerturbation(1.0, 0.5, 8, seed=1, rule=rule)
        perturbed = perturbation.apply(indices, latents, keys(400), codebook)
        selected = perturbation.images_to_perturb(keys(400))
        assert 150 < int(selected.sum()) < 250
        assert torch.equal(perturbed[~selected], indices[~selected])
        assert (perturbed[selected] != indices[selected]).any(dim=1).all()


def test_an_image_gets_the_same_perturbation_in_any_batch() -> None:
    codebook, latents, indices = random_tokens(12, 16, size=64, width=4)
    names = keys(12)
    perturbation = CodebookPerturbation(0.6, 0.7, 5, seed=11)
    whole = perturbation.apply(indices, latents, names, codebook)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(4)).tolist()
    for size in (1, 5):
        for start in range(0, 12, size):
            rows = order[start : start + size]
            part = perturbation.apply(indices[rows], latents[rows], [names[r] for r in rows], codebook)
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


def test_wrapper_with_the_official_rule_perturbs_the_first_images_of_each_batch(tiny_titok) -> None:
    tokenizer = tiny_titok()
    wrapped = PerturbedTokenizer(tokenizer, CodebookPerturbation(1.0, 0.5, 16, rule="per-batch-official"))
    batch = images(6)
    plain, perturbed = tokenizer.encode_indices(batch), wrapped.encode(batch).payload
    assert torch.equal(perturbed[3:], plain[3:])
    assert (perturbed[:3] != plain[:3]).any(dim=1).all()
    assert torch.equal(wrapped.encode(batch[:1]).payload, plain[:1])  # int(1 × 0.5) = 0


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


def test_recon_track_takes_rule_as_an_optional_perturbation_setting() -> None:
    suite = load_suite("pfid")
    settings = suite.settings["perturbation"]
    assert "rule" not in settings and CodebookPerturbation(**_perturbation(suite)).rule == "per-image"
    official = replace(suite, settings={"perturbation": {**settings, "rule": "per-batch-official"}})
    assert CodebookPerturbation(**_perturbation(official)).rule == "per-batch-official"
    for entry in ({**settings, "order": 1}, {k: v for k, v in settings.items() if k != "seed"}):
        with pytest.raises(ConfigError, match="alpha, beta, delta, seed and optionally rule"):
            _perturbation(replace(suite, settings={"perturbation": entry}))
