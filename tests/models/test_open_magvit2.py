"""Open-MAGVIT2: the official code's golden outputs on the tiny models (bits, tokens, codes, latents,
pixels, intermediates), the full-size layouts, checkpoint loading (the EMA copy), the hub (pinned
revision, offline) and the adapter contract. The suites end to end: ``test_open_magvit2_suites.py``.

Reference data: ``shared/reference/open_magvit2`` (see its README for what each tensor is).
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from zoo_reference import clear_hub_env, reference

import tokbench.hub as hub_module
from tokbench.adapters import build_model
from tokbench.adapters.base import Encoded
from tokbench.errors import ConfigError, WeightsError
from tokbench.hashing import file_sha256
from tokbench.models.open_magvit2 import (
    VARIANTS,
    OpenMagvit2,
    OpenMagvit2Variant,
    images_to_model_input,
    model_output_to_images,
    resolve_checkpoint,
)
from tokbench.models.open_magvit2_modules import (
    OpenMagvit2Config,
    OpenMagvit2Model,
    implicit_codebook,
    tokens_to_codes,
)

REFERENCE, needs_reference = reference("open_magvit2")
pytestmark = pytest.mark.usefixtures("one_thread")
#: The two tiny designs of the reference folder, written out (the golden test checks they agree).
TINY = {
    "tiny_f16": OpenMagvit2Config(32, (1, 1, 1, 2, 1), 2, 10),
    "tiny_f8": OpenMagvit2Config(32, (1, 1, 2, 1), 1, 8),
}
#: README tolerances (CPU float32): latent 1e-4 against the official channels_last input, 2e-5
#: against the contiguous one; pixels 2e-5; uint8 ±1; bits, tokens and codes exact.
LATENT_ATOL, CONTIGUOUS_LATENT_ATOL, PIXEL_ATOL = 1e-4, 2e-5, 2e-5
#: Latents the official code computed from channels_last-strided inputs (ours are contiguous).
CHANNELS_LAST = {"encoder_latent", "nonsquare_encoder_latent"}
#: Float tensors that must match bit for bit: the official input conversion and the ±1 codes.
EXACT = {"model_input", "origres_padded_input", "quantized_st", "codes_from_tokens", "probe_codes"}


def _config(folder: Path) -> OpenMagvit2Config:
    """A tiny model's config from its official-schema ``config.json``."""
    args = json.loads((folder / "config.json").read_text())["model"]["init_args"]
    dd = args["ddconfig"]
    assert dd["z_channels"] == args["embed_dim"] and args["n_embed"] == 2 ** args["embed_dim"]
    return OpenMagvit2Config(dd["ch"], tuple(dd["ch_mult"]), dd["num_res_blocks"], dd["z_channels"])


def _golden(name: str) -> tuple[OpenMagvit2Model, dict[str, torch.Tensor], dict]:
    folder = REFERENCE / name
    config = _config(folder)
    assert config == TINY[name]
    weights = load_file(folder / "weights.safetensors")
    OpenMagvit2Model(config).load_state_dict(weights, strict=True)  # the official key set exactly
    resolved = json.loads((folder / "config.json").read_text())["_resolved"]
    return (
        OpenMagvit2Model.from_state_dict(config, weights),
        load_file(folder / "reference_io.safetensors"),
        resolved,
    )


def _uint8_to_model_input(nhwc: torch.Tensor) -> torch.Tensor:
    """What the official loop feeds: NHWC bytes → [0, 1] as tokbench hands images over → [−1, 1]."""
    return images_to_model_input(nhwc.permute(0, 3, 1, 2).to(torch.float32).div(255.0))


def _to_uint8_nhwc(raw: torch.Tensor) -> torch.Tensor:
    """The official ``custom_to_pil``: clamp(−1, 1), (x+1)/2, ×255 truncated to uint8, NHWC."""
    return (model_output_to_images(raw) * 255.0).permute(0, 2, 3, 1).to(torch.uint8)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, list[int]]:
    """The official original-resolution padding: zeros, floor(pad/2) top/left, the rest bottom/right;
    returns the padded batch and the crop region [top, left, bottom, right]."""
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    top, left = ph // 2, pw // 2
    padded = torch.nn.functional.pad(x, (left, pw - left, top, ph - top))
    return padded, [top, left, top + h, left + w]


def _ours(
    model: OpenMagvit2Model, reference: dict[str, torch.Tensor], resolved: dict
) -> dict[str, torch.Tensor]:
    """Our outputs under the reference file's names, trace tensors excepted."""
    inputs = load_file(REFERENCE / "input_images.safetensors")
    bits = model.config.bits
    out: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        x = images_to_model_input(inputs["input_images"])
        tokens, latent = model.encode(x)
        decoded = model.decode_tokens(tokens)
        k = resolved["token_factorization_bits_used_for_tokens_pre_post"][0]
        out |= {
            "model_input": x,
            "encoder_latent": latent,
            "encoder_latent_contiguous_input": latent,
            "lfq_bits": (latent > 0).permute(0, 2, 3, 1).to(torch.uint8),
            "tokens": tokens,
            "tokens_flat_official": tokens.flatten(),
            "tokens_pre": tokens & (2**k - 1),  # token = pre + post·2^k (factorised AR configs)
            "tokens_post": tokens >> k,
            "quantized_st": tokens_to_codes(tokens, bits),
            "codes_from_tokens": tokens_to_codes(tokens, bits),
            "decoded_raw": decoded,
            "decoded_clamped": decoded.clamp(-1, 1),
            "decoded_uint8_nhwc": _to_uint8_nhwc(decoded),
            "probe_tokens": reference["probe_tokens"],
            "probe_codes": tokens_to_codes(reference["probe_tokens"], bits),
            "probe_decoded_raw": model.decode_tokens(reference["probe_tokens"]),
        }
        nonsquare_tokens, nonsquare_latent = model.encode(
            _uint8_to_model_input(inputs["nonsquare_uint8_nhwc"])
        )
        out |= {
            "nonsquare_encoder_latent": nonsquare_latent,
            "nonsquare_tokens": nonsquare_tokens,
            "nonsquare_decoded_raw": model.decode_tokens(nonsquare_tokens),
        }
        padded, region = _pad_to_multiple(_uint8_to_model_input(inputs["origres_uint8_nhwc"]), 16)
        origres_tokens = model.encode(padded)[0]
        origres_decoded = model.decode_tokens(origres_tokens)
        top, left, bottom, right = region
        out |= {
            "origres_padded_input": padded,
            "origres_crop_region": torch.tensor(region),
            "origres_tokens": origres_tokens,
            "origres_decoded_raw_padded": origres_decoded,
            "origres_decoded_clamped_unpadded": origres_decoded.clamp(-1, 1)[:, :, top:bottom, left:right],
        }
    return out


@needs_reference
@pytest.mark.parametrize("name", list(TINY))
def test_golden_outputs_match_the_official_code(name: str) -> None:
    model, reference, resolved = _golden(name)
    ours = _ours(model, reference, resolved)
    assert set(ours) == {k for k in reference if not k.startswith("trace")}, (
        "every reference tensor is checked"
    )
    for key, got in ours.items():
        expected = reference[key]
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        if key == "decoded_uint8_nhwc":
            assert (got.int() - expected.int()).abs().max() <= 1, key
        elif key in EXACT or not expected.is_floating_point():
            assert torch.equal(got, expected), f"{key}: {(got != expected).sum()} differ"
        else:
            atol = (
                LATENT_ATOL
                if key in CHANNELS_LAST
                else CONTIGUOUS_LATENT_ATOL
                if "latent" in key
                else PIXEL_ATOL
            )
            torch.testing.assert_close(got, expected, rtol=0, atol=atol, msg=key)


def _traced(model: OpenMagvit2Model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Module outputs of a forward pass by qualified name, and the adaptive norms' Linear inputs."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():

        def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor, name: str = name) -> None:
            seen[name] = output
            if name.endswith((".gamma", ".beta")):
                seen[name + ".input"] = args[0]

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@needs_reference
@pytest.mark.parametrize("name", list(TINY))
def test_intermediates_match_the_official_trace(name: str) -> None:
    """Every ``trace/`` and ``trace_chanmean/`` tensor: module outputs for image 0 (or their
    per-channel spatial means in float64) and the adaptive norms' style statistics and Linear outputs."""
    model, reference, _ = _golden(name)
    seen = _traced(model, reference["model_input"])
    traces = {k: v for k, v in reference.items() if k.startswith("trace")}
    assert traces
    for key, expected in traces.items():
        kind, module = key.split("/", 1)
        if module.startswith("adaptive."):  # adaptive.{i}.gamma_input(std) etc., the whole batch
            level, what = module.split(".")[1:]
            linear = "gamma" if what.startswith("gamma") else "beta"
            got = seen[f"decoder.adaptive.{level}.{linear}" + (".input" if "input" in what else "")]
        elif kind == "trace":
            got = seen[module][:1]
        else:
            got = seen[module][:1].double().mean(dim=(2, 3)).float()
        atol = LATENT_ATOL if module.startswith("encoder.") else PIXEL_ATOL  # encoder: channels_last input
        scale = max(1.0, float(expected.abs().max()))  # activations grow through the blocks
        torch.testing.assert_close(got, expected, rtol=0, atol=atol * scale, msg=key)


@needs_reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_full_size_layout_matches_the_manifest(name: str) -> None:
    manifest = json.loads((REFERENCE / "full_size_manifests" / f"{name}.json").read_text())
    variant = VARIANTS[name]
    with torch.device("meta"):
        model = OpenMagvit2Model(variant.config)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == list(manifest["tokenizer_state_dict (key -> shape, official order)"].items())
    assert list(model.buffers()) == []
    count = sum(p.numel() for p in model.parameters())
    assert count == manifest["tokenizer_parameters (encoder+decoder)"] == variant.num_parameters
    official = manifest["config (tokenizer-relevant init_args, as parsed)"]
    dd = official["ddconfig"]
    assert variant.config == OpenMagvit2Config(
        dd["ch"], tuple(dd["ch_mult"]), dd["num_res_blocks"], dd["z_channels"]
    )
    assert official["n_embed"] == variant.config.codebook_size and official["use_ema"] is True
    resolved = manifest["resolved_hyperparameters"]
    assert resolved["downsampling_factor"] == variant.config.downsampling
    assert resolved["eval_image_size"] == variant.resolution
    assert resolved["token_grid_at_eval_size"] == [variant.resolution // variant.config.downsampling] * 2
    assert manifest["hf_hub_repo (official weights, not used here)"] == variant.hub_id
    assert manifest["checkpoint_file"] == variant.checkpoint_filename
    assert manifest["checkpoint_url_as_given_in_official_docs"] == variant.url
    shadows = manifest["training_class_extra_keys"][
        "EMA shadow key for each tokenizer key (LitEma: 'model_ema.' + name with the dots removed)"
    ]
    assert shadows == {k: "model_ema." + k.replace(".", "") for k, _ in ours}  # what the loader reads


def test_variants_and_cards() -> None:
    assert list(VARIANTS) == ["imagenet_256_L", "imagenet_128_L", "pretrain256_262144", "pretrain256_16384"]
    cards = OpenMagvit2.cards()
    assert [c.spec for c in cards] == [f"open-magvit2:variant={name}" for name in VARIANTS]
    for card, variant in zip(cards, VARIANTS.values(), strict=True):
        assert (card.family, card.kind, card.tokens) == ("Open-MAGVIT2", "discrete", 256)
        assert card.verification == "golden: reference/open_magvit2" and card.hub_id == variant.hub_id
        assert card.resolution == variant.resolution and card.codebook == 2**variant.config.bits
    assert [c.downsampling for c in cards] == [16, 8, 16, 16]
    assert [c.codebook for c in cards] == [2**18, 2**18, 2**18, 2**14]


# ------------------------------------------------------------------------------ checkpoint loading


def _tiny_variant(name: str = "tiny_f16") -> OpenMagvit2Variant:
    return OpenMagvit2Variant(name, TINY[name], 64, f"example/{name}", 0, None, "")


def _official_style_checkpoint(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """A checkpoint laid out as the released ones: raw keys (filled with 0.01), the EMA copies of
    ``weights`` under LitEma names, loss entries and LitEma's scalar buffers, under ``state_dict``."""
    state = {k: torch.full_like(v, 0.01) for k, v in weights.items()}
    state |= {"model_ema." + k.replace(".", ""): v for k, v in weights.items()}
    state |= {
        "loss.logvar": torch.zeros(()),
        "model_ema.decay": torch.tensor(0.999),
        "model_ema.num_updates": torch.tensor(7, dtype=torch.int32),
    }
    torch.save({"state_dict": state}, path)


@needs_reference
def test_official_checkpoint_layout_loads_the_ema_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model, reference, _ = _golden("tiny_f16")
    monkeypatch.setitem(VARIANTS, "tiny_f16", _tiny_variant())
    path = tmp_path / "tiny_f16.ckpt"
    _official_style_checkpoint(path, model.state_dict())
    images = load_file(REFERENCE / "input_images.safetensors")["input_images"]
    tokenizer = OpenMagvit2(variant="tiny_f16", weights=str(path))
    assert tokenizer.weights_sha256 == file_sha256(path) and tokenizer.source.endswith("(ema weights)")
    assert file_sha256(path) in caplog.text  # hashed and logged before unpickling
    assert torch.equal(tokenizer.encode(images).payload, reference["tokens"])
    raw = OpenMagvit2(variant="tiny_f16", weights=str(tmp_path), ema=False)  # the directory holds the file
    assert raw.source.endswith("(raw weights)") and torch.all(raw.model.encoder.conv_in.weight == 0.01)
    save_file(model.state_dict(), tmp_path / "tokenizer.safetensors")
    single = OpenMagvit2(variant="tiny_f16", weights=str(tmp_path / "tokenizer.safetensors"))
    assert single.source.endswith("(single weights)")
    assert torch.equal(single.encode(images).payload, reference["tokens"])


def test_bad_checkpoints_fail_naming_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VARIANTS, "tiny_f8", _tiny_variant("tiny_f8"))
    weights = OpenMagvit2Model.random_init(TINY["tiny_f16"]).state_dict()
    save_file(weights, tmp_path / "f16.safetensors")
    with pytest.raises(WeightsError, match="does not fit") as error:
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path / "f16.safetensors"))
    assert "--weights PATH" in str(error.value) and "example/tiny_f8" in str(error.value)
    state = {"model_ema.encoderconv_inweight": torch.zeros(1)}
    torch.save({"state_dict": state}, tmp_path / "partial.ckpt")
    with pytest.raises(WeightsError, match="EMA copy lacks"):
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path / "partial.ckpt"))
    torch.save({"state_dict": {"weights": [1, 2]}}, tmp_path / "nested.ckpt")
    with pytest.raises(WeightsError, match="no state dict"):
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path / "nested.ckpt"))
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match="suffix"):
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path / "w.npz"))
    with pytest.raises(WeightsError, match="neither a file nor a directory"):
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path / "absent.ckpt"))
    with pytest.raises(WeightsError, match=r"no tiny_f8\.ckpt in"):
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path))
    with pytest.raises(ConfigError, match="revision"):
        OpenMagvit2(variant="tiny_f8", weights=str(tmp_path / "f16.safetensors"), revision="abc")
    with pytest.raises(ConfigError, match="variant must be one of imagenet_256_L"):
        OpenMagvit2(variant="imagenet_512")
    with pytest.raises(ConfigError, match="random_init"):
        OpenMagvit2(weights="x.ckpt", random_init=True)


def test_hub_cache_directory_at_the_pinned_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    variant = VARIANTS["imagenet_256_L"]
    repo = tmp_path / "hub" / "models--TencentARC--Open-MAGVIT2-Tokenizer-256-resolution"
    for commit in (variant.revision, "a" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "imagenet_256_L.ckpt").write_bytes(commit.encode())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for root in (tmp_path, tmp_path / "hub", repo):  # HF_HOME, HF_HUB_CACHE, the repository folder
        path, source = resolve_checkpoint(variant, root)
        assert source == "hub" and path.read_text() == variant.revision  # the pinned commit, not main
    assert resolve_checkpoint(variant, repo, revision="main")[0].read_text() == "a" * 40


def _hub_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **environment: str) -> None:
    """An empty HF_HOME, no offline flags, proxies or cache override, then ``environment``."""
    clear_hub_env(monkeypatch, tmp_path / "hf_home")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def test_online_download_asks_for_the_checkpoint_at_the_pinned_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hub_environment(monkeypatch, tmp_path)
    calls = []
    hub = types.ModuleType("huggingface_hub")
    hub.hf_hub_download = lambda repo, filename, **options: (
        calls.append((repo, filename, options)) or "x.ckpt"
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setattr(hub_module, "reachable", lambda url, timeout: True)
    assert resolve_checkpoint(VARIANTS["imagenet_256_L"]) == (Path("x.ckpt"), "hub")
    assert resolve_checkpoint(VARIANTS["imagenet_128_L"], revision="b" * 40)[1] == "hub"
    (repo, filename, options), second = calls
    assert (repo, filename) == ("TencentARC/Open-MAGVIT2-Tokenizer-256-resolution", "imagenet_256_L.ckpt")
    assert options["revision"] == VARIANTS["imagenet_256_L"].revision and not options["local_files_only"]
    assert options["cache_dir"] == str(tmp_path / "hf_home" / "hub")
    assert second[:2] == ("TencentARC/Open-MAGVIT2-Tokenizer-128-resolution", "imagenet_128_L.ckpt")
    assert second[2]["revision"] == "b" * 40


def _fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **environment: str) -> str:
    _hub_environment(monkeypatch, tmp_path, **environment)
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model("open-magvit2:variant=pretrain256_16384")
    assert time.monotonic() - start < 5.0
    message = str(error.value)
    assert (
        "TencentARC/Open-MAGVIT2-Tokenizer-16384-Pretrain" in message and "pretrain256_16384.ckpt" in message
    )
    assert "--weights PATH" in message and "\n" not in message
    return message


def test_offline_fails_fast_naming_the_hub_id_and_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "HF_HUB_OFFLINE is set" in _fails_fast(monkeypatch, tmp_path, HF_HUB_OFFLINE="1")
    _fails_fast(monkeypatch, tmp_path, HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens: refused at once


# ---------------------------------------------------------------------------------------- adapter


def _tiny(seed: int = 0, name: str = "tiny_f16") -> OpenMagvit2:
    return OpenMagvit2.from_model(OpenMagvit2Model.random_init(TINY[name], seed=seed), name=name)


def _images(n: int = 3, height: int = 64, width: int = 64) -> torch.Tensor:
    return torch.rand((n, 3, height, width), generator=torch.Generator().manual_seed(0))


def test_adapter_contract() -> None:
    state = torch.random.get_rng_state()
    tokenizer = _tiny()
    assert torch.equal(torch.random.get_rng_state(), state), "random_init must not touch the global RNG"
    images = _images(3, 64, 96)
    encoded = tokenizer.encode(images)
    assert encoded.payload.dtype == torch.int64 and encoded.payload.shape == (3, 4, 6)
    assert encoded.num_tokens == 24 and encoded.bits.tolist() == [240.0] * 3  # 24 tokens × log2(1024)
    assert not encoded.payload.is_inference()
    decoded = tokenizer.decode(encoded)
    assert decoded.dtype == torch.float32 and decoded.shape == images.shape and not decoded.is_inference()
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1
    with torch.inference_mode():
        raw = tokenizer.model(images * 2 - 1)
    torch.testing.assert_close(decoded, (raw.clamp(-1, 1) + 1) / 2, rtol=0, atol=1e-6)
    indices, latents = tokenizer.encode_latents(images)
    assert torch.equal(indices, encoded.payload.flatten(1)) and torch.equal(
        indices, tokenizer.encode_indices(images)
    )
    assert latents.shape == (3, 24, 10) and latents.dtype == torch.float32
    codebook = tokenizer.codebook()
    assert codebook.shape == (1024, 10)
    nearest = torch.cdist(latents.reshape(-1, 10), codebook).argmin(dim=1)
    assert torch.equal(nearest, indices.flatten())  # the nearest ±1 code of z is its token
    with pytest.raises(ConfigError, match="not a square grid"):
        tokenizer.decode_indices(indices)  # 4×6 tokens: the grid is needed
    assert torch.equal(tokenizer.decode_indices(encoded.payload), decoded)
    square = _images(2)
    assert torch.equal(
        tokenizer.decode_indices(tokenizer.encode_indices(square)), tokenizer.decode(tokenizer.encode(square))
    )
    assert tokenizer.to(torch.device("cpu")) is tokenizer and tokenizer.weights_sha256 is None


def test_codebook_rows_are_the_codes_of_their_tokens() -> None:
    codebook = implicit_codebook(18)
    assert codebook.shape == (2**18, 18) and codebook.dtype == torch.float32
    ids = torch.tensor([[[0, 1, 2**17, 2**18 - 1, 5]]])
    assert torch.equal(codebook[ids.flatten()], tokens_to_codes(ids, 18)[0, :, 0].T)
    assert codebook[5].tolist() == [1, -1, 1] + [-1] * 15  # channel 0 is the least significant bit


@needs_reference
@pytest.mark.parametrize("name", list(TINY))
def test_adapter_reproduces_the_golden_tokens_and_images(name: str) -> None:
    model, reference, _ = _golden(name)
    tokenizer = OpenMagvit2.from_model(model, name=name)
    images = load_file(REFERENCE / "input_images.safetensors")["input_images"]
    encoded = tokenizer.encode(images)
    assert torch.equal(encoded.payload, reference["tokens"])
    assert torch.equal(tokenizer.encode_indices(images), reference["tokens_flat_official"].view(4, -1))
    expected = (reference["decoded_clamped"] + 1) / 2
    torch.testing.assert_close(tokenizer.decode(encoded), expected, rtol=0, atol=PIXEL_ATOL)
    _, latents = tokenizer.encode_latents(images)
    official = reference["encoder_latent_contiguous_input"].flatten(2).transpose(1, 2)
    torch.testing.assert_close(latents, official, rtol=0, atol=CONTIGUOUS_LATENT_ATOL)


def test_adapter_rejects_bad_inputs() -> None:
    tokenizer = _tiny()
    with pytest.raises(ConfigError, match="multiples of 16"):
        tokenizer.encode(_images(1, 40, 64))
    with pytest.raises(ConfigError, match="at least two tokens"):
        tokenizer.encode(_images(1, 16, 16))  # a 1×1 grid has no style variance (NaN officially)
    with pytest.raises(ConfigError, match="float32"):
        tokenizer.encode(_images(1).double())
    with pytest.raises(ConfigError, match=r"token grids \[N, h, w\] in \[0, 1024\)"):
        tokenizer.decode(Encoded(payload=torch.full((1, 2, 2), 1024)))
