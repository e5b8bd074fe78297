"""LlamaGen VQ: the official code's golden tensors on the tiny reference models, the full-size layouts,
the adapter (range conversions, token layout, codebook, pFID's perturbation) and the recon, pfid and
tokbench suites end to end. Weight files and the hub: ``test_llamagen_vq_weights.py``.

Reference data: ``shared/reference/llamagen_vq`` (its README says what each tensor is and gives the
tolerances used here). The ADM centre-crop golden of that folder is pinned by
``tests/data/test_preprocess.py`` (preprocess ``adm-center-crop``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from zoo_reference import pfid_suite, reference, tokbench_256_suite

import tokbench
from tokbench.adapters import build_model
from tokbench.data.registry import DATASETS
from tokbench.errors import ConfigError
from tokbench.models.llamagen_vq import (
    VARIANTS,
    LlamaGenVQ,
    LlamaGenVQConfig,
    LlamaGenVQModel,
    config_from_official,
    from_model_range,
    to_model_range,
)
from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer
from tokbench.suites import SUITE_PATH_ENV
from tokbench.tensors import quantize_uint8
from tokbench.textface.embedded import EmbeddedTokbenchDataset, read_manifest

REFERENCE, needs_reference = reference("llamagen_vq")
pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["tiny_vq_ds16", "tiny_vq_ds8"]
MANIFESTS = {"ds16-c2i": "vq_ds16_c2i", "ds8-c2i": "vq_ds8_c2i", "ds16-t2i": "vq_ds16_t2i"}

#: The tiny ds16 design of the reference folder, written out (the golden test checks they agree).
TINY_DS16 = LlamaGenVQConfig(1024, 8, True, (1, 1, 1, 1, 2), (1, 1, 1, 1, 2), 32, 32, 1)
TINY_DS8 = LlamaGenVQConfig(1024, 8, True, (1, 2, 1, 1), (1, 2, 1, 1), 32, 32, 1)

#: README tolerances (CPU float32); tokens exact, uint8 images ±1. The mid-block activations (values up
#: to ±11, sums of large terms) get 2e-4, not the README's 1e-4: float32 round-off depends on the CPU's
#: convolution kernels, and an AMD EPYC gave 1.07e-4 on ds8 (the README measured 3.4e-5 between thread
#: counts on its machine); everything downstream stayed within its README tolerance, tokens exact.
ATOL = {
    "x_normalized": 1e-6,
    "nonsquare_x_normalized": 1e-6,
    "codebook_l2normalized": 1e-6,
    "codebook_entry": 1e-6,
    "z_quantized": 1e-6,
    "encoder_out": 5e-5,
    "pre_quant_latent": 5e-5,
    "pre_quant_latent_l2normalized": 5e-5,
    "token_distance_margin": 5e-5,
    "nonsquare_token_distance_margin": 5e-5,
    "post_quant_conv_out": 5e-5,
    "encoder_mid_out": 2e-4,
    "decoder_mid_out": 2e-4,
    "decoded_raw": 5e-5,
    "decoded_clamped": 5e-5,
    "probe_decoded_raw": 5e-5,
    "nonsquare_decoded_raw": 5e-5,
}


def _reference_config(folder: Path) -> LlamaGenVQConfig:
    """A tiny model's official ``ModelArgs`` plus its documented constructor arguments."""
    raw = json.loads((folder / "config.json").read_text())
    extra = raw["_not_in_official_schema"]
    config = config_from_official(
        raw, ch=extra["encoder_decoder_ch"]["tiny"], num_res_blocks=extra["num_res_blocks"]["tiny"]
    )
    assert config.downsampling == raw["_resolved"]["downsample_factor"]
    return config


def _reference_model(name: str) -> tuple[LlamaGenVQModel, dict[str, torch.Tensor]]:
    folder = REFERENCE / name
    model = LlamaGenVQModel.from_state_dict(
        _reference_config(folder), load_file(folder / "weights.safetensors")
    )
    return model, load_file(folder / "reference_io.safetensors")


def _margin(model: LlamaGenVQModel, latent: torch.Tensor) -> torch.Tensor:
    """Second-smallest minus smallest distance per position, [B, h, w]."""
    two = model.quantize.distances(model.quantize.search_vectors(latent)).topk(2, largest=False).values
    return (two[:, 1] - two[:, 0]).reshape(latent.shape[0], *latent.shape[2:])


def _golden_outputs(model: LlamaGenVQModel, reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our tensors under the reference file's names, from the shared [0, 1] input batch (the probe
    tokens are the reference's own)."""
    images = load_file(REFERENCE / "input_images.safetensors")["input_images"]
    captured: dict[str, torch.Tensor] = {}

    def keep_first(key: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured.setdefault(key, output)  # the first call: the main batch

        return hook

    hooks = [
        model.encoder.mid[2].register_forward_hook(keep_first("encoder_mid_out")),
        model.decoder.mid[2].register_forward_hook(keep_first("decoder_mid_out")),
    ]
    try:
        with torch.inference_mode():
            x = to_model_range(images)
            encoder_out = model.encoder(x)
            latent = model.quant_conv(encoder_out)
            quantized, grid = model.quantize(latent)
            entry = model.quantize.lookup(grid)
            post = model.post_quant_conv(entry)
            decoded = model.decode_grid(grid)  # runs the decoder hook last
            probe = reference["probe_tokens"].reshape(2, *grid.shape[1:])
            nonsquare_x = torch.stack(
                [x[1, :, :32], x[3, :, 32:]]
            )  # README: image 1's top, image 3's bottom half
            nonsquare_latent = model.encode_latent(nonsquare_x)
            nonsquare_grid = model.quantize(nonsquare_latent)[1]
            out = {
                "x_normalized": x,
                "encoder_out": encoder_out,
                "encoder_mid_out": captured["encoder_mid_out"],
                "pre_quant_latent": latent,
                "pre_quant_latent_l2normalized": torch.nn.functional.normalize(latent, dim=1),
                "tokens": grid.flatten(),
                "tokens_bhw": grid,
                "token_distance_margin": _margin(model, latent),
                "codebook_l2normalized": model.quantize.codebook(),
                "z_quantized": quantized,
                "codebook_entry": entry,
                "post_quant_conv_out": post,
                "decoder_mid_out": captured["decoder_mid_out"],
                "decoded_raw": decoded,
                "decoded_clamped": decoded.clamp(-1.0, 1.0),
                "decoded_uint8_nhwc": quantize_uint8(from_model_range(decoded)).permute(0, 2, 3, 1),
                "probe_tokens": probe.flatten(),
                "probe_decoded_raw": model.decode_grid(probe),
                "nonsquare_x_normalized": nonsquare_x,
                "nonsquare_tokens": nonsquare_grid.flatten(),
                "nonsquare_token_distance_margin": _margin(model, nonsquare_latent),
                "nonsquare_decoded_raw": model.decode_grid(nonsquare_grid),
            }
    finally:
        for hook in hooks:
            hook.remove()
    return out


@needs_reference
@pytest.mark.parametrize("name", TINY)
def test_golden_outputs_match_the_official_code(name: str) -> None:
    folder = REFERENCE / name
    config = _reference_config(folder)
    assert config == {"tiny_vq_ds16": TINY_DS16, "tiny_vq_ds8": TINY_DS8}[name]
    manifest = json.loads((folder / "weights_manifest.json").read_text())
    with torch.device("meta"):
        layout = LlamaGenVQModel(config).state_dict()
    assert [(k, list(v.shape)) for k, v in layout.items()] == [
        (k, e["shape"]) for k, e in manifest["state_dict"].items()
    ]  # the official keys, in the official order
    model, reference = _reference_model(name)
    ours = _golden_outputs(model, reference)
    assert set(ours) == set(reference), "every reference tensor is checked"
    for key, expected in reference.items():
        got = ours[key]
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        if expected.dtype == torch.int64:
            margin = float(reference["token_distance_margin"].min())
            assert torch.equal(got, expected), (
                f"{key}: {(got != expected).sum()} differ (min margin {margin})"
            )
        elif expected.dtype == torch.uint8:  # ours rounds half to even, the official code half up
            assert (got.int() - expected.int()).abs().max() <= 1, key
        else:
            torch.testing.assert_close(got, expected, rtol=0, atol=ATOL[key], msg=key)


@needs_reference
@pytest.mark.parametrize("name", TINY)
def test_adapter_reproduces_the_golden_tokens_and_pixels(name: str) -> None:
    """Through the adapter's [0, 1] boundary: the official tokens exactly, its latents as searched,
    its codebook, and its uint8 images within ±1 level (square and non-square inputs)."""
    model, reference = _reference_model(name)
    tokenizer = LlamaGenVQ.from_model(model, name=name)
    images = load_file(REFERENCE / "input_images.safetensors")["input_images"]
    encoded = tokenizer.encode(images)
    grid = reference["tokens_bhw"]
    assert torch.equal(encoded.payload, grid) and encoded.num_tokens == grid[0].numel()
    assert encoded.bits.tolist() == [grid[0].numel() * 10.0] * 4  # log2(1024) bits per token
    indices, latents = tokenizer.encode_latents(images)
    assert torch.equal(indices, reference["tokens"].reshape(4, -1))
    assert torch.equal(tokenizer.encode_indices(images), indices)
    expected = reference["pre_quant_latent_l2normalized"].permute(0, 2, 3, 1).reshape(4, -1, 8)
    torch.testing.assert_close(latents, expected, rtol=0, atol=5e-5)
    torch.testing.assert_close(tokenizer.codebook(), reference["codebook_l2normalized"], rtol=0, atol=1e-6)
    decoded = tokenizer.decode(encoded)
    assert torch.equal(decoded, tokenizer.decode_indices(indices))
    official = reference["decoded_uint8_nhwc"].permute(0, 3, 1, 2).int()
    assert (quantize_uint8(decoded).int() - official).abs().max() <= 1
    probe = tokenizer.decode_indices(reference["probe_tokens"].reshape(2, -1))
    torch.testing.assert_close(probe, from_model_range(reference["probe_decoded_raw"]), rtol=0, atol=5e-5)
    nonsquare = from_model_range(reference["nonsquare_x_normalized"])  # 32×64: 2×4 or 4×8 tokens
    nonsquare_grid = tokenizer.encode(nonsquare).payload
    side = model.config.downsampling
    assert nonsquare_grid.shape == (2, 32 // side, 64 // side)
    assert torch.equal(nonsquare_grid.flatten(), reference["nonsquare_tokens"])
    torch.testing.assert_close(
        tokenizer.decode(tokenizer.encode(nonsquare)),
        from_model_range(reference["nonsquare_decoded_raw"]),
        rtol=0,
        atol=5e-5,
    )


@needs_reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_full_size_layout_matches_the_manifest(name: str) -> None:
    manifest = json.loads((REFERENCE / "full_size_manifests" / f"{MANIFESTS[name]}.json").read_text())
    variant = VARIANTS[name]
    with torch.device("meta"):
        model = LlamaGenVQModel(variant.config)
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    assert ours == [(k, e["shape"], e["dtype"]) for k, e in manifest["state_dict"].items()]
    assert len(ours) == manifest["num_state_dict_entries"]
    buffers = {k: {"shape": list(v.shape), "dtype": "float32"} for k, v in model.named_buffers()}
    assert buffers == manifest["buffers"]
    assert (
        sum(p.numel() for p in model.parameters()) == manifest["total_parameters"] == variant.num_parameters
    )
    by_module = {k: sum(p.numel() for p in m.parameters()) for k, m in model.named_children()}
    assert by_module == manifest["parameters_by_top_level_module"]
    official = manifest["config (ModelArgs as instantiated)"]
    resolved = manifest["resolved_hyperparameters"]
    ch, blocks = (resolved[k] for k in resolved if k.startswith(("ch ", "num_res_blocks ")))
    assert config_from_official(official, ch=ch, num_res_blocks=blocks) == variant.config
    assert variant.config.downsampling == resolved["downsample_factor"]
    assert (variant.hub_id, variant.filename) == (manifest["hf_repo"], manifest["filename"])
    assert (
        variant.url.replace(variant.revision or "main", "main")
        == manifest["weights_url (official README; not used here)"]
    )
    if variant.reported_rfid is not None:
        assert manifest["published_reconstruction"]["imagenet_val_50k"][0]["rFID"] == variant.reported_rfid


def test_variants_and_cards() -> None:
    assert list(VARIANTS) == ["ds16-c2i", "ds8-c2i", "ds16-t2i"]
    cards = LlamaGenVQ.cards()
    assert [c.spec for c in cards] == [f"llamagen-vq:variant={name}" for name in VARIANTS]
    for card, variant in zip(cards, VARIANTS.values(), strict=True):
        assert (card.family, card.kind, card.codebook, card.resolution) == (
            "LlamaGen VQ",
            "discrete",
            16384,
            256,
        )
        assert card.downsampling == variant.config.downsampling == (8 if "ds8" in variant.name else 16)
        assert card.tokens == (256 // card.downsampling) ** 2 and card.hub_id == variant.hub_id
        assert card.verification == "golden: reference/llamagen_vq"
    assert VARIANTS["ds16-t2i"].config == VARIANTS["ds16-c2i"].config  # same architecture, other weights
    for variant in VARIANTS.values():
        assert "2406.06525" in variant.paper and variant.licence and "vq_model.py" in variant.source


# ------------------------------------------------------------------------------- adapter and inputs


def _tiny(seed: int = 0) -> LlamaGenVQ:
    return LlamaGenVQ.from_model(LlamaGenVQModel.random_init(TINY_DS16, seed=seed), name="tiny-ds16")


def _images(n: int = 2, height: int = 32, width: int = 32) -> torch.Tensor:
    return torch.rand((n, 3, height, width), generator=torch.Generator().manual_seed(0))


def test_random_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    tokenizer = _tiny()
    assert torch.equal(torch.random.get_rng_state(), state)
    rows = tokenizer.model.quantize.embedding.weight
    torch.testing.assert_close(rows.norm(dim=1), torch.ones(1024))  # the official normalised init
    images = _images()
    decoded = tokenizer.decode(tokenizer.encode(images))
    assert torch.equal(decoded, _tiny().decode(_tiny().encode(images)))
    assert not torch.equal(tokenizer.encode(images).payload, _tiny(seed=1).encode(images).payload)
    built = build_model("llamagen-vq:variant=ds8-c2i,random_init=true")
    assert isinstance(built.adapter, LlamaGenVQ) and built.adapter.weights_sha256 is None
    assert (
        built.adapter.source == "random_init(seed=0)" and built.adapter.config == VARIANTS["ds8-c2i"].config
    )


def test_adapter_layout_and_range() -> None:
    tokenizer = _tiny()
    images = _images(3, 32, 64)  # non-square: a 2×4 grid
    encoded = tokenizer.encode(images)
    assert encoded.payload.dtype == torch.int64 and encoded.payload.shape == (3, 2, 4)
    assert encoded.num_tokens == 8 and encoded.bits.tolist() == [80.0] * 3
    assert not encoded.payload.is_inference()
    decoded = tokenizer.decode(encoded)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32 and not decoded.is_inference()
    with torch.inference_mode():
        raw = tokenizer.model.decode_grid(tokenizer.model.encode(images * 2.0 - 1.0))
    assert torch.equal(decoded, ((raw + 1.0) / 2.0).clamp(0.0, 1.0))
    assert torch.equal(tokenizer.decode_indices(encoded.payload), decoded)
    indices, latents = tokenizer.encode_latents(images)
    assert torch.equal(indices, encoded.payload.flatten(1)) and latents.shape == (3, 8, 8)
    distances = torch.cdist(latents.double(), tokenizer.codebook().double()[None])
    assert torch.equal(distances.argmin(dim=-1), indices)  # the nearest normalised row is the token
    square = _images(2)
    assert torch.equal(
        tokenizer.decode_indices(tokenizer.encode_indices(square)), tokenizer.decode(tokenizer.encode(square))
    )
    assert tokenizer.to(torch.device("cpu")) is tokenizer and tokenizer.weights_sha256 is None


def test_adapter_rejects_bad_arguments_and_inputs() -> None:
    with pytest.raises(ConfigError, match="variant must be one of ds16-c2i, ds8-c2i, ds16-t2i"):
        LlamaGenVQ(variant="ds32")
    with pytest.raises(ConfigError, match="random_init"):
        LlamaGenVQ(weights="x.pt", random_init=True)
    with pytest.raises(ConfigError, match="multiple of 32"):
        LlamaGenVQConfig(ch=48)
    tokenizer = _tiny()
    with pytest.raises(ConfigError, match="multiples of 16"):
        tokenizer.encode(_images(1, 24, 32))
    with pytest.raises(ConfigError, match="float32"):
        tokenizer.encode(_images(1).double())
    grid = tokenizer.encode(_images(1)).payload
    with pytest.raises(ConfigError, match=r"in \[0, 1024\)"):
        tokenizer.decode_indices(grid + 1024)
    with pytest.raises(ConfigError, match="index grid"):
        tokenizer.decode(type(tokenizer.encode(_images(1)))(payload=grid.flatten(1)))
    with pytest.raises(ConfigError, match="square token grid"):
        tokenizer.decode_indices(torch.zeros((1, 8), dtype=torch.int64))


# -------------------------------------------------------------------------------- suites end to end


class _TextAndFace(EmbeddedTokbenchDataset):
    """Three images of the embedded TokBench set: text in every 256 bucket, and faces."""

    name = "tokbench-embedded-text-face"

    def __init__(self) -> None:
        manifest = read_manifest()
        manifest["images"] = [
            image for image in manifest["images"] if image["id"] in ("text-retina", "text-page", "faces-0")
        ]
        super().__init__(manifest)


@pytest.fixture
def suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pfid at α = 0 and tokbench at 256 only; returns a fresh store folder."""
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "pfid-alpha0.yaml").write_text(pfid_suite("pfid-alpha0", alpha=0.0, delta=8, seed=0))
    (folder / "tokbench-256.yaml").write_text(tokbench_256_suite("tokbench-256", _TextAndFace.name))
    DATASETS.register(_TextAndFace.name, _TextAndFace)
    monkeypatch.setenv(SUITE_PATH_ENV, str(folder))
    return tmp_path / "store"


def test_recon_and_pfid_run_end_to_end(suites: Path) -> None:
    """recon and pfid on the embedded photos (256×256, 16×16 tokens of 10 bits): pfid at α = 0 is
    recon's rFID exactly."""
    model = _tiny()
    options = {"limit": 2, "batch_size": 2, "cache_features": False, "store": suites}
    recon = tokbench.evaluate(model, "recon", **options)
    metrics = recon.metrics
    assert metrics["num_tokens"] == 256 and metrics["bytes_per_image"] == 256 * 10 / 8
    assert all(math.isfinite(metrics[k]) for k in ("psnr", "ssim", "lpips", "fid"))
    assert recon.record["dataset"]["items_used"] == 2 and recon.stored is not None
    pfid0 = tokbench.evaluate(model, "pfid-alpha0", **options)
    assert pfid0.metrics["fid"] == metrics["fid"]  # exactly


def test_pfid_perturbs_among_the_nearest_normalised_codes() -> None:
    """pFID's perturbation through encode_latents, codebook and decode_indices: α = 1 replaces most
    tokens by one of the δ codes nearest the l2-normalised latent, α = 0 none."""
    tokenizer, images = _tiny(), _images(2, 64, 64)
    indices, latents = tokenizer.encode_latents(images)
    for alpha in (0.0, 1.0):
        perturbed = PerturbedTokenizer(
            tokenizer, CodebookPerturbation(alpha=alpha, beta=1.0, delta=4, seed=1)
        )
        encoded = perturbed.encode(images)
        changed = encoded.payload != indices
        assert bool(changed.any()) == (alpha > 0) and encoded.bits.tolist() == [160.0, 160.0]
        nearest = torch.cdist(latents.double(), tokenizer.codebook().double()[None]).topk(4, largest=False)
        assert bool((nearest.indices == encoded.payload[..., None]).any(dim=-1).all())
        assert perturbed.decode(encoded).shape == images.shape


def test_tokbench_suite_runs_end_to_end(suites: Path) -> None:
    result = tokbench.evaluate(_tiny(), "tokbench-256", batch_size=2, store=suites)
    metrics = result.metrics
    assert {"t_acc_256_mean", "t_ned_256_mean", "f_sim_256_mean"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert result.record["dataset"]["items_used"] == 3
