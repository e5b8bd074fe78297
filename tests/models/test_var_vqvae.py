"""VAR VQVAE: the official code's golden outputs on three tiny models (one per config switch), the
full-size layouts of the released checkpoint at both schedules, the φ index quirk, the adapter and
discrete contracts, weight resolution offline, and recon / tokbench / pfid end to end.

Reference data: ``shared/reference/var_vqvae`` (see its README for what each tensor is).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from zoo_reference import reference, tokbench_256_suite

import tokbench
from tokbench.adapters import build_model
from tokbench.adapters.registry import MODELS
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.titok import load_checkpoint
from tokbench.models.var_vqvae import (
    CHECKPOINT_SHA256,
    VARIANTS,
    VarVqvae,
    VarVqvaeConfig,
    VarVqvaeModel,
    resolve_checkpoint,
)
from tokbench.models.var_vqvae_modules import phi_index_per_scale
from tokbench.suites import SUITE_PATH_ENV

REFERENCE, needs_reference = reference("var_vqvae")
pytestmark = pytest.mark.usefixtures("one_thread")
PN256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PN512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)
TINY_BASE = {"vocab_size": 128, "z_channels": 8, "ch": 32}
#: The three tiny designs of the reference folder, written out (the golden test checks they agree).
TINY = {
    # the release's design: partially shared φ (K=4), L2 search, the 256-px schedule; 4× down
    "tiny_qsr4_pn256": VarVqvaeConfig(**TINY_BASE, ch_mult=(1, 2, 1), num_res_blocks=2, patch_nums=PN256),
    # one φ per scale and cosine search; 16× down as the release
    "tiny_qsr0_znorm_f16": VarVqvaeConfig(
        **TINY_BASE,
        ch_mult=(1, 1, 1, 1, 1),
        num_res_blocks=1,
        patch_nums=(1, 2, 3, 4),
        share_quant_resi=0,
        using_znorm=True,
    ),
    # one shared φ and the 512-px schedule; 2× down
    "tiny_qsr1_pn512": VarVqvaeConfig(
        **TINY_BASE, ch_mult=(1, 1), num_res_blocks=1, patch_nums=PN512, share_quant_resi=1
    ),
}
#: README tolerances (CPU float32): latents 2e-4, f_hat 2e-5, pixels 1e-4, uint8 ±1, loss rtol 1e-5.
LATENT_ATOL, FHAT_ATOL, PIXEL_ATOL = 2e-4, 2e-5, 1e-4


def _reference_config(folder: Path) -> VarVqvaeConfig:
    """The official constructor arguments plus the rebuilt encoder/decoder's ch_mult and res blocks."""
    raw = json.loads((folder / "config.json").read_text())
    given, dd = raw["constructor"], raw["_resolved"]["encoder_decoder_ddconfig"]
    assert given["quant_conv_ks"] == 3 and given["dropout"] == 0.0 and dd["using_sa"] and dd["using_mid_sa"]
    return VarVqvaeConfig(
        vocab_size=given["vocab_size"],
        z_channels=given["z_channels"],
        ch=given["ch"],
        ch_mult=tuple(dd["ch_mult"]),
        num_res_blocks=dd["num_res_blocks"],
        patch_nums=tuple(given["v_patch_nums"]),
        share_quant_resi=given["share_quant_resi"],
        quant_resi=given["quant_resi"],
        using_znorm=given["using_znorm"],
        default_qresi_counts=given["default_qresi_counts"],
    )


def _uint8_nhwc(raw: torch.Tensor) -> torch.Tensor:
    """The official chain: clamp to [−1, 1], (x + 1)·0.5, NHWC, ×255, truncate to uint8."""
    return ((raw.clamp(-1, 1) + 1) * 0.5).permute(0, 2, 3, 1).mul(255).to(torch.uint8)


def _progressive_fhat(model: VarVqvaeModel, tokens: list[torch.Tensor]) -> torch.Tensor:
    """The official experimental ``same_shape=False`` path: f_hat grows scale by scale (bicubic),
    φ applied at each scale's own size."""
    quantize, patch_nums = model.quantize, model.config.patch_nums
    f_hat = torch.zeros(tokens[0].shape[0], model.config.z_channels, patch_nums[0], patch_nums[0])
    for pn, phi, idx in zip(patch_nums, quantize.phis(len(patch_nums)), tokens, strict=True):
        f_hat = F.interpolate(f_hat, size=(pn, pn), mode="bicubic")
        f_hat.add_(phi(quantize.scale_map(idx, pn, (pn, pn), upsample=False)))
    return f_hat


def _margins(model: VarVqvaeModel, residual: torch.Tensor) -> torch.Tensor:
    """Best-minus-second gap of each token of one scale (L2 distance or cosine), for messages."""
    z = residual.permute(0, 2, 3, 1).reshape(-1, residual.shape[1])
    codebook = model.quantize.codebook()
    if model.config.using_znorm:
        top = (F.normalize(z, dim=-1) @ codebook.T).topk(2).values
        return (top[:, 0] - top[:, 1]).view(residual.shape[0], -1)
    top = torch.cdist(z, codebook).square().topk(2, largest=False).values
    return (top[:, 1] - top[:, 0]).view(residual.shape[0], -1)


def _golden_outputs(model: VarVqvaeModel, reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our outputs under the reference file's names (inputs it stores are echoed back)."""
    x = reference["input_pm1"]
    patch_nums = model.config.patch_nums
    out: dict[str, torch.Tensor] = {"input_pm1": x}
    with torch.inference_mode():
        encoded = model.encoder(x)
        f = model.quant_conv(encoded)
        tokens, residuals, fhats = model.quantize.quantize(f)
        fhat = model.quantize.tokens_to_fhat(tokens)
        decoded = model.decode_fhat(fhat)
        forward, loss = model(x)
        probe = [reference[f"probe_tokens_s{k:02d}"] for k in range(len(patch_nums))]
        probe_fhat = model.quantize.tokens_to_fhat(probe)
        out |= {
            "encoder_out": encoded,
            "f_prequant": f,
            "fhat_per_scale": torch.stack(fhats),
            "fhat_final": fhat,
            "decoded_raw": decoded,
            "decoded_clamped": decoded.clamp(-1, 1),
            "decoded_uint8_nhwc": _uint8_nhwc(decoded),
            "forward_decoded_raw": forward,
            "forward_vq_loss": loss,
            # the straight-through latent (fhat − f) + f, the input of post_quant_conv in forward
            "forward_fhat_straight_through": (fhats[-1] - f).add_(f),
            "probe_fhat": probe_fhat,
            "probe_decoded_raw": model.decode_fhat(probe_fhat),
            "fhat_same_shape_false": _progressive_fhat(model, tokens),
        }
        for k, (idx, residual) in enumerate(zip(tokens, residuals, strict=True)):
            out |= {
                f"tokens_s{k:02d}": idx,
                f"residual_pooled_s{k:02d}": residual,
                f"token_margin_s{k:02d}": _margins(model, residual),
                f"probe_tokens_s{k:02d}": probe[k],
            }
        if "override_fhat_final" in reference:  # img_to_idxBl(x, v_patch_nums=(1, 2, 4, 8, 16))
            override = (1, 2, 4, 8, 16)
            override_tokens = model.encode_tokens(x, override)
            out["override_fhat_final"] = model.quantize.tokens_to_fhat(override_tokens, override)
            out |= {f"override_tokens_s{k:02d}": t for k, t in enumerate(override_tokens)}
    return out


def _tolerance(key: str) -> float:
    if key.startswith(("decoded", "forward_decoded", "probe_decoded")):
        return PIXEL_ATOL
    if "fhat" in key:
        return FHAT_ATOL
    return LATENT_ATOL  # encoder_out, f_prequant, residual_pooled_*


def _load_golden(name: str) -> tuple[VarVqvaeModel, dict[str, torch.Tensor]]:
    folder = REFERENCE / name
    model = VarVqvaeModel.from_state_dict(
        _reference_config(folder), load_file(folder / "weights.safetensors")
    )
    return model, load_file(folder / "reference_io.safetensors")


@needs_reference
@pytest.mark.parametrize("name", list(TINY))
def test_golden_outputs_match_the_official_code(name: str) -> None:
    folder = REFERENCE / name
    config = _reference_config(folder)
    assert config == TINY[name]
    weights = load_file(folder / "weights.safetensors")
    VarVqvaeModel(config).load_state_dict(weights, strict=True)  # the official key set, nothing more or less
    expected_phi = json.loads((folder / "config.json").read_text())["_resolved"]["phi_index_per_scale"]
    assert phi_index_per_scale(config.num_phi, len(config.patch_nums)) == expected_phi
    model, reference = _load_golden(name)
    ours = _golden_outputs(model, reference)
    assert set(reference) <= set(ours), f"unchecked reference tensors: {sorted(set(reference) - set(ours))}"
    # tokens first, scale by scale: one flip changes every later residual
    for prefix in ("tokens", "override_tokens", "probe_tokens"):
        keys = sorted(k for k in reference if k.startswith(prefix + "_s"))
        for key in keys:
            got, expected = ours[key], reference[key]
            margin = reference.get(key.replace(prefix, "token_margin"))
            assert got.dtype == torch.int64 and torch.equal(got, expected), (
                f"{name} {key}: first mismatching scale, {(got != expected).sum()} of {expected.numel()} "
                f"tokens differ (smallest official margin {None if margin is None else float(margin.min())})"
            )
    for key, expected in reference.items():
        got = ours[key]
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        if key.startswith("token_margin"):  # diagnostic only (README)
            continue
        if expected.dtype == torch.int64:
            assert torch.equal(got, expected), key
        elif expected.dtype == torch.uint8:
            assert (got.int() - expected.int()).abs().max() <= 1, key
        elif key == "input_pm1":
            assert torch.equal(got, expected)
        elif key == "forward_vq_loss":
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=0, msg=key)
        else:
            torch.testing.assert_close(got, expected, rtol=0, atol=_tolerance(key), msg=key)


@needs_reference
@pytest.mark.parametrize("name", list(TINY))
def test_adapter_on_golden_models(name: str) -> None:
    """The adapter's [0, 1] boundary: images → the official concatenated tokens, indices → the official
    clamped decode mapped to [0, 1], and ``encode_latents`` → the official per-scale residual maps."""
    model, reference = _load_golden(name)
    images = load_file(REFERENCE / "input_images.safetensors")["input_images"]
    assert torch.equal(images * 2 - 1, reference["input_pm1"])
    tokenizer = VarVqvae.from_model(model, name=name)
    scales = range(len(model.config.patch_nums))
    official = torch.cat([reference[f"tokens_s{k:02d}"] for k in scales], dim=1)
    assert torch.equal(tokenizer.encode_indices(images), official)
    decoded = tokenizer.decode_indices(official)
    expected = (reference["decoded_raw"].clamp(-1, 1) + 1) * 0.5
    torch.testing.assert_close(decoded, expected, rtol=0, atol=PIXEL_ATOL)
    tokens, latents = tokenizer.encode_latents(images)
    assert torch.equal(tokens, official) and latents.shape == (*official.shape, model.config.z_channels)
    if "residual_pooled_s00" in reference:  # stored for the first two models
        residuals = torch.cat(
            [reference[f"residual_pooled_s{k:02d}"].permute(0, 2, 3, 1).flatten(1, 2) for k in scales], dim=1
        )
        if model.config.using_znorm:
            residuals = F.normalize(residuals, dim=-1)
        torch.testing.assert_close(latents, residuals, rtol=0, atol=LATENT_ATOL)
    # each latent's nearest codebook() row (squared L2, the pFID search) is its token
    nearest = torch.cdist(latents.flatten(0, 1).double(), tokenizer.codebook().double()).argmin(dim=1)
    assert torch.equal(nearest.view_as(tokens), tokens)


def test_phi_index_reproduces_the_float64_tie_breaking() -> None:
    assert phi_index_per_scale(4, 10) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]  # not [0,0,0,1,1,2,2,2,3,3]
    assert phi_index_per_scale(4, 5) == [0, 1, 2, 2, 3]  # the tie at k/(SN−1) = 0.5
    assert phi_index_per_scale(4, 14) == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert phi_index_per_scale(1, 3) == [0, 0, 0]
    assert phi_index_per_scale(3, 3) == [0, 1, 2]


@needs_reference
@pytest.mark.parametrize("resolution", [256, 512])
def test_full_size_layout_matches_the_manifest(resolution: int) -> None:
    manifest = json.loads(
        (REFERENCE / "full_size_manifests" / f"vae_ch160v4096z32_pn{resolution}.json").read_text()
    )
    variant = VARIANTS[resolution]
    with torch.device("meta"):
        model = VarVqvaeModel(variant.config)
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    assert ours == [(k, e["shape"], e["dtype"]) for k, e in manifest["keys"].items()]
    assert len(ours) == 324
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"] == variant.num_parameters
    assert {n: list(b.shape) for n, b in model.named_buffers()} == manifest["buffers"]
    official = manifest["official_constructor"]
    defaults = official["defaults_left"]
    assert variant.config == VarVqvaeConfig(
        vocab_size=official["vocab_size"],
        z_channels=official["z_channels"],
        ch=official["ch"],
        patch_nums=tuple(official["v_patch_nums"]),
        share_quant_resi=official["share_quant_resi"],
        quant_resi=defaults["quant_resi"],
        using_znorm=defaults["using_znorm"],
        default_qresi_counts=defaults["default_qresi_counts"],
    )
    resolved = manifest["resolved"]
    assert list(variant.config.ch_mult) == resolved["ddconfig"]["ch_mult"]
    assert variant.config.num_tokens == resolved["tokens_total_L"] and variant.config.downsampling == 16
    assert phi_index_per_scale(4, 10) == resolved["phi_index_per_scale"]
    assert manifest["hub_id"] == variant.hub_id and manifest["checkpoint"] == variant.checkpoint_filename
    assert manifest["url"] == variant.url and manifest["image_resolution"] == resolution


def test_cards_describe_the_release() -> None:
    cards = {card.resolution: card for card in VarVqvae.cards()}
    card = cards[256]
    assert (card.family, card.kind, card.tokens, card.codebook, card.downsampling) == (
        "VAR VQVAE",
        "discrete",
        680,
        4096,
        16,
    )
    assert card.hub_id == "FoundationVision/var" and card.verification == "golden: reference/var_vqvae"
    assert cards[512].tokens == 2240 and cards[512].spec == "var-vqvae:resolution=512"
    assert MODELS.get("var-vqvae") is VarVqvae


# ------------------------------------------------------------------------------------------- adapter

#: A 16×-downsampling network at 256 px with the released schedule and φ sharing, shrunk in width,
#: depth and codebook: the model of the end-to-end runs.
TINY_256 = VarVqvaeConfig(vocab_size=64, z_channels=8, ch=32, ch_mult=(1, 1, 1, 1, 1), num_res_blocks=1)


def _images(n: int, side: int) -> torch.Tensor:
    return torch.rand((n, 3, side, side), generator=torch.Generator().manual_seed(0))


def test_adapter_contract_with_random_weights() -> None:
    config = TINY["tiny_qsr4_pn256"]
    state = torch.random.get_rng_state()
    tokenizer = VarVqvae.from_model(VarVqvaeModel.random_init(config, seed=0), name="tiny")
    assert torch.equal(torch.random.get_rng_state(), state), "random_init must not touch the global RNG"
    images = _images(2, 64)
    encoded = tokenizer.encode(images)
    assert encoded.payload.dtype == torch.int64 and encoded.payload.shape == (2, 680)
    assert not encoded.payload.is_inference() and encoded.num_tokens == 680
    assert encoded.bits.dtype == torch.float64 and encoded.bits.tolist() == [680 * math.log2(128)] * 2
    decoded = tokenizer.decode(encoded)
    assert decoded.dtype == torch.float32 and decoded.shape == images.shape and not decoded.is_inference()
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1
    with torch.inference_mode():
        tokens = tokenizer.model.encode_tokens(images * 2 - 1)
        raw = tokenizer.model.decode_tokens(tokens)
    assert torch.equal(encoded.payload, torch.cat(tokens, dim=1))  # coarsest scale first, row-major
    assert torch.equal(decoded, (raw.clamp(-1, 1) + 1) * 0.5)
    assert torch.equal(tokenizer.decode_indices(tokenizer.encode_indices(images)), decoded)
    assert tokenizer.codebook().shape == (128, 8) and tokenizer.is_discrete
    assert tokenizer.to(torch.device("cpu")) is tokenizer and tokenizer.weights_sha256 is None


def test_adapter_rejects_bad_arguments_and_inputs() -> None:
    with pytest.raises(ConfigError, match="resolution must be one of 256, 512"):
        VarVqvae(resolution=1024)
    with pytest.raises(ConfigError, match="random_init"):
        VarVqvae(weights="x.pth", random_init=True)
    with pytest.raises(ConfigError, match="strictly increasing"):
        VarVqvaeConfig(patch_nums=(2, 1))
    with pytest.raises(ConfigError, match="GroupNorm"):
        VarVqvaeConfig(ch=16)
    tokenizer = VarVqvae.from_model(VarVqvaeModel.random_init(TINY["tiny_qsr1_pn512"]), name="tiny")
    with pytest.raises(ConfigError, match=r"\[N, 3, 64, 64\]"):
        tokenizer.encode(_images(1, 32))
    with pytest.raises(ConfigError, match="float32"):
        tokenizer.encode(_images(1, 64).double())
    payload = tokenizer.encode(_images(1, 64)).payload
    with pytest.raises(ConfigError, match=r"token ids \[N, 2240\] in \[0, 128\)"):
        tokenizer.decode_indices(payload + 128)
    with pytest.raises(ConfigError, match="token ids"):
        tokenizer.decode_indices(payload[:, :-1])


def test_build_from_spec_with_random_weights() -> None:
    built = build_model("var-vqvae:random_init=true")
    tokenizer = built.adapter
    assert isinstance(tokenizer, VarVqvae) and tokenizer.weights_sha256 is None
    assert tokenizer.source == "random_init(seed=0)" and built.arguments["resolution"] == 256
    assert tokenizer.config == VARIANTS[256].config and tokenizer.num_tokens == 680


# ------------------------------------------------------------------------------------------- weights


def test_checkpoint_loading(tmp_path: Path) -> None:
    config = TINY["tiny_qsr1_pn512"]
    state = VarVqvaeModel.random_init(config, seed=1).state_dict()
    torch.save(state, tmp_path / "w.pth")
    model = VarVqvaeModel.from_state_dict(config, load_checkpoint(tmp_path / "w.pth"))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # the training-statistics buffer may come with another schedule length (as the official loader allows)
    other = {**state, "quantize.ema_vocab_hit_SV": torch.ones(3, 128)}
    model = VarVqvaeModel.from_state_dict(config, other)
    assert model.quantize.ema_vocab_hit_SV.shape == (10, 128)
    with pytest.raises(WeightsError, match=r"missing \(1\): quantize.embedding.weight"):
        VarVqvaeModel.from_state_dict(
            config, {k: v for k, v in state.items() if k != "quantize.embedding.weight"}
        )
    with pytest.raises(WeightsError, match="unexpected"):
        VarVqvaeModel.from_state_dict(TINY["tiny_qsr4_pn256"], state)


def test_weights_file_is_checked_against_the_pinned_sha256(tmp_path: Path) -> None:
    save_file(VarVqvaeModel.random_init(TINY_256).state_dict(), tmp_path / "vae_ch160v4096z32.safetensors")
    with pytest.raises(WeightsError, match=CHECKPOINT_SHA256) as error:
        VarVqvae(weights=str(tmp_path / "vae_ch160v4096z32.safetensors"))
    assert "--weights PATH" in str(error.value)
    with pytest.raises(WeightsError, match="neither a file nor a directory"):
        VarVqvae(weights=str(tmp_path / "absent.pth"))
    with pytest.raises(WeightsError, match=r"no vae_ch160v4096z32\.pth in"):
        VarVqvae(weights=str(tmp_path))
    with pytest.raises(ConfigError, match="revision"):
        VarVqvae(weights=str(tmp_path / "vae_ch160v4096z32.safetensors"), revision="abc")


def test_weights_folders_and_hub_caches(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("huggingface_hub")
    variant = VARIANTS[256]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "vae_ch160v4096z32.pth").write_bytes(b"x")
    assert resolve_checkpoint(variant, plain) == (plain / "vae_ch160v4096z32.pth", "directory")
    repo = hub_env / "hub" / "models--FoundationVision--var"
    (repo / "snapshots" / ("c" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("c" * 40) / "vae_ch160v4096z32.pth").write_bytes(b"x")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    cached = (repo / "snapshots" / ("c" * 40) / "vae_ch160v4096z32.pth").resolve()
    for root in (hub_env, hub_env / "hub", repo):  # HF_HOME, HF_HUB_CACHE, the repository folder
        path, source = resolve_checkpoint(variant, root)
        assert path.resolve() == cached and source == "hub-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no weights given: the cache under HF_HOME
    path, source = resolve_checkpoint(variant)
    assert path.resolve() == cached and source == "hub"


def _assert_fails_fast_naming_the_ways(seconds: float = 5.0) -> str:
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        VarVqvae()
    assert time.monotonic() - start < seconds
    message = str(error.value)
    assert "FoundationVision/var" in message and "--weights PATH" in message
    assert "https://huggingface.co/FoundationVision/var/resolve/main/vae_ch160v4096z32.pth" in message
    assert "\n" not in message
    return message


def test_offline_flag_fails_fast(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "not in the local hub cache (HF_HUB_OFFLINE is set)" in _assert_fails_fast_naming_the_ways()


def test_unreachable_hub_fails_fast(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    _assert_fails_fast_naming_the_ways()


# ---------------------------------------------------------------------------------------- end to end

PFID_SUITE = """
name: {name}
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {{name: imagenet-center-crop, resolution: 256}}
judges:
  inception: {{name: inception-v3-tf, options: {{resize: tf1-bilinear}}}}
metrics:
  - {{name: fid, judge: inception}}
settings: {{perturbation: {{alpha: {alpha}, beta: 1.0, delta: 8, seed: 3}}}}
"""


@pytest.fixture
def suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, alpha in (("var-pfid0", 0.0), ("var-pfid", 0.5)):
        (tmp_path / f"{name}.yaml").write_text(PFID_SUITE.format(name=name, alpha=alpha))
    (tmp_path / "var-tokbench-256.yaml").write_text(tokbench_256_suite("var-tokbench-256"))
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))


def test_recon_pfid_and_tokbench_end_to_end(suites: None, tmp_path: Path) -> None:
    """A 256-px network with the released schedule and random weights through the real recon suite,
    pFID (α = 0 equals recon's rFID exactly; α > 0 changes it) and TokBench at 256 px (text of the
    first image)."""
    model = VarVqvae.from_model(VarVqvaeModel.random_init(TINY_256, seed=0), name="tiny-256")
    store = tmp_path / "store"
    options = {"limit": 2, "batch_size": 2, "cache_features": False}
    recon = tokbench.evaluate(model, "recon", store=store, **options)
    assert recon.stored is not None and recon.stored.status == "added"
    assert recon.record["dataset"]["items_used"] == 2
    assert recon.metrics["bits_per_pixel"] == pytest.approx(680 * math.log2(64) / 256**2)
    assert all(math.isfinite(recon.metrics[k]) for k in ("psnr", "ssim", "lpips", "fid"))
    assert tokbench.evaluate(model, "var-pfid0", **options).metrics["fid"] == recon.metrics["fid"]
    assert tokbench.evaluate(model, "var-pfid", **options).metrics["fid"] != pytest.approx(
        recon.metrics["fid"], rel=1e-6
    )
    result = tokbench.evaluate(model, "var-tokbench-256", store=store, limit=1, batch_size=1)
    assert result.record["dataset"]["items_used"] == 1
    text = [result.metrics[f"{m}_256_mean"] for m in ("t_acc", "t_ned")]  # the first items have no faces
    assert all(0.0 <= value <= 100.0 for value in text)
