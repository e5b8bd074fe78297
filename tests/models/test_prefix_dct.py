"""PrefixDct: an ordered, prefix-truncatable token sequence whose quality grows with the token count."""

from __future__ import annotations

import math

import pytest
import torch

from tokbench.adapters.base import VariableLengthTokenizer
from tokbench.adapters.discrete import require_discrete
from tokbench.adapters.registry import build_model
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError
from tokbench.models.prefix_dct import PrefixDct, dct_matrix, zigzag_positions
from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer


@pytest.fixture(scope="module")
def embedded() -> torch.Tensor:
    """Four real images of the embedded set, 64×64 (the tokenizer works at any square resolution)."""
    preprocess = build_preprocess("imagenet-center-crop", resolution=64)
    items = resolve_dataset("embedded").items()[:24:6]
    return torch.stack([preprocess(item.load()).image for item in items])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.double() - b.double()) ** 2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse)).mean())


def test_dct_matrix_is_orthonormal() -> None:
    matrix = dct_matrix(16)
    assert torch.allclose(matrix @ matrix.T, torch.eye(16, dtype=torch.float64), atol=1e-12)


def test_zigzag_is_jpeg_order() -> None:
    expected = [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0)]
    assert zigzag_positions(8, 8, 10).tolist() == [list(p) for p in expected]
    every = zigzag_positions(4, 4, 16).tolist()
    assert sorted(map(tuple, every)) == [(u, v) for u in range(4) for v in range(4)]


def test_round_trip_contract_and_rate(embedded: torch.Tensor) -> None:
    tokenizer = PrefixDct(num_tokens=32, levels=16, resolution=64)
    encoded = tokenizer.encode(embedded)
    assert encoded.payload.dtype == torch.int64 and encoded.payload.shape == (4, 32)
    assert int(encoded.payload.min()) >= 0 and int(encoded.payload.max()) < 16**3
    assert encoded.num_tokens == 32
    assert torch.equal(encoded.bits, torch.full((4,), 32 * 12.0, dtype=torch.float64))
    decoded = tokenizer.decode(encoded)
    assert decoded.dtype == torch.float32 and decoded.shape == embedded.shape
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    assert torch.equal(tokenizer.decode(tokenizer.encode(embedded)), decoded)  # deterministic


def test_tokens_are_a_prefix_and_quality_grows_with_their_count(embedded: torch.Tensor) -> None:
    longest = PrefixDct(num_tokens=512, resolution=64).encode_indices(embedded)
    scores = []
    for count in (8, 32, 128, 512):
        tokenizer = PrefixDct(num_tokens=count, resolution=64)
        indices = tokenizer.encode_indices(embedded)
        assert torch.equal(indices, longest[:, :count])
        scores.append(psnr(tokenizer.decode_indices(indices), embedded))
    assert scores == sorted(scores) and scores[-1] - scores[0] > 3.0, scores


def test_discrete_capability_agrees_with_encode_decode(embedded: torch.Tensor) -> None:
    tokenizer = PrefixDct(num_tokens=16, levels=8, resolution=64)
    assert require_discrete(tokenizer) is tokenizer
    codebook = tokenizer.codebook()
    assert codebook.shape == (512, 3) and len({tuple(row) for row in codebook.tolist()}) == 512
    indices = tokenizer.encode_indices(embedded)
    assert torch.equal(tokenizer.decode_indices(indices), tokenizer.decode(tokenizer.encode(embedded)))
    unperturbed = PerturbedTokenizer(tokenizer, CodebookPerturbation(alpha=0.0, beta=1.0, delta=4, seed=0))
    assert torch.equal(unperturbed.decode(unperturbed.encode(embedded)), tokenizer.decode_indices(indices))


def test_latents_are_the_unrounded_levels_of_the_indices(embedded: torch.Tensor) -> None:
    tokenizer = PrefixDct(num_tokens=16, levels=8, resolution=64)
    indices, latents = tokenizer.encode_latents(embedded)
    assert torch.equal(indices, tokenizer.encode_indices(embedded))
    assert latents.dtype == torch.float64 and latents.shape == (*indices.shape, 3)
    # each latent rounds (and clamps) to its token's codebook row: the nearest entry of the grid
    assert torch.equal(latents.round().clamp(-4, 3), tokenizer.codebook()[indices].double())
    nearest = torch.cdist(latents, tokenizer.codebook().double()[None]).argmin(dim=-1)
    assert torch.equal(nearest, indices)


def test_variable_length_capability() -> None:
    tokenizer = PrefixDct(num_tokens=64, levels=32)
    assert isinstance(tokenizer, VariableLengthTokenizer)
    assert tokenizer.codebook_size == 32**3
    assert tokenizer.token_bits(2).tolist() == [64 * math.log2(32**3)] * 2
    built = build_model("prefix-dct:num_tokens=64")
    assert built.spec == "prefix-dct:levels=16,num_tokens=64,resolution=256"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_tokens": 0}, r"num_tokens must be an integer in \[1, 4096\], got 0"),
        ({"num_tokens": 5000}, "got 5000"),
        ({"levels": 15}, "levels must be an even integer"),
        ({"num_tokens": 100, "resolution": 8}, "resolution² >= num_tokens=100"),
    ],
)
def test_bad_arguments_name_the_argument(arguments: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PrefixDct(**arguments)


def test_bad_inputs_raise(embedded: torch.Tensor) -> None:
    tokenizer = PrefixDct(num_tokens=8, resolution=64)
    with pytest.raises(ConfigError, match=r"\[N, 3, 64, 64\].*set resolution="):
        tokenizer.encode(embedded[:, :, :32, :32])
    with pytest.raises(ConfigError, match=r"int64 indices \[N, 8\]"):
        tokenizer.decode_indices(torch.zeros(1, 9, dtype=torch.int64))
    with pytest.raises(ConfigError, match=r"in \[0, 4096\)"):
        tokenizer.decode_indices(torch.full((1, 8), 4096, dtype=torch.int64))
