"""Diffusers image autoencoders (DC-AE, FLUX.2, Qwen-Image, HunyuanImage, RAE and the generic
``diffusers-autoencoder``): every release's full-size architecture on the meta device, round trips
bit-identical to diffusers called as its pipelines do, weight loading from folders and files, the
offline error, and end-to-end recon and TokBench runs on the embedded data."""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers_autoencoder_tiny import TINY, tiny_model  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import tokbench  # noqa: E402
from tokbench.adapters import build_model  # noqa: E402
from tokbench.errors import ConfigError, WeightsError  # noqa: E402
from tokbench.hashing import file_sha256  # noqa: E402
from tokbench.models.diffusers_autoencoder_zoo import (  # noqa: E402
    AutoencoderRelease,
    DcAe,
    Flux2Vae,
    HunyuanImageVae,
    NamedDiffusersAutoencoder,
    QwenImageVae,
    Rae,
)
from tokbench.models.diffusers_autoencoders import CONVENTIONS, DiffusersAutoencoder, build_autoencoder  # noqa: E402
from tokbench.suites import SUITE_PATH_ENV  # noqa: E402

NAMED: tuple[type[NamedDiffusersAutoencoder], ...] = (DcAe, Flux2Vae, QwenImageVae, HunyuanImageVae, Rae)
RELEASES = [(cls, name) for cls in NAMED for name in cls.releases]
#: Latent channels of every release (the papers' and model cards' numbers).
CHANNELS = {"AutoencoderDC": None, "AutoencoderKLFlux2": 32, "AutoencoderKLQwenImage": 16}
CHANNELS |= {"AutoencoderKLHunyuanImage": 64}
SIDE = 16


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------ releases, full size


def test_release_tables_and_cards() -> None:
    for cls in NAMED:
        init = set(inspect.signature(getattr(diffusers, cls.class_name).__init__).parameters) - {"self"}
        assert cls.default_variant in cls.releases
        for release in cls.releases.values():
            assert set(release.config) <= init, f"{cls.model_name} {release.name}: unknown config keys"
            with pytest.raises(TypeError):
                release.config["latent_channels"] = 1  # type: ignore[index]
        cards = cls.cards()
        assert [c.spec for c in cards] == [f"{cls.model_name}:variant={n}" for n in cls.releases]
        for card, release in zip(cards, cls.releases.values(), strict=True):
            factor = CONVENTIONS[cls.class_name].downsampling(release.config)
            assert (card.family, card.kind, card.hub_id) == (cls.family, "continuous", release.hub_id)
            assert card.tokens == (release.resolution // factor) ** 2 and card.downsampling == factor
            assert card.verification == f"library: diffusers {cls.class_name}" and card.codebook is None
    assert DcAe.cards()[0].tokens == 32**2  # SANA at 1024 px: 32×32 latents
    assert Flux2Vae.releases["dev"].gated and not Flux2Vae.releases["klein-4b"].gated


@pytest.mark.parametrize(("cls", "name"), RELEASES, ids=[f"{c.model_name}-{n}" for c, n in RELEASES])
def test_full_size_architecture_on_meta(cls: type[NamedDiffusersAutoencoder], name: str) -> None:
    """The real config builds the diffusers class without weights, and a meta forward gives the
    release's latent shape: channels and downsampling as published."""
    release = cls.releases[name]
    model = build_autoencoder(cls.class_name, release.config, name, device="meta")
    assert type(model) is getattr(diffusers, cls.class_name)
    adapter = cls.from_model(model, name)
    factor = adapter.downsampling_factor
    side = release.resolution if cls is Rae else 2 * factor
    x = torch.empty(1, 3, side, side, device="meta")
    with torch.no_grad():
        output = model.encode(x[:, :, None] if cls is QwenImageVae else x)
    latents = output.latent_dist.mode() if hasattr(output, "latent_dist") else output.latent
    channels = CHANNELS.get(cls.class_name) or (
        int(release.config.get("latent_channels") or release.config.get("encoder_hidden_size"))
    )
    grid = side // factor
    assert latents.shape[:2] == (1, channels) and tuple(latents.shape[-2:]) == (grid, grid)
    if cls is DcAe:
        assert factor == int(name[1 : name.index("c")]) and channels == int(name.split("-")[0].split("c")[1])


def test_random_init_builds_the_full_release() -> None:
    built = build_model("qwen-image-vae:random_init=true")
    adapter = built.adapter
    assert isinstance(adapter, QwenImageVae) and adapter.weights_sha256 is None
    encoded = adapter.encode(torch.rand(1, 3, SIDE, SIDE))
    assert encoded.payload.shape == (1, 16, 2, 2) and encoded.num_tokens == 4 and encoded.bits is None
    assert adapter.describe()["normalisation"]["latents_std"][0] == 2.8184


# -------------------------------------------------------------------- round trips against diffusers


def pipeline_round_trip(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and reconstructions as each diffusers pipeline computes them, written out here."""
    name, config = type(model).__name__, model.config
    with torch.no_grad():
        if name == "AutoencoderRAE":
            z = model.encode(images).latent
            return z, model.decode(z).sample.clamp(0, 1)
        x = images * 2.0 - 1.0
        if name == "AutoencoderKLQwenImage":
            z = model.encode(x[:, :, None]).latent_dist.mode()
            mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1)
            inverse_std = 1.0 / torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1)
            latents = (z - mean) * inverse_std
            pixels = model.decode(latents / inverse_std + mean).sample[:, :, 0]
            return latents[:, :, 0], ((pixels + 1.0) / 2.0).clamp(0, 1)
        if name == "AutoencoderDC":
            latents = model.encode(x).latent * config.scaling_factor
            pixels = model.decode(latents / config.scaling_factor).sample
        elif name == "AutoencoderKLFlux2":
            z = model.encode(x).latent_dist.mode()
            n, c, h, w = z.shape
            patched = (
                z.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)
            )
            mean = model.bn.running_mean.view(1, -1, 1, 1)
            std = torch.sqrt(model.bn.running_var.view(1, -1, 1, 1) + config.batch_norm_eps)
            latents = (patched - mean) / std
            back = (latents * std + mean).reshape(n, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3)
            pixels = model.decode(back.reshape(n, c, h, w)).sample
        elif name == "AutoencoderKL":
            latents = (model.encode(x).latent_dist.mode() - config.shift_factor) * config.scaling_factor
            pixels = model.decode(latents / config.scaling_factor + config.shift_factor).sample
        else:  # AutoencoderKLHunyuanImage
            latents = model.encode(x).latent_dist.mode() * config.scaling_factor
            pixels = model.decode(latents / config.scaling_factor).sample
    return latents, ((pixels + 1.0) / 2.0).clamp(0, 1)


@pytest.mark.parametrize("cls", NAMED, ids=[c.model_name for c in NAMED])
def test_named_round_trip_is_the_pipelines(
    cls: type[NamedDiffusersAutoencoder], images: torch.Tensor
) -> None:
    model = tiny_model(cls.class_name)
    adapter = cls.from_model(model)
    original = images.clone()
    encoded = adapter.encode(images)
    decoded = adapter.decode(encoded)
    latents, pixels = pipeline_round_trip(model, images)
    assert torch.equal(images, original) and encoded.bits is None
    assert torch.equal(encoded.payload, latents) and torch.equal(decoded, pixels)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32 and not decoded.is_inference()
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    factor = adapter.downsampling_factor
    assert encoded.num_tokens == (SIDE // factor) ** 2
    normalisation = adapter.describe()["normalisation"]
    assert set(normalisation) == set(CONVENTIONS[cls.class_name].factor_keys)
    for key in normalisation:
        assert normalisation[key] == json.loads(json.dumps(model.config[key]))


def test_bad_inputs_and_arguments(images: torch.Tensor) -> None:
    adapter = HunyuanImageVae.from_model(tiny_model("AutoencoderKLHunyuanImage"))
    with pytest.raises(ConfigError, match="multiples of 2"):
        adapter.encode(images[:, :, :15, :15])
    with pytest.raises(ConfigError, match="float32 latents"):
        adapter.decode(type(adapter.encode(images))(payload=torch.zeros(1, 4, 2, 2, 2)))
    rae = Rae.from_model(tiny_model("AutoencoderRAE"))
    with pytest.raises(ConfigError, match="16×16"):
        rae.encode(torch.rand(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="variant must be one of"):
        DcAe("f8c4")
    with pytest.raises(ConfigError, match="random_init"):
        DcAe(random_init=True, weights="x.safetensors")
    with pytest.raises(ConfigError, match="AutoencoderDC"):
        DcAe.from_model(tiny_model("AutoencoderKLFlux2"))


# ---------------------------------------------------------------------------- weights and the hub


def test_named_release_loads_a_folder_with_the_configs_factors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, images: torch.Tensor
) -> None:
    config = TINY["AutoencoderKLHunyuanImage"]
    monkeypatch.setitem(
        HunyuanImageVae.releases, "tiny", AutoencoderRelease("tiny", "org/tiny", "vae", config, 16)
    )
    model = tiny_model("AutoencoderKLHunyuanImage")
    model.register_to_config(scaling_factor=0.5)  # a release config.json's factor wins over the embedded one
    model.save_pretrained(tmp_path / "vae")
    weights = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    loaded = HunyuanImageVae("tiny", weights=str(tmp_path))
    assert loaded.weights_sha256 == file_sha256(weights) and loaded.describe()["normalisation"] == {
        "scaling_factor": 0.5
    }
    latents, pixels = pipeline_round_trip(model, images)
    encoded = loaded.encode(images)
    assert torch.equal(encoded.payload, latents) and torch.equal(loaded.decode(encoded), pixels)
    bare = HunyuanImageVae("tiny", weights=str(weights))  # no config.json: the embedded factor
    assert bare.describe()["normalisation"] == {"scaling_factor": 0.75289}
    release_config = json.loads((tmp_path / "vae" / "config.json").read_text())
    del release_config["scaling_factor"]  # a config.json without the factor: the embedded one, not None
    (tmp_path / "vae" / "config.json").write_text(json.dumps(release_config))
    assert HunyuanImageVae("tiny", weights=str(tmp_path)).describe()["normalisation"] == {
        "scaling_factor": 0.75289
    }
    with pytest.raises(WeightsError, match=r"not the hunyuan-image-2.1 architecture: .*latent_channels=4"):
        HunyuanImageVae(weights=str(tmp_path))
    with pytest.raises(WeightsError, match="not a diffusers AutoencoderKLHunyuanImage state dict"):
        HunyuanImageVae(weights=str(weights))


@pytest.fixture()
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "home"


def test_named_release_from_the_hub_cache_records_the_commit(
    monkeypatch: pytest.MonkeyPatch, offline_env: Path, images: torch.Tensor
) -> None:
    pytest.importorskip("huggingface_hub")
    config = TINY["AutoencoderKLQwenImage"]
    monkeypatch.setitem(
        QwenImageVae.releases, "tiny", AutoencoderRelease("tiny", "org/tiny", "vae", config, 16)
    )
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline_env / "hub" / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    model = tiny_model("AutoencoderKLQwenImage")
    model.save_pretrained(repo / "snapshots" / commit / "vae")
    loaded = QwenImageVae("tiny")  # HF_HOME, offline: the cached snapshot
    described = loaded.describe()
    assert (described["commit"], described["source"], described["hub_id"]) == (
        commit,
        "hub:org/tiny",
        "org/tiny",
    )
    sha = file_sha256(repo / "snapshots" / commit / "vae" / "diffusion_pytorch_model.safetensors")
    assert described["weights_sha256"] == sha
    assert torch.equal(loaded.encode(images).payload, pipeline_round_trip(model, images)[0])


@pytest.mark.parametrize("cls", NAMED, ids=[c.model_name for c in NAMED])
def test_offline_error_names_the_hub_id_and_weights(
    cls: type[NamedDiffusersAutoencoder], offline_env: Path
) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        cls()
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert cls.releases[cls.default_variant].hub_id in message and "HF_HUB_OFFLINE" in message
    assert "--weights PATH" in message and f"{cls.model_name}:variant={cls.default_variant}" in message
    with pytest.raises(WeightsError, match=r"FLUX\.2-dev.*gated"):
        Flux2Vae("dev")


def test_generic_offline_error(offline_env: Path) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model("diffusers-autoencoder:repo=org/some-vae,subfolder=vae")
    assert time.monotonic() - start < 5
    assert "org/some-vae" in str(error.value) and "--weights PATH" in str(error.value)


@pytest.mark.parametrize("class_name", list(CONVENTIONS))
def test_generic_adapter_is_bit_identical_to_diffusers(
    class_name: str, tmp_path: Path, images: torch.Tensor
) -> None:
    model = tiny_model(class_name)
    model.save_pretrained(tmp_path / "repo" / "vae")
    built = build_model(f"diffusers-autoencoder:repo={tmp_path / 'repo'},subfolder=vae")
    adapter = built.adapter
    assert isinstance(adapter, DiffusersAutoencoder)
    sha = file_sha256(tmp_path / "repo" / "vae" / "diffusion_pytorch_model.safetensors")
    assert adapter.weights_sha256 == sha and built.spec.endswith("@" + sha[:12])
    encoded = adapter.encode(images)
    latents, pixels = pipeline_round_trip(model, images)
    assert torch.equal(encoded.payload, latents) and torch.equal(adapter.decode(encoded), pixels)
    described = adapter.describe()
    assert (
        described["class_name"] == class_name
        and described["downsampling_factor"] == adapter.downsampling_factor
    )
    for key, value in described["normalisation"].items():
        assert value == json.loads(json.dumps(model.config[key]))


def test_generic_refuses_other_classes(tmp_path: Path) -> None:
    folder = tmp_path / "wan"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan", "z_dim": 16}))
    save_file({"x": torch.zeros(1)}, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(
        ConfigError, match="'AutoencoderKLWan' is not a supported diffusers image autoencoder"
    ):
        DiffusersAutoencoder(str(folder))
    (folder / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        DiffusersAutoencoder(str(folder))


# ------------------------------------------------------------------------------------- end to end

TOKBENCH_SUITE = """
include: tokbench
name: dae-tokbench-256
version: "test"
settings:
  bucket_edges: "855802d"
  save: as-original
  ocr_batches: per-instance
  resolutions:
    - {resolution: 256, text: [0.02, 0.03, 0.04, 1.0], face: [0.1, 0.2, 0.3, 1.0]}
"""


@pytest.mark.slow  # ~30 s on two busy cores: four suite runs (still run in CI)
def test_recon_and_tokbench_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny named adapter and the generic one through the real recon suite and TokBench at 256 px."""
    (tmp_path / "dae-tokbench-256.yaml").write_text(TOKBENCH_SUITE)
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    tiny_model("AutoencoderKLFlux2").save_pretrained(tmp_path / "flux2")
    store = tmp_path / "store"
    options = {"limit": 2, "batch_size": 2, "cache_features": False, "store": store}
    for model in (
        HunyuanImageVae.from_model(tiny_model("AutoencoderKLHunyuanImage")),
        f"diffusers-autoencoder:repo={tmp_path / 'flux2'}",
    ):
        recon = tokbench.evaluate(model, "recon", **options)
        assert recon.stored is not None and recon.stored.status == "added"
        assert recon.record["dataset"]["items_used"] == 2
        assert all(math.isfinite(recon.metrics[k]) for k in ("psnr", "ssim", "lpips", "fid"))
        result = tokbench.evaluate(model, "dae-tokbench-256", store=store, limit=1, batch_size=1)
        assert result.record["dataset"]["items_used"] == 1
        assert {"t_acc_256_mean", "t_ned_256_mean"} <= set(result.metrics)
