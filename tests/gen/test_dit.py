"""The DiT generator adapter: real diffusers structure (tiny, random weights), per-image seeds,
parity with diffusers' DiTPipeline, settings checked at construction, weights resolution errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gen_fixtures import tiny_modules

from tokbench.adapters import MODELS, Generator, build_model
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.dit import VARIANTS, DiT, make_scheduler, transformer_config


@pytest.fixture(scope="module")
def parts():
    return tiny_modules()


def test_registered_as_a_generator() -> None:
    assert issubclass(MODELS.get("dit"), Generator)
    assert DiT.sampling_settings == ("guidance_scale", "steps", "sampler", "guidance_channels")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samples_follow_the_contract_and_their_seeds(parts, sampler: str) -> None:
    model = DiT.from_modules(*parts, steps=3, sampler=sampler, guidance_scale=2.0)
    images = model.sample([0, 1, 2], [11, 12, 13])
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert torch.equal(images, model.sample([0, 1, 2], [11, 12, 13]))  # same seeds: same images
    other = model.sample([0, 1, 2], [21, 12, 13])
    assert not torch.allclose(other[0], images[0]) and torch.allclose(other[1:], images[1:], atol=1e-5)
    alone = model.sample([1], [12])  # an image does not depend on its batch (up to float round-off)
    assert torch.allclose(alone[0], images[1], atol=1e-5)


def test_matches_diffusers_dit_pipeline(parts) -> None:
    from diffusers import DiTPipeline

    model = DiT.from_modules(*parts, steps=4, sampler="ddim", guidance_scale=3.0, guidance_channels=4)
    pipeline = DiTPipeline(transformer=parts[0], vae=parts[1], scheduler=make_scheduler("ddim", 4))
    pipeline.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(s) for s in (5, 6)]
    expected = pipeline(
        [3, 7], guidance_scale=3.0, generator=generators, num_inference_steps=4, output_type="pt"
    )
    assert torch.allclose(model.sample([3, 7], [5, 6]), expected.images, atol=1e-5)


def test_guidance_settings_change_the_samples(parts) -> None:
    def draw(**settings) -> torch.Tensor:
        return DiT.from_modules(*parts, steps=2, **settings).sample([1, 2], [3, 4])

    unguided = draw(guidance_scale=1.0, guidance_channels=3)
    assert torch.equal(unguided, draw(guidance_scale=1.0, guidance_channels=4))  # no guidance: no effect
    assert not torch.allclose(draw(guidance_scale=4.0, guidance_channels=3), unguided)
    assert not torch.allclose(
        draw(guidance_scale=4.0, guidance_channels=3), draw(guidance_scale=4.0, guidance_channels=4)
    )


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"guidance_scale": 0.5}, r"guidance_scale=0\.5 is not supported"),
        ({"guidance_scale": float("nan")}, "guidance_scale=nan is not supported"),
        ({"steps": 0}, r"steps must be an int in \[1, 1000\]"),
        ({"sampler": "euler"}, "sampler must be one of ddpm, ddim"),
        ({"guidance_channels": 5}, r"guidance_channels must be an int in \[1, 4\]"),
    ],
)
def test_unsupported_settings_fail_at_construction(parts, settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DiT.from_modules(*parts, **settings)


def test_spec_settings_are_checked_before_any_weights_lookup(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"guidance_scale=0\.5 is not supported"):
        build_model("dit:guidance_scale=0.5")
    with pytest.raises(ConfigError, match="variant must be one of xl-2-256, xl-2-512"):
        build_model("dit:variant=xl-2-1024")
    with pytest.raises(ConfigError, match=r"unknown argument.*cfg"):
        build_model("dit:cfg=4")


def test_bad_conditions_and_seeds(parts) -> None:
    model = DiT.from_modules(*parts, steps=1)
    with pytest.raises(ConfigError, match=r"class labels in \[0, 1000\)"):
        model.sample([1000], [0])
    with pytest.raises(ConfigError, match="2 class labels but 1 seeds"):
        model.sample([1, 2], [0])


def test_offline_without_weights_says_how_to_supply_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    offline = r"facebook/DiT-XL-2-256.*not in the local hub cache.*--weights PATH"
    with pytest.raises(WeightsError, match=offline):
        DiT()
    with pytest.raises(WeightsError, match="is not a directory"):
        DiT(weights=str(tmp_path / "missing"))


def test_a_pipeline_folder_is_checked_against_the_variant(parts, tmp_path: Path) -> None:
    transformer, vae = parts
    transformer.save_pretrained(tmp_path / "transformer")
    vae.save_pretrained(tmp_path / "vae")
    with pytest.raises(WeightsError, match=r"not the DiT-XL/2 256 transformer: num_attention_heads=2"):
        DiT(weights=str(tmp_path))
    config = transformer_config(32)  # the real config beside tiny weights
    (tmp_path / "transformer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"not a DiTTransformer2DModel state dict.*missing"):
        DiT(weights=str(tmp_path))
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"no weights in .*vae"):
        DiT(weights=str(tmp_path))


def test_variants_describe_the_hub_releases() -> None:
    assert VARIANTS["xl-2-256"].transformer["sample_size"] == 32
    assert VARIANTS["xl-2-512"].transformer["sample_size"] == 64
    assert VARIANTS["xl-2-256"].vae.name == "sd-ft-ema"
