"""Discrete VQ autoencoders through diffusers' ``VQModel``: the variant table against ``VQModel``,
the tokenizer and codebook contract on each real architecture with random weights, weight loading
(file, hub cache, wrong architecture) and the offline error."""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from safetensors.torch import save_file  # noqa: E402

from tokbench.adapters import build_model  # noqa: E402
from tokbench.adapters.discrete import require_discrete  # noqa: E402
from tokbench.errors import ConfigError, WeightsError  # noqa: E402
from tokbench.hashing import file_sha256  # noqa: E402
from tokbench.models.diffusers_vq import VARIANTS, DiffusersVq  # noqa: E402
from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer  # noqa: E402

SIZE = 16  # 4×4 tokens for f4, 2×2 for f8: the full-size networks at the smallest useful input
SNAPSHOT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, DiffusersVq]:
    return {name: DiffusersVq(name, random_init=True) for name in VARIANTS}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def ldm_weights(tokenizers: dict[str, DiffusersVq], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "diffusion_pytorch_model.safetensors"
    model = tokenizers["ldm-celebahq-f4"].model
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_variant_table() -> None:
    init = set(inspect.signature(diffusers.VQModel.__init__).parameters) - {"self"}
    expected = {  # hub id, folder, codebook size, code dimension, downsampling factor
        "ldm-celebahq-f4": ("CompVis/ldm-celebahq-256", "vqvae", 8192, 3, 4),
        "vq-diffusion-ithq": ("microsoft/vq-diffusion-ithq", "vqvae", 4096, 128, 8),
        "kandinsky22-movq": ("kandinsky-community/kandinsky-2-2-decoder", "movq", 16384, 4, 8),
    }
    assert set(VARIANTS) == set(expected)
    for name, variant in VARIANTS.items():
        assert set(variant.config) <= init, name
        facts = (variant.hub_id, variant.subfolder, variant.codebook_size, variant.code_dim)
        assert (*facts, variant.downsampling_factor) == expected[name]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_round_trip_and_codebook_on_the_real_architecture(
    name: str, tokenizers: dict[str, DiffusersVq], images: torch.Tensor
) -> None:
    tokenizer, variant = tokenizers[name], VARIANTS[name]
    side = SIZE // variant.downsampling_factor
    encoded = tokenizer.encode(images)
    assert encoded.payload.dtype == torch.int64 and encoded.payload.shape == (2, side, side)
    assert encoded.num_tokens == side * side
    assert encoded.bits.tolist() == [side * side * math.log2(variant.codebook_size)] * 2
    decoded = tokenizer.decode(encoded)
    assert decoded.dtype == torch.float32 and decoded.shape == images.shape
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    assert require_discrete(tokenizer) is tokenizer
    codebook = tokenizer.codebook()
    assert codebook.shape == (variant.codebook_size, variant.code_dim)
    indices = tokenizer.encode_indices(images)
    assert torch.equal(indices, encoded.payload.flatten(1))
    assert torch.equal(tokenizer.decode_indices(indices), decoded)
    # the indices are the nearest codebook entries of the encoder output (Euclidean)
    with torch.inference_mode():
        latents = tokenizer.model.encode(images * 2 - 1).latents
    flat = latents.permute(0, 2, 3, 1).reshape(-1, variant.code_dim)
    nearest = torch.cdist(flat, codebook).argmin(dim=1).reshape(2, -1)
    assert torch.equal(indices, nearest)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_latents_are_the_encoder_output_the_indices_quantise(
    name: str, tokenizers: dict[str, DiffusersVq], images: torch.Tensor
) -> None:
    tokenizer, variant = tokenizers[name], VARIANTS[name]
    indices, latents = tokenizer.encode_latents(images)
    assert torch.equal(indices, tokenizer.encode_indices(images))
    assert latents.dtype == torch.float32 and latents.shape == (*indices.shape, variant.code_dim)
    with torch.inference_mode():
        grid = tokenizer.model.encode(images * 2 - 1).latents
    assert torch.equal(latents, grid.permute(0, 2, 3, 1).flatten(1, 2))  # row-major, as the indices
    assert torch.equal(torch.cdist(latents, tokenizer.codebook()[None]).argmin(dim=-1), indices)


def test_perturbation_with_alpha_zero_changes_nothing(tokenizers: dict[str, DiffusersVq], images) -> None:
    tokenizer = tokenizers["vq-diffusion-ithq"]  # the smallest codebook: the neighbour search is K²
    wrapped = PerturbedTokenizer(tokenizer, CodebookPerturbation(alpha=0.0, beta=1.0, delta=3))
    assert torch.equal(wrapped.decode(wrapped.encode(images)), tokenizer.decode(tokenizer.encode(images)))


def test_state_dict_file_and_hub_cache_load(
    tokenizers: dict[str, DiffusersVq], ldm_weights: Path, images: torch.Tensor, tmp_path: Path, monkeypatch
) -> None:
    reference = tokenizers["ldm-celebahq-f4"]
    loaded = DiffusersVq("ldm-celebahq-f4", weights=str(ldm_weights))
    assert loaded.weights_sha256 == file_sha256(ldm_weights) and loaded.source == f"file:{ldm_weights}"
    assert torch.equal(loaded.encode(images).payload, reference.encode(images).payload)
    repo = tmp_path / "hub" / "models--CompVis--ldm-celebahq-256"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    folder = repo / "snapshots" / SNAPSHOT / "vqvae"
    folder.mkdir(parents=True)
    (folder / "diffusion_pytorch_model.safetensors").symlink_to(ldm_weights)
    config = {"_class_name": "VQModel", **VARIANTS["ldm-celebahq-f4"].config, "sample_size": 256}
    del config["vq_embed_dim"], config["norm_type"]  # an older config.json: VQModel's defaults apply
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = DiffusersVq("ldm-celebahq-f4", weights=str(tmp_path))
    assert (cached.commit, cached.weights_sha256) == (SNAPSHOT, file_sha256(ldm_weights))
    assert cached.describe()["codebook_size"] == 8192


def test_wrong_architecture_is_refused(ldm_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as error:
        DiffusersVq("kandinsky22-movq", weights=str(ldm_weights))
    message = str(error.value)
    assert "not a diffusers VQModel state dict of the kandinsky22-movq architecture" in message
    assert "--weights PATH" in message
    folder = tmp_path / "vqvae"
    folder.mkdir()
    (folder / "diffusion_pytorch_model.safetensors").symlink_to(ldm_weights)
    (folder / "config.json").write_text(json.dumps(dict(VARIANTS["vq-diffusion-ithq"].config)))
    with pytest.raises(WeightsError, match=r"num_vq_embeddings=4096 \(expected 8192\)"):
        DiffusersVq("ldm-celebahq-f4", weights=str(folder))


def test_offline_error_names_the_hub_id_and_the_ways(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model("diffusers-vq:variant=kandinsky22-movq")
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "kandinsky-community/kandinsky-2-2-decoder" in message and "HF_HUB_OFFLINE" in message
    assert "--weights PATH" in message and "HF_HOME" in message and "movq/" in message


def test_bad_arguments_and_inputs(tokenizers: dict[str, DiffusersVq], images: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="variant must be one of ldm-celebahq-f4"):
        DiffusersVq("vqgan")
    with pytest.raises(ConfigError, match="drop weights="):
        DiffusersVq(random_init=True, weights="x")
    tokenizer = tokenizers["vq-diffusion-ithq"]
    with pytest.raises(ConfigError, match="multiples of 8"):
        tokenizer.encode(images[:, :, :12, :12])
    with pytest.raises(ConfigError, match="square token grid"):
        tokenizer.decode_indices(torch.zeros(1, 3, dtype=torch.int64))
    with pytest.raises(ConfigError, match=r"in \[0, 4096\)"):
        tokenizer.decode_indices(torch.full((1, 4), 4096, dtype=torch.int64))
