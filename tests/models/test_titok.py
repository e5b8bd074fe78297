"""TiTok: the official code's golden outputs on tiny models, the full-size layouts, the adapter
contract, weight resolution (files, hub cache folders, the hub offline) and a full-size L-32 round trip.

Reference data: ``shared/reference/titok`` (see its README for what each tensor is).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from zoo_reference import reference

import tokbench.hub as hub_module
from tokbench.adapters import build_model
from tokbench.errors import ConfigError, WeightsError
from tokbench.hashing import file_sha256
from tokbench.models.titok import (
    VARIANTS,
    PixelDecoderConfig,
    TiTok,
    TiTokConfig,
    TiTokModel,
    ViTConfig,
    config_from_official,
    load_checkpoint,
    resolve_checkpoint,
)

REFERENCE, needs_reference = reference("titok")
GOLDEN = [
    "tiny_vq_twostage",
    "tiny_vq_singlestage",
    "tiny_vae",
    "plain_init/tiny_vq_singlestage",
    "plain_init/tiny_vae",
]

# The three tiny designs of the reference folder, written out (the golden test checks they agree).
TINY_TWO_STAGE = TiTokConfig(
    64,
    ViTConfig(64, 2, 4, 16),
    ViTConfig(64, 2, 4, 16),
    8,
    12,
    "vq",
    256,
    True,
    True,
    True,
    PixelDecoderConfig(32, 32),
)
TINY_VQ = TiTokConfig(64, ViTConfig(64, 2, 4, 8), ViTConfig(96, 3, 6, 8), 16, 16, "vq", 512)
TINY_VAE = TiTokConfig(64, ViTConfig(64, 2, 4, 8), ViTConfig(96, 3, 6, 8), 12, 8, "vae")
TINY = {"tiny_vq_twostage": TINY_TWO_STAGE, "tiny_vq_singlestage": TINY_VQ, "tiny_vae": TINY_VAE}


def _reference_config(folder: Path) -> TiTokConfig:
    """Read a tiny model's official-schema config plus its documented tiny-size additions."""
    raw = json.loads((folder / "config.json").read_text())
    extra = raw["_not_in_official_schema"]
    pixel = extra.get("pixel_decoder_override", {}).get("pixel_decoder")
    pixel_decoder = None
    if pixel:
        pixel_decoder = PixelDecoderConfig(
            pixel["hidden_channels"],
            pixel["z_channels"],
            tuple(pixel["channel_mult"]),
            pixel["num_res_blocks"],
        )
    return config_from_official(raw, extra["model_size_table_additions"], pixel_decoder)


def _uint8_nhwc(pixels: torch.Tensor) -> torch.Tensor:
    """The official demo's post-processing: clamp, ×255, truncate to uint8, NHWC."""
    return (pixels.clamp(0, 1) * 255.0).permute(0, 2, 3, 1).to(torch.uint8)


def _golden_outputs(model: TiTokModel, reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our outputs under the reference file's names (inputs it stores are echoed back)."""
    x = reference["input_images"]
    out = {"input_images": x}
    with torch.inference_mode():
        latent = model.encoder(x, model.latent_tokens)
        out["encoder_latent"] = latent
        if model.config.quantize_mode == "vq":
            quantized, tokens = model.quantize(latent)
            distances = model.quantize.distances(latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1]))
            two = distances.topk(2, largest=False).values
            decoded = model.decode_tokens(tokens)
            out |= {
                "tokens": tokens,
                "z_quantized": quantized,
                "token_distance_margin": (two[:, 1] - two[:, 0]).view(tokens.shape),
                "decoded_raw": decoded,
                "decoded_clamped": decoded.clamp(0, 1),
                "decoded_uint8_nhwc": _uint8_nhwc(decoded),
                "forward_decoded_raw": model(x),
                "probe_tokens": reference["probe_tokens"],
                "probe_decoded_raw": model.decode_tokens(reference["probe_tokens"]),
            }
            if model.config.finetune_decoder:
                logits = model.decoder(quantized)
                out["vit_decoder_logits"] = logits
                out["pixel_decoder_input"] = model.pixel_quantize.mix(logits)
        else:
            posterior = model.posterior(latent)
            sample = posterior.sample(reference["sample_noise"])
            from_mean, from_sample = model.decode_tokens(posterior.mean), model.decode_tokens(sample)
            out |= {
                "posterior_mean": posterior.mean,
                "posterior_logvar_clamped": posterior.logvar,
                "posterior_std": posterior.std,
                "mode": posterior.mode(),
                "sample_noise": reference["sample_noise"],
                "posterior_sample": sample,
                "decoded_from_mean_raw": from_mean,
                "decoded_from_mean_clamped": from_mean.clamp(0, 1),
                "decoded_from_mean_uint8_nhwc": _uint8_nhwc(from_mean),
                "decoded_from_sample_raw": from_sample,
                "decoded_from_sample_clamped": from_sample.clamp(0, 1),
                "probe_latent": reference["probe_latent"],
                "probe_decoded_raw": model.decode_tokens(reference["probe_latent"]),
            }
    return out


@needs_reference
@pytest.mark.parametrize("name", GOLDEN)
def test_golden_outputs_match_the_official_code(name: str) -> None:
    folder = REFERENCE / name
    config = _reference_config(folder)
    assert config == TINY[Path(name).name]
    weights = load_file(folder / "weights.safetensors")
    TiTokModel(config).load_state_dict(weights, strict=True)  # the official key set, nothing more or less
    model = TiTokModel.from_state_dict(config, weights)
    reference = load_file(folder / "reference_io.safetensors")
    ours = _golden_outputs(model, reference)
    assert set(ours) == set(reference), "every reference tensor is checked"
    # Tolerances from the reference README (CPU float32): latents and logits 2e-5, pixels 1e-4 for
    # the two-stage model and 5e-5 otherwise, uint8 images ±1, tokens exact.
    pixel_atol = 1e-4 if config.finetune_decoder else 5e-5
    for key, expected in reference.items():
        got = ours[key]
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        if expected.dtype == torch.int64:
            margin = reference.get("token_distance_margin")
            assert torch.equal(got, expected), f"{key}: {(got != expected).sum()} differ (margins {margin})"
        elif expected.dtype == torch.uint8:
            assert (got.int() - expected.int()).abs().max() <= 1, key
        else:
            atol = pixel_atol if "decoded" in key else 2e-5
            torch.testing.assert_close(got, expected, rtol=0, atol=atol, msg=key)


@needs_reference
@pytest.mark.parametrize("name", ["tiny_vq_twostage", "tiny_vq_singlestage"])
def test_latents_are_the_official_encoder_output(name: str) -> None:
    """``encode_latents``: the official tokens exactly, and the official encoder output z as the
    quantiser searches it (l2-normalised for the two-stage model), one row per token."""
    folder = REFERENCE / name
    model = TiTokModel.from_state_dict(_reference_config(folder), load_file(folder / "weights.safetensors"))
    reference = load_file(folder / "reference_io.safetensors")
    tokens, latents = TiTok.from_model(model).encode_latents(reference["input_images"])
    assert torch.equal(tokens, reference["tokens"][:, 0])
    expected = reference["encoder_latent"][:, :, 0].transpose(1, 2)
    if model.config.use_l2_norm:
        expected = torch.nn.functional.normalize(expected, dim=-1)
    torch.testing.assert_close(latents, expected, rtol=0, atol=2e-5)


@needs_reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_full_size_layout_matches_the_manifest(name: str) -> None:
    manifest = json.loads((REFERENCE / "full_size_manifests" / f"titok_{name}.json").read_text())
    variant = VARIANTS[name]
    with torch.device("meta"):
        model = TiTokModel(variant.config)
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    assert ours == [(k, e["shape"], e["dtype"]) for k, e in manifest["state_dict"].items()]
    assert list(model.buffers()) == []
    assert (
        sum(p.numel() for p in model.parameters()) == manifest["total_parameters"] == variant.num_parameters
    )
    official = manifest["config (tokenizer-relevant part of the official inference config, as parsed)"]
    assert config_from_official(official) == variant.config
    assert manifest["hf_hub_repo (official pretrained weights, not used here)"] == variant.hub_id
    assert manifest["official_tokenizer_checkpoint_filename"] == variant.checkpoint_filename


def test_variant_registry() -> None:
    assert list(VARIANTS) == [
        "l32", "b64", "s128", "bl64_vq8k", "bl128_vq8k", "sl256_vq8k",
        "ll32_vae_c16", "bl64_vae_c16", "bl128_vae_c16",
    ]  # fmt: skip
    for name, variant in VARIANTS.items():
        assert variant.hub_id == f"yucornetto/tokenizer_titok_{name}_imagenet"
        assert variant.config.image_size == 256 and variant.licence and "2406.07550" in variant.paper
        assert (variant.config.quantize_mode == "vae") == name.endswith("_vae_c16")
        assert variant.config.finetune_decoder == (name in ("l32", "b64", "s128"))


def _images(n: int = 3, side: int = 64) -> torch.Tensor:
    return torch.rand((n, 3, side, side), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("config", [TINY_TWO_STAGE, TINY_VQ], ids=["two_stage", "single_stage"])
def test_adapter_contract_vq(config: TiTokConfig) -> None:
    state = torch.random.get_rng_state()
    tokenizer = TiTok.from_model(TiTokModel.random_init(config, seed=0), name="tiny")
    assert torch.equal(torch.random.get_rng_state(), state), "random_init must not touch the global RNG"
    images = _images()
    encoded = tokenizer.encode(images)
    n = config.num_latent_tokens
    assert encoded.payload.dtype == torch.int64 and encoded.payload.shape == (3, n)
    assert not encoded.payload.is_inference()  # usable by callers outside inference mode
    assert encoded.num_tokens == n
    assert (
        encoded.bits.dtype == torch.float64
        and encoded.bits.tolist() == [n * math.log2(config.codebook_size)] * 3
    )
    decoded = tokenizer.decode(encoded)
    assert decoded.dtype == torch.float32 and decoded.shape == images.shape
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1
    assert not decoded.is_inference()
    again = TiTok.from_model(TiTokModel.random_init(config, seed=0)).decode(tokenizer.encode(images))
    assert torch.equal(decoded, again)  # deterministic, and seeded weights reproduce
    with torch.inference_mode():
        raw = tokenizer.model.decode_tokens(tokenizer.model.encode(images))
    assert torch.equal(decoded, raw.clamp(0, 1))
    assert tokenizer.to(torch.device("cpu")) is tokenizer and tokenizer.weights_sha256 is None


def test_adapter_contract_vae() -> None:
    model = TiTokModel.random_init(TINY_VAE, seed=0)
    tokenizer, sampler = TiTok.from_model(model), TiTok.from_model(model, vae_sample=True)
    images = _images(2)
    encoded = tokenizer.encode(images)
    assert encoded.payload.dtype == torch.float32 and encoded.payload.shape == (2, 8, 1, 12)
    assert encoded.bits is None and encoded.num_tokens == 12  # continuous latents have no defined size
    decoded = tokenizer.decode(encoded)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1
    assert torch.equal(decoded, tokenizer.decode(tokenizer.encode(images)))
    torch.manual_seed(7)
    first = sampler.encode(images).payload
    torch.manual_seed(7)
    assert torch.equal(first, sampler.encode(images).payload)  # the runner's seed fixes the draw
    assert not torch.equal(first, encoded.payload)


def test_adapter_rejects_bad_arguments_and_inputs() -> None:
    with pytest.raises(ConfigError, match="variant must be one of l32, b64"):
        TiTok(variant="l64")
    with pytest.raises(ConfigError, match="random_init"):
        TiTok(variant="s128", weights="x.safetensors", random_init=True)
    with pytest.raises(ConfigError, match="vae_sample"):
        TiTok.from_model(TiTokModel.random_init(TINY_VQ), vae_sample=True)
    tokenizer = TiTok.from_model(TiTokModel.random_init(TINY_VQ), name="tiny")
    with pytest.raises(ConfigError, match=r"\[N, 3, 64, 64\]"):
        tokenizer.encode(_images(1, 32))
    with pytest.raises(ConfigError, match="float32"):
        tokenizer.encode(_images(1).double())
    encoded = tokenizer.encode(_images(1))
    with pytest.raises(ConfigError, match="token ids"):
        tokenizer.decode(type(encoded)(payload=encoded.payload + 512))
    with pytest.raises(ConfigError, match="go together"):  # TiTokConfig validates itself
        TiTokConfig(64, ViTConfig(64, 2, 4, 8), ViTConfig(64, 2, 4, 8), 4, 8, "vq", 16, is_legacy=True)


def test_build_from_spec_with_random_weights() -> None:
    built = build_model("tokbench.models.titok:TiTok:variant=s128,random_init=true")
    assert isinstance(built.adapter, TiTok) and built.adapter.weights_sha256 is None
    assert built.arguments["random_init"] is True and built.arguments["variant"] == "s128"
    assert built.adapter.source == "random_init(seed=0)"


def test_checkpoint_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = TiTokModel.random_init(TINY_VQ, seed=1).state_dict()
    save_file(state, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pt")
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pt"):
        loaded = load_checkpoint(path)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert file_sha256(tmp_path / "w.pt") in caplog.text  # logged before unpickling
    torch.save({"weights": [1, 2]}, tmp_path / "nested.bin")
    with pytest.raises(WeightsError, match="flat state dict"):
        load_checkpoint(tmp_path / "nested.bin")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match="suffix"):
        load_checkpoint(tmp_path / "w.npz")
    model = TiTokModel.from_state_dict(TINY_VQ, load_checkpoint(tmp_path / "w.pt"))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with pytest.raises(WeightsError, match=r"missing \(1\): quantize.embedding.weight"):
        TiTokModel.from_state_dict(TINY_VQ, {k: v for k, v in state.items() if not k.startswith("quantize")})


def test_wrong_or_missing_weights_file(tmp_path: Path) -> None:
    save_file(TiTokModel.random_init(TINY_VQ).state_dict(), tmp_path / "tiny.safetensors")
    with pytest.raises(WeightsError, match="does not fit") as error:
        TiTok(variant="l32", weights=str(tmp_path / "tiny.safetensors"))
    assert "--weights PATH" in str(error.value)
    with pytest.raises(WeightsError, match="neither a file nor a directory"):
        TiTok(variant="l32", weights=str(tmp_path / "absent.safetensors"))
    with pytest.raises(ConfigError, match="revision"):
        TiTok(variant="l32", weights=str(tmp_path / "tiny.safetensors"), revision="abc")


def test_weights_directories(tmp_path: Path) -> None:
    variant = VARIANTS["l32"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "tokenizer_titok_l32.bin").write_bytes(b"x")
    assert resolve_checkpoint(variant, plain) == (plain / "tokenizer_titok_l32.bin", "directory")
    (plain / "model.safetensors").write_bytes(b"x")
    assert resolve_checkpoint(variant, str(plain))[0] == plain / "model.safetensors"
    repo = tmp_path / "home" / "hub" / "models--yucornetto--tokenizer_titok_l32_imagenet"
    for commit in ("aaa", "bbb"):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "pytorch_model.bin").write_bytes(b"x")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("bbb")
    for root in (tmp_path / "home", tmp_path / "home" / "hub", repo):  # HF_HOME, HF_HUB_CACHE, repo folder
        assert resolve_checkpoint(variant, root)[0] == repo / "snapshots" / "bbb" / "pytorch_model.bin"
    assert (
        resolve_checkpoint(variant, repo, revision="aaa")[0]
        == repo / "snapshots" / "aaa" / "pytorch_model.bin"
    )
    with pytest.raises(WeightsError, match=r"no snapshot for revision 'ccc' \(snapshots: aaa, bbb\)"):
        resolve_checkpoint(variant, repo, revision="ccc")
    with pytest.raises(ConfigError, match="revision"):
        resolve_checkpoint(variant, plain, revision="aaa")
    with pytest.raises(WeightsError, match=r"looked for model\.safetensors, pytorch_model\.bin"):
        resolve_checkpoint(
            variant, tmp_path / "home" / "hub" / "models--yucornetto--tokenizer_titok_l32_imagenet" / "refs"
        )


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A stand-in ``huggingface_hub`` that serves the files in ``.files`` and records its calls."""
    hub = SimpleNamespace(calls=[], files={})
    module, utils = types.ModuleType("huggingface_hub"), types.ModuleType("huggingface_hub.utils")

    class EntryNotFoundError(Exception):
        pass

    def hf_hub_download(repo_id: str, filename: str, **options: object) -> str:
        hub.calls.append((repo_id, filename, options))
        if filename not in hub.files:
            raise EntryNotFoundError(filename)
        return str(hub.files[filename])

    utils.EntryNotFoundError = EntryNotFoundError
    module.utils, module.hf_hub_download = utils, hf_hub_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    monkeypatch.setitem(sys.modules, "huggingface_hub.utils", utils)
    return hub


def _assert_fails_fast_naming_the_ways(seconds: float = 5.0) -> str:
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        TiTok(variant="l32")
    assert time.monotonic() - start < seconds
    message = str(error.value)
    assert "yucornetto/tokenizer_titok_l32_imagenet" in message and "--weights PATH" in message
    assert "HF_HOME" in message and "\n" not in message
    return message


def test_offline_flag_fails_fast(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_fails_fast_naming_the_ways()


def test_unreachable_hub_fails_fast(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    _assert_fails_fast_naming_the_ways()


def test_missing_huggingface_hub_says_how_to_install(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert "pip install huggingface_hub" in _assert_fails_fast_naming_the_ways()


def test_hanging_network_is_bounded(
    hub_env: Path, fake_hub: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = threading.Event()
    probes: list[threading.Thread] = []

    def hang(address: tuple[str, int], timeout: float) -> NoReturn:
        probes.append(threading.current_thread())
        answered.wait()  # a DNS lookup or SYN that never answers while the test runs
        raise OSError(f"{address} did not answer")

    # The probe's connect is injected into this module's lookup of reachable; the socket module is untouched.
    monkeypatch.setattr(hub_module, "reachable", functools.partial(hub_module.reachable, connect=hang))
    try:
        assert "huggingface.co is unreachable" in _assert_fails_fast_naming_the_ways()
    finally:
        answered.set()
        for probe in probes:
            probe.join(timeout=5)
    assert len(probes) == 1 and not probes[0].is_alive()  # the probe ended with the test
    assert [call[2]["local_files_only"] for call in fake_hub.calls] == [True, True]


def test_hub_download_order_revision_and_cache(
    hub_env: Path, fake_hub: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hub_module, "reachable", lambda url, timeout: True)
    fake_hub.files["pytorch_model.bin"] = tmp_path / "pytorch_model.bin"
    path, source = resolve_checkpoint(VARIANTS["b64"], None, revision="0123abc")
    assert (path, source) == (tmp_path / "pytorch_model.bin", "hub")
    assert [(c[0], c[1]) for c in fake_hub.calls] == [
        ("yucornetto/tokenizer_titok_b64_imagenet", "model.safetensors"),
        ("yucornetto/tokenizer_titok_b64_imagenet", "pytorch_model.bin"),
    ]
    options = fake_hub.calls[0][2]
    assert options["revision"] == "0123abc" and options["local_files_only"] is False
    assert options["cache_dir"] == str(hub_env / "hub")


def test_real_hub_client_finds_a_cached_snapshot(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    repo = hub_env / "hub" / "models--yucornetto--tokenizer_titok_s128_imagenet"
    (repo / "snapshots" / ("c" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("c" * 40) / "model.safetensors").write_bytes(b"x")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path, source = resolve_checkpoint(VARIANTS["s128"])
    assert (
        source == "hub"
        and path.resolve() == (repo / "snapshots" / ("c" * 40) / "model.safetensors").resolve()
    )


@pytest.mark.slow  # full-size L-32 (641M parameters, 2.6 GB file): ~60 s and ~4 GB on an idle 2-core machine
def test_full_size_l32_checkpoint_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "titok_l32_random.safetensors"
    try:
        save_file(TiTokModel.random_init(VARIANTS["l32"].config, seed=3).state_dict(), path)
        tokenizer = TiTok(variant="l32", weights=str(path))
        assert tokenizer.weights_sha256 == file_sha256(path)
        loaded = tokenizer.model.state_dict()
        with safe_open(str(path), framework="pt") as saved:
            for key in (
                "latent_tokens",
                "encoder.transformer.23.mlp.c_proj.weight",
                "pixel_decoder.conv_out.bias",
            ):
                assert torch.equal(loaded[key], saved.get_tensor(key))
        images = _images(2, 256)
        encoded = tokenizer.encode(images)
        assert encoded.payload.shape == (2, 32) and encoded.bits.tolist() == [384.0, 384.0]
        decoded = tokenizer.decode(encoded)
        assert decoded.shape == (2, 3, 256, 256) and decoded.dtype == torch.float32
        assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1 and torch.isfinite(decoded).all()
    finally:
        path.unlink(missing_ok=True)
