"""Latent-diffusion VAEs through diffusers: the variant table against diffusers' ``AutoencoderKL``,
the adapter contract on each real architecture with random weights, weight resolution (files,
folders, hub caches, legacy key names, wrong architectures) and the offline error."""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from safetensors.torch import save_file  # noqa: E402

from tokbench.adapters import build_model  # noqa: E402
from tokbench.errors import ConfigError, WeightsError  # noqa: E402
from tokbench.hashing import file_sha256  # noqa: E402
from tokbench.models.diffusers_vae import (  # noqa: E402
    VARIANTS,
    DiffusersVae,
    diffusion_latents_to_vae_latents,
    vae_latents_to_diffusion_latents,
)

SIZE = 16  # 2×2 latents: the full-size networks at the smallest useful input
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def sd_vae() -> DiffusersVae:
    return DiffusersVae("sd-ft-mse", random_init=True)


@pytest.fixture(scope="module")
def sd_weights(sd_vae: DiffusersVae, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in sd_vae.model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_variant_table() -> None:
    init = set(inspect.signature(diffusers.AutoencoderKL.__init__).parameters) - {"self"}
    expected = {
        "sd-ft-mse": ("stabilityai/sd-vae-ft-mse", "", 4, 0.18215, None, False),
        "sd-ft-ema": ("stabilityai/sd-vae-ft-ema", "", 4, 0.18215, None, False),
        "sdxl": ("stabilityai/sdxl-vae", "", 4, 0.13025, None, False),
        "sd35": ("stabilityai/stable-diffusion-3.5-large", "vae", 16, 1.5305, 0.0609, True),
        "flux1": ("black-forest-labs/FLUX.1-schnell", "vae", 16, 0.3611, 0.1159, False),
    }
    assert set(VARIANTS) == set(expected)
    for name, (hub_id, sub, channels, scale, shift, gated) in expected.items():
        v = VARIANTS[name]
        assert (v.hub_id, v.subfolder, v.latent_channels, v.scaling_factor, v.shift_factor, v.gated) == (
            hub_id,
            sub,
            channels,
            scale,
            shift,
            gated,
        )
        assert v.downsampling_factor == 8 and set(v.config) <= init
        assert v.config["use_quant_conv"] is (channels == 4)
        with pytest.raises(TypeError):
            v.config["latent_channels"] = 1  # type: ignore[index]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_round_trip_contract(name: str, sd_vae: DiffusersVae, images: torch.Tensor) -> None:
    tokenizer = sd_vae if name == "sd-ft-mse" else DiffusersVae(name, random_init=True)
    channels = VARIANTS[name].latent_channels
    encoded = tokenizer.encode(images)
    assert encoded.payload.shape == (2, channels, SIZE // 8, SIZE // 8)
    assert encoded.payload.dtype == torch.float32
    assert encoded.bits is None and encoded.num_tokens == (SIZE // 8) ** 2
    decoded = tokenizer.decode(encoded)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0 and not decoded.is_inference()
    assert tokenizer.weights_sha256 is None and tokenizer.to(torch.device("cpu")) is tokenizer
    described = tokenizer.describe()
    assert (described["latent_channels"], described["shift_factor"]) == (
        channels,
        VARIANTS[name].shift_factor,
    )


def test_mode_is_deterministic_and_sample_draws(sd_vae: DiffusersVae, images: torch.Tensor) -> None:
    first, again = sd_vae.encode(images).payload, sd_vae.encode(images).payload
    assert torch.equal(first, again)
    sampling = DiffusersVae.__new__(DiffusersVae)
    sampling.__dict__.update(sd_vae.__dict__, sample=True)
    torch.manual_seed(1)
    drawn = sampling.encode(images).payload
    assert drawn.shape == first.shape and not torch.equal(drawn, first)


def test_bad_inputs(sd_vae: DiffusersVae, images: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="multiples of 8"):
        sd_vae.encode(images[:, :, :12, :12])
    with pytest.raises(ConfigError, match="float32 images"):
        sd_vae.encode(images.double())
    with pytest.raises(ConfigError, match=r"latents \[N, 4, h, w\]"):
        sd_vae.decode(type(sd_vae.encode(images))(payload=torch.zeros(1, 16, 4, 4)))
    with pytest.raises(ConfigError, match="variant must be one of"):
        DiffusersVae("sd2")
    with pytest.raises(ConfigError, match="random_init"):
        DiffusersVae(random_init=True, weights="x.safetensors")


def test_factors_convert_latents_both_ways() -> None:
    z = torch.randn(1, 16, 2, 2)
    scaled = vae_latents_to_diffusion_latents(z, VARIANTS["flux1"])
    assert torch.allclose(scaled, (z - 0.1159) * 0.3611)
    assert torch.allclose(diffusion_latents_to_vae_latents(scaled, VARIANTS["flux1"]), z, atol=1e-6)


def test_state_dict_file_loads(
    sd_vae: DiffusersVae, sd_weights: Path, images: torch.Tensor, tmp_path: Path
) -> None:
    loaded = DiffusersVae("sd-ft-mse", weights=str(sd_weights))
    assert loaded.weights_sha256 == file_sha256(sd_weights) and loaded.source == f"file:{sd_weights}"
    assert torch.equal(loaded.encode(images).payload, sd_vae.encode(images).payload)
    # files written by diffusers <= 0.13 (sd-vae-ft-mse's own) name attention projections query/key/...
    legacy_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    legacy = {}
    for key, value in sd_vae.model.state_dict().items():
        for new, old in legacy_names.items():
            key = key.replace(f".attentions.0.{new}.", f".attentions.0.{old}.")
        legacy[key] = value.contiguous()
    assert any(".query." in k for k in legacy)
    save_file(legacy, str(tmp_path / "legacy.safetensors"))
    again = DiffusersVae("sd-ft-mse", weights=str(tmp_path / "legacy.safetensors"))
    assert all(
        torch.equal(a, b) for a, b in zip(again.model.parameters(), sd_vae.model.parameters(), strict=True)
    )


def test_wrong_architecture_is_refused(sd_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as error:
        DiffusersVae("flux1", weights=str(sd_weights))  # 4-channel weights for a 16-channel model
    message = str(error.value)
    assert "not a diffusers AutoencoderKL state dict" in message and "--weights PATH" in message
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "diffusion_pytorch_model.safetensors").symlink_to(sd_weights)
    (folder / "config.json").write_text(json.dumps(dict(VARIANTS["flux1"].config)))
    with pytest.raises(WeightsError, match=r"latent_channels=16 \(expected 4\)"):
        DiffusersVae("sd-ft-mse", weights=str(folder))
    with pytest.raises(WeightsError, match="neither a file nor a directory"):
        DiffusersVae("sd-ft-mse", weights=str(tmp_path / "absent"))
    with pytest.raises(WeightsError, match="no weights in"):
        DiffusersVae("sd-ft-mse", weights=str(tmp_path))


def _hub_cache(root: Path, sd_weights: Path, repo: str, subfolder: str = "") -> Path:
    """A hub cache holding ``repo`` at one snapshot, ``main`` pointing to it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(SNAPSHOT)
    target = folder / "snapshots" / SNAPSHOT / subfolder
    target.mkdir(parents=True)
    (target / "diffusion_pytorch_model.safetensors").symlink_to(sd_weights)
    config = {"_class_name": "AutoencoderKL", **VARIANTS["sd-ft-mse"].config}
    del config["scaling_factor"], config["use_quant_conv"]  # old configs lack keys: defaults apply
    (target / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture()
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "home"


def test_hub_caches_and_snapshot_folders_load(sd_weights: Path, offline_env: Path) -> None:
    pytest.importorskip("huggingface_hub")
    repo = _hub_cache(offline_env / "hub", sd_weights, "stabilityai/sd-vae-ft-mse")
    expected = file_sha256(sd_weights)
    from_env = DiffusersVae("sd-ft-mse")  # HF_HOME, offline: the cached snapshot
    assert (from_env.commit, from_env.weights_sha256) == (SNAPSHOT, expected)
    for where in (repo, repo.parent, repo / "snapshots" / SNAPSHOT):  # repo folder, hub cache, snapshot
        assert DiffusersVae("sd-ft-mse", weights=str(where)).weights_sha256 == expected
    with pytest.raises(WeightsError, match="revision 'v2'"):
        DiffusersVae("sd-ft-mse", weights=str(repo), revision="v2")


@pytest.mark.parametrize("name", ["sd-ft-mse", "sd35"])
def test_offline_error_names_the_hub_id_and_the_ways(name: str, offline_env: Path) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        DiffusersVae(name)
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert VARIANTS[name].hub_id in message and "HF_HUB_OFFLINE" in message
    assert "--weights PATH" in message and "HF_HOME" in message
    assert ("gated" in message) is VARIANTS[name].gated


def test_missing_diffusers_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ConfigError, match="pip install"):
        DiffusersVae("sd-ft-mse", weights="anything")


def test_build_from_spec(sd_weights: Path) -> None:
    built = build_model(f"tokbench.models.diffusers_vae:DiffusersVae:variant=sd-ft-mse,weights={sd_weights}")
    assert isinstance(built.adapter, DiffusersVae)
    assert built.adapter.weights_sha256 == file_sha256(sd_weights)
    assert built.spec.endswith("@" + file_sha256(sd_weights)[:12]) and str(sd_weights) not in built.spec
