"""The transformers-backed VQ tokenizers (chameleon-vq, emu3-vq, janus-vq): JanusVQVAE against the
LlamaGen golden (official tokens and pixels), every adapter against the library's own forward on the
real architecture with random weights, the full-size configs on the meta device, weight loading
(only the VQ shards of a sharded checkpoint; a Lightning VQGAN checkpoint), the offline error, and
recon / tokbench / pfid end to end."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file
from transformers_vq_tiny import TINY_CONFIGS
from zoo_reference import reference

import tokbench
from tokbench.adapters import build_model
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.transformers_vq import (
    ChameleonVq,
    Emu3Vq,
    JanusVq,
    llamagen_to_janus_keys,
)
from tokbench.suites import SUITE_PATH_ENV

REFERENCE, needs_reference = reference("llamagen_vq")

TINY_JANUS = TINY_CONFIGS["janus-vq"]
TINY_CHAMELEON = TINY_CONFIGS["chameleon-vq"]
TINY_EMU3 = TINY_CONFIGS["emu3-vq"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tiny() -> dict[str, object]:
    return {
        "janus": JanusVq.from_config(TINY_JANUS, random_init=True),
        "chameleon": ChameleonVq.from_config(TINY_CHAMELEON, random_init=True),
        "emu3": Emu3Vq.from_config(TINY_EMU3, random_init=True),
    }


@needs_reference
def test_janus_reproduces_the_llamagen_golden() -> None:
    golden = load_file(str(REFERENCE / "tiny_vq_ds16" / "reference_io.safetensors"))
    images = load_file(str(REFERENCE / "input_images.safetensors"))["input_images"]
    tokenizer = JanusVq.from_config(
        TINY_JANUS | {"num_patches": 4}, weights=str(REFERENCE / "tiny_vq_ds16" / "weights.safetensors")
    )
    indices, latents = tokenizer.encode_latents(images)
    assert torch.equal(indices.flatten(), golden["tokens"])  # exact
    expected = golden["pre_quant_latent_l2normalized"].permute(0, 2, 3, 1).reshape(4, 16, 8)
    torch.testing.assert_close(latents, expected, atol=5e-5, rtol=0)
    torch.testing.assert_close(tokenizer.codebook(), golden["codebook_l2normalized"], atol=1e-6, rtol=0)
    with torch.inference_mode():
        for tokens, decoded in (("tokens", "decoded_raw"), ("probe_tokens", "probe_decoded_raw")):
            raw = tokenizer.pixels(golden[tokens].reshape(-1, 4, 4))
            torch.testing.assert_close(raw, golden[decoded], atol=5e-5, rtol=0)
        grid, _ = tokenizer._encode_grid((golden["nonsquare_x_normalized"] + 1) / 2)
        assert torch.equal(grid.flatten(), golden["nonsquare_tokens"])
        raw = tokenizer.pixels(grid)
        torch.testing.assert_close(raw, golden["nonsquare_decoded_raw"], atol=5e-5, rtol=0)
    # the official uint8 conversion of our reconstruction: within ±1 level of the golden's
    ours = (tokenizer.decode(tokenizer.encode(images)) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert (ours.int() - golden["decoded_uint8_nhwc"].int()).abs().max() <= 1
    # The finding: JanusVQVAE.encode searches the raw codebook, not the normalised one (decode agrees).
    with torch.inference_mode():
        library = tokenizer.model.encode(golden["x_normalized"]).image_tokens
        assert (library != golden["tokens"]).sum() > 0
        library_pixels = tokenizer.model.decode(golden["tokens"].reshape(4, 16))
    torch.testing.assert_close(library_pixels, golden["decoded_raw"], atol=5e-5, rtol=0)


@needs_reference
@pytest.mark.parametrize("name", ["vq_ds16_c2i", "vq_ds16_t2i"])
def test_full_size_llamagen_manifest_is_janus_key_for_key(name: str) -> None:
    manifest = json.loads((REFERENCE / "full_size_manifests" / f"{name}.json").read_text())
    official = {k: torch.Size(v["shape"]) for k, v in manifest["state_dict"].items()}
    mapped = llamagen_to_janus_keys({k: torch.empty(0) for k in official})
    expected = JanusVq.architecture(device="meta").state_dict()
    assert set(mapped) == set(expected)
    kept = [k for k in official if k != "quantize.codebook_used"]
    renamed = dict(zip(mapped, kept, strict=True))
    assert {k: expected[k].shape for k in expected} == {k: official[renamed[k]] for k in expected}


@pytest.mark.parametrize("cls", [ChameleonVq, Emu3Vq, JanusVq])
def test_full_size_configs_on_the_meta_device(cls) -> None:
    """The released config gives the card's token grid, codebook and output size (meta tensors)."""
    (card,) = cls.cards()
    adapter = cls.__new__(cls)
    adapter.config = dict(cls.release.config)
    adapter.model = cls.architecture(device="meta")
    side = card.resolution
    with torch.inference_mode():
        z = adapter.latent(torch.empty(1, 3, side, side, device="meta"))
        grid = torch.zeros(1, side // card.downsampling, side // card.downsampling, dtype=torch.int64)
        pixels = adapter.pixels(grid.to("meta"))
    assert z.shape[2] * z.shape[3] == card.tokens
    assert adapter.model.quantize.embedding.weight.shape[0] == card.codebook
    assert pixels.shape == (1, 3, side, side)
    assert card.kind == "discrete" and card.verification.startswith(
        f"library: transformers {cls.release.class_name}"
    )
    expected = {ChameleonVq: (1024, 8192, 16), Emu3Vq: (4096, 32768, 8), JanusVq: (576, 16384, 16)}[cls]
    assert (card.tokens, card.codebook, card.downsampling) == expected


def test_round_trips_equal_the_library_forward(tiny: dict[str, object], images: torch.Tensor) -> None:
    """Our preprocessing plus the library's modules: encode/decode equal calling the model directly."""
    x = images * 2 - 1
    sizes = torch.tensor([[32, 32]] * 2)
    for name, tokenizer in tiny.items():
        encoded = tokenizer.encode(images)
        decoded = tokenizer.decode(encoded)
        model = tokenizer.model
        with torch.inference_mode():
            if name == "emu3":
                library_tokens = torch.stack(model.encode(x, image_sizes=sizes).image_tokens)
                library_pixels = model.decode(library_tokens)
            elif name == "chameleon":  # the library has no decoder: call taming's decoder we built
                library_tokens = model.encode(x).image_tokens.reshape(encoded.payload.shape)
                quant = model.quantize.embedding(library_tokens).permute(0, 3, 1, 2).contiguous()
                library_pixels = model.decoder(model.post_quant_conv(quant))
            else:  # the library decodes a fixed num_patches² grid
                library_tokens = encoded.payload  # (encode differs: see the golden test)
                library_pixels = model.decode(encoded.payload.flatten(1))
        assert torch.equal(encoded.payload, library_tokens), name
        assert torch.equal(decoded, ((library_pixels + 1) / 2).clamp(0, 1)), name
        assert torch.equal(tokenizer.decode_indices(tokenizer.encode_indices(images)), decoded), name
        indices, latents = tokenizer.encode_latents(images)
        nearest = torch.cdist(latents, tokenizer.codebook()[None]).argmin(-1)
        assert (nearest == indices).float().mean() > 0.95, name
        tokens = (32 // tokenizer.downsampling) ** 2
        assert encoded.num_tokens == tokens and torch.all(
            encoded.bits == tokens * math.log2(tokenizer.codebook_size)
        )


def test_janus_tokens_equal_the_library_on_a_unit_norm_codebook(images: torch.Tensor) -> None:
    """With unit-norm stored rows the library's raw search and the official normalised one agree."""
    tokenizer = JanusVq.from_config(TINY_JANUS, random_init=True)
    weight = tokenizer.model.quantize.embedding.weight
    with torch.no_grad():
        weight.copy_(torch.nn.functional.normalize(weight, dim=-1))
    with torch.inference_mode():
        library = tokenizer.model.encode(images * 2 - 1).image_tokens
    assert torch.equal(library.reshape(2, 2, 2), tokenizer.encode(images).payload)


def test_sharded_checkpoint_reads_only_the_vq_shards(tiny: dict[str, object], images, tmp_path: Path) -> None:
    """A full-model folder: the index names the shards; the language model's shard is never opened."""
    state = {f"model.vqmodel.{k}": v.contiguous() for k, v in tiny["emu3"].model.state_dict().items()}
    keys = sorted(state)
    half = len(keys) // 2
    save_file({k: state[k] for k in keys[:half]}, str(tmp_path / "model-00001-of-00003.safetensors"))
    save_file({k: state[k] for k in keys[half:]}, str(tmp_path / "model-00002-of-00003.safetensors"))
    (tmp_path / "model-00003-of-00003.safetensors").write_bytes(b"not a safetensors file")
    weight_map = {k: f"model-0000{1 + (i >= half)}-of-00003.safetensors" for i, k in enumerate(keys)}
    weight_map["model.text_model.embed_tokens.weight"] = "model-00003-of-00003.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = Emu3Vq.from_config(TINY_EMU3, weights=str(tmp_path))
    assert len(loaded.source) and loaded.weights_sha256 and len(loaded.weights_sha256) == 64
    assert torch.equal(loaded.decode(loaded.encode(images)), tiny["emu3"].decode(tiny["emu3"].encode(images)))


def test_chameleon_loads_the_original_vqgan_checkpoint(
    tiny: dict[str, object], images, tmp_path: Path
) -> None:
    """taming's layout: decoder levels highest resolution first, Lightning's state_dict with loss.*."""
    reference = tiny["chameleon"]
    last = len(TINY_CHAMELEON["channel_multiplier"]) - 1
    state = {}
    for key, value in reference.model.state_dict().items():
        if key.startswith("decoder.up."):
            level, rest = key[len("decoder.up.") :].split(".", 1)
            key = f"decoder.up.{last - int(level)}.{rest}"
        state[key] = value
    state["loss.discriminator.main.0.weight"] = torch.zeros(1)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "vqgan.ckpt")
    loaded = ChameleonVq.from_config(TINY_CHAMELEON, weights=str(tmp_path / "vqgan.ckpt"))
    assert torch.equal(loaded.decode(loaded.encode(images)), reference.decode(reference.encode(images)))
    encoder_only = {k: v for k, v in state.items() if not k.startswith("decoder.")}
    save_file(
        {f"model.vqmodel.{k}": v.contiguous() for k, v in encoder_only.items()},
        str(tmp_path / "hf.safetensors"),
    )
    with pytest.raises(WeightsError, match="missing: decoder"):
        ChameleonVq.from_config(TINY_CHAMELEON, weights=str(tmp_path / "hf.safetensors"))


@pytest.mark.parametrize("spec", ["janus-vq", "emu3-vq", "chameleon-vq"])
def test_offline_error_is_fast_and_names_the_hub_id(spec: str, monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model(spec)
    assert time.monotonic() - start < 5
    hub_id = {"janus-vq": "deepseek-community/Janus-Pro-1B", "emu3-vq": "BAAI/Emu3-VisionTokenizer"}
    message = str(error.value)
    assert hub_id.get(spec, "facebook/chameleon-7b") in message and "--weights" in message


def test_bad_arguments_and_inputs(tiny: dict[str, object], images: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="drop weights="):
        build_model("janus-vq:random_init=true,weights=x")
    tokenizer = tiny["janus"]
    with pytest.raises(ConfigError, match="multiples of 16"):
        tokenizer.encode(images[:, :, :24, :24])
    with pytest.raises(ConfigError, match="square token grid"):
        tokenizer.decode_indices(torch.zeros(1, 3, dtype=torch.int64))
    with pytest.raises(ConfigError, match=r"in \[0, 1024\)"):
        tokenizer.decode_indices(torch.full((1, 4), 1024, dtype=torch.int64))


PFID_SUITE = """
name: {name}
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {{name: imagenet-center-crop, resolution: 32}}
judges:
  inception: {{name: inception-v3-tf, options: {{resize: tf1-bilinear}}}}
metrics:
  - {{name: fid, judge: inception}}
{perturbation}
"""


@pytest.mark.slow  # Inception on 10 images through three runs: ~15 s idle, ~1 min on a loaded 2-core machine
def test_recon_and_pfid_end_to_end(tiny: dict[str, object], tmp_path: Path, monkeypatch) -> None:
    """The tiny Janus through the real recon suite, and pFID at alpha 0 equal to rFID."""
    model = tiny["janus"]
    recon = tokbench.evaluate(model, "recon", limit=2, store=tmp_path / "store", cache_features=False)
    assert recon.metrics["num_tokens"] == 256 and recon.metrics["psnr"] > 0
    for name, alpha in (("jrecon", None), ("jpfid0", 0.0)):
        perturbation = (
            ""
            if alpha is None
            else f"settings: {{perturbation: {{alpha: {alpha}, beta: 1.0, delta: 4, seed: 1}}}}"
        )
        (tmp_path / f"{name}.yaml").write_text(PFID_SUITE.format(name=name, perturbation=perturbation))
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    options = {"limit": 4, "cache_features": False}
    rfid = tokbench.evaluate(model, "jrecon", **options).metrics["fid"]
    assert tokbench.evaluate(model, "jpfid0", **options).metrics["fid"] == rfid


@pytest.mark.slow  # OCR and face judges at 256, 512 and 1024 px: ~1-3 min on a loaded 2-core machine
def test_tokbench_suite_end_to_end(tiny: dict[str, object], tmp_path: Path) -> None:
    """The tiny Janus through the real tokbench suite (text and face fidelity at three sizes)."""
    result = tokbench.evaluate(tiny["janus"], "tokbench", limit=1, store=tmp_path / "store")
    keys = set(result.metrics)
    assert {k.split("_")[2] for k in keys if k.startswith(("t_acc_", "f_sim_"))} >= {"256", "512", "1024"}, (
        keys
    )


def test_hub_cache_snapshot_loads_offline(
    tiny: dict[str, object], images, tmp_path: Path, monkeypatch
) -> None:
    """A hub cache holding the repository (single model.safetensors, no shard index) works offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--BAAI--Emu3-VisionTokenizer"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(snapshot)
    (repo / "snapshots" / snapshot).mkdir(parents=True)
    state = {k: v.contiguous() for k, v in tiny["emu3"].model.state_dict().items()}
    save_file(state, str(repo / "snapshots" / snapshot / "model.safetensors"))
    loaded = Emu3Vq.from_config(TINY_EMU3, weights=str(tmp_path))
    assert loaded.commit == snapshot and loaded.source == "hub:BAAI/Emu3-VisionTokenizer"
    assert torch.equal(loaded.encode(images).payload, tiny["emu3"].encode(images).payload)
