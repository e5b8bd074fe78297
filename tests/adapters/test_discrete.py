"""The discrete-tokenizer capability: TiTok VQ variants implement it, VAE variants refuse it."""

from __future__ import annotations

import pytest
import torch

from tokbench.adapters.discrete import DiscreteTokenizer, require_discrete
from tokbench.errors import ConfigError
from tokbench.models.codecs import Identity


def images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_vq_titok_is_discrete_and_agrees_with_encode_decode(tiny_titok) -> None:
    tokenizer = tiny_titok()
    assert isinstance(tokenizer, DiscreteTokenizer) and tokenizer.is_discrete
    assert require_discrete(tokenizer) is tokenizer
    codebook = tokenizer.codebook()
    assert codebook.shape == (64, 8)
    assert torch.equal(codebook, tokenizer.model.quantize.embedding.weight)
    batch = images(3)
    encoded = tokenizer.encode(batch)
    indices = tokenizer.encode_indices(batch)
    assert indices.dtype == torch.int64 and indices.shape == (3, 8)
    assert torch.equal(indices, encoded.payload)
    assert torch.equal(tokenizer.decode_indices(indices), tokenizer.decode(encoded))


def test_l2_normalised_codebook_is_returned_normalised(tiny_titok) -> None:
    tokenizer = tiny_titok(use_l2_norm=True)
    codebook = tokenizer.codebook()
    assert torch.allclose(codebook.norm(dim=1), torch.ones(64), atol=1e-6)
    raw = tokenizer.model.quantize.embedding.weight
    assert torch.allclose(codebook, raw / raw.norm(dim=1, keepdim=True), atol=1e-6)


@pytest.mark.parametrize("use_l2_norm", [False, True])
def test_latents_are_what_the_indices_quantise(tiny_titok, use_l2_norm: bool) -> None:
    tokenizer = tiny_titok(use_l2_norm=use_l2_norm)
    batch = images(3)
    indices, latents = tokenizer.encode_latents(batch)
    assert torch.equal(indices, tokenizer.encode_indices(batch))
    assert latents.dtype == torch.float32 and latents.shape == (3, 8, 8)
    nearest = torch.cdist(latents.double(), tokenizer.codebook().double()[None]).argmin(dim=-1)
    assert torch.equal(nearest, indices)
    if use_l2_norm:
        assert torch.allclose(latents.norm(dim=-1), torch.ones(3, 8), atol=1e-6)


def test_vae_titok_is_not_applicable(tiny_titok) -> None:
    tokenizer = tiny_titok("vae")
    assert not tokenizer.is_discrete
    for call in (
        tokenizer.codebook,
        lambda: tokenizer.encode_indices(images(1)),
        lambda: tokenizer.encode_latents(images(1)),
    ):
        with pytest.raises(ConfigError, match="not applicable: continuous tokenizer"):
            call()
    with pytest.raises(ConfigError, match="not applicable: continuous tokenizer"):
        tokenizer.decode_indices(torch.zeros(1, 8, dtype=torch.int64))
    with pytest.raises(ConfigError, match="pfid: not applicable: continuous tokenizer"):
        require_discrete(tokenizer, "pfid")


def test_tokenizers_without_the_capability_are_not_applicable() -> None:
    with pytest.raises(ConfigError, match="not applicable: continuous tokenizer"):
        require_discrete(Identity())
    with pytest.raises(ConfigError, match=r"not a tokbench\.Tokenizer"):
        require_discrete(object())
