"""The diffusers video VAEs: every class builds from its real config (full size on the meta device)
and, at a reduced config, round-trips a panned embedded photo with the right shape, bit-identical to
the pipeline's own arithmetic written out here; the named releases pin hub ids, fail offline in
< 5 s naming them and --weights; the generic adapter reads a saved folder and equals diffusers."""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path

import pytest
import torch
from video_clips import panning_clip
from video_vae_tiny import CLIP_SHAPES, TINY, tiny_video_model

from tokbench.adapters import build_model
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.diffusers_autoencoder_zoo import AutoencoderRelease
from tokbench.models.diffusers_autoencoders import build_autoencoder, full_config
from tokbench.models.diffusers_loading import load_state_strictly
from tokbench.models.video_vae_zoo import (
    SHAPES,
    CogVideoXVae,
    CosmosVae,
    HunyuanVideoVae,
    NamedVideoAutoencoder,
    WanVae,
)
from tokbench.models.video_vaes import (
    VIDEO_CONVENTIONS,
    DiffusersVideoAutoencoder,
    DiffusersVideoAutoencoderBase,
)

diffusers = pytest.importorskip("diffusers")

NAMED: list[type[NamedVideoAutoencoder]] = [CogVideoXVae, HunyuanVideoVae, CosmosVae, WanVae]
#: The real config of each class: a named release's, SVD's for the temporal decoder (whose class
#: defaults are a one-level toy), else the class defaults (diffusers' conversion of its release).
SVD = {
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}
REAL = {name: {} for name in VIDEO_CONVENTIONS} | {
    "AutoencoderKLTemporalDecoder": SVD,
    **{cls.class_name: dict(next(iter(cls.releases.values())).config) for cls in NAMED},
}
#: Published compression of the full-size classes (temporal, spatial) where they are video VAEs.
PUBLISHED = {
    "AutoencoderKLCogVideoX": (4, 8),
    "AutoencoderKLHunyuanVideo": (4, 8),
    "AutoencoderKLHunyuanVideo15": (4, 16),
    "AutoencoderKLLTXVideo": (8, 32),
    "AutoencoderKLLTX2Video": (8, 32),
    "AutoencoderKLWan": (4, 8),
    "AutoencoderKLMochi": (6, 8),
    "AutoencoderKLCosmos": (8, 8),
    "AutoencoderKLMagvit": (4, 8),
    "AutoencoderVidTok": (4, 8),
}
FAST_FOLDERS = {"AutoencoderKLWan", "AutoencoderKLLTXVideo", "AutoencoderKLHunyuanVideo15"}
SLOW = {"AutoencoderKLAllegro"}  # ~5 s a clip: 24 frames at 128 px (its tile) even reduced


def _params(names: list[str]) -> list:
    return [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [], id=n) for n in names]


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------- full size, meta


@pytest.mark.parametrize("class_name", list(VIDEO_CONVENTIONS))
def test_real_config_builds_the_class_on_meta(class_name: str) -> None:
    """The real config, completed with the class defaults, builds the class; its state dict is the
    class's own (keys and shapes), a strict load refuses a misshapen or missing tensor, and the
    declared compression is the published one."""
    cls = getattr(diffusers, class_name)
    model = build_autoencoder(class_name, REAL[class_name], class_name, device="meta")
    assert type(model) is cls
    with torch.device("meta"):
        direct = cls(**full_config(class_name, REAL[class_name], class_name))
    expected = {k: tuple(v.shape) for k, v in direct.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    state = {k: torch.zeros(()).expand(v.shape) for k, v in direct.state_dict().items()}
    key = sorted(state)[len(state) // 2]
    state[key] = torch.zeros(3)
    with pytest.raises(WeightsError, match=rf"wrong shape: {key}"):
        load_state_strictly(model, state, class_name, (Path("x.safetensors"),), "a video VAE", "")
    del state[key]
    with pytest.raises(WeightsError, match=rf"missing: {key}"):
        load_state_strictly(model, state, class_name, (Path("x.safetensors"),), "a video VAE", "")
    adapter = DiffusersVideoAutoencoderBase.wrap(model, class_name)
    if class_name in PUBLISHED:
        temporal, spatial = PUBLISHED[class_name]
        multiple = 2 * temporal if class_name == "AutoencoderKLCogVideoX" else temporal
        assert (adapter.frame_multiple, adapter.frame_offset, adapter.spatial_multiple) == (
            multiple,
            1,
            spatial,
        )


def test_release_tables_and_cards() -> None:
    for cls in NAMED:
        init = set(inspect.signature(getattr(diffusers, cls.class_name).__init__).parameters) - {"self"}
        assert cls.default_variant in cls.releases
        cards = cls.cards()
        assert [c.spec for c in cards] == [f"{cls.model_name}:variant={n}" for n in cls.releases]
        for card, release in zip(cards, cls.releases.values(), strict=True):
            assert set(release.config) <= init, f"{cls.model_name} {release.name}: unknown config keys"
            shape = SHAPES[f"{cls.model_name}:{release.name}"]
            model = build_autoencoder(cls.class_name, release.config, cls.model_name, device="meta")
            adapter = cls.from_model(model, release.name)
            assert adapter.spatial_multiple == shape.spatial == card.downsampling
            assert adapter.frame_offset == 1 and (shape.frames - 1) % adapter.frame_multiple == 0
            assert card.hub_id == release.hub_id and card.kind == "continuous"
            assert card.verification == f"library: diffusers {cls.class_name}"
    assert CogVideoXVae.releases["5b"].config["scaling_factor"] == 0.7
    assert CosmosVae.cards()[0].note.startswith("8×8×8 (T×H×W), 16 channels; 121 frames at 704×1280")


# ---------------------------------------------------------------- reduced round trips vs pipelines


def pipeline_round_trip(model: torch.nn.Module, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and reconstructions (N×T×3×H×W) as each diffusers pipeline computes them, written out,
    clip by clip (as the video2world pipelines encode)."""
    if type(model).__name__ == "AutoencoderKLAllegro":
        model.enable_tiling()  # as the Allegro pipeline's example does: the class has no untiled path
    pairs = [_pipeline_round_trip(model, clip[None]) for clip in clips]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def _pipeline_round_trip(model: torch.nn.Module, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    name, config = type(model).__name__, model.config
    n, t = clips.shape[:2]
    x = (2.0 * clips - 1.0).transpose(1, 2)
    with torch.no_grad():
        if name == "AutoencoderKLTemporalDecoder":
            z = model.encode(x.transpose(1, 2).flatten(0, 1)).latent_dist.mode()
            z = z.unflatten(0, (n, t)).transpose(1, 2)
        elif name == "AutoencoderVidTok":
            padded = torch.cat([x[:, :, :1]] * 3 + [x], dim=2)
            z = model.encode(padded).latent_dist.mode()
        else:
            z = model.encode(x).latent_dist.mode()

        def view(values: object) -> torch.Tensor:
            return torch.tensor(values).view(1, -1, 1, 1, 1)

        s = getattr(config, "scaling_factor", None)
        if name in ("AutoencoderKLHunyuanVideo", "AutoencoderKLHunyuanVideo15"):
            latents, back = z * s, lambda v: v / s
        elif name in ("AutoencoderKLLTXVideo", "AutoencoderKLLTX2Video"):
            mean, std = model.latents_mean.view(1, -1, 1, 1, 1), model.latents_std.view(1, -1, 1, 1, 1)
            latents, back = (z - mean) * s / std, lambda v: v * std / s + mean
        elif name == "AutoencoderKLWan":
            mean, inverse_std = view(config.latents_mean), 1.0 / view(config.latents_std)
            latents, back = (z - mean) * inverse_std, lambda v: v / inverse_std + mean
        elif name == "AutoencoderKLMochi":
            mean, std = view(config.latents_mean), view(config.latents_std)
            latents, back = (z - mean) * s / std, lambda v: v * std / s + mean
        elif name == "AutoencoderKLCosmos":
            shape = (1, config.latent_channels, -1, 1, 1)
            frames = z.shape[2]
            mean = torch.tensor(config.latents_mean).view(shape)[:, :, :frames]
            std = torch.tensor(config.latents_std).view(shape)[:, :, :frames]
            latents, back = (z - mean) * s / std, lambda v: v * std / s + mean
        elif name == "AutoencoderVidTok":
            latents, back = z, lambda v: v
        else:  # CogVideoX, Allegro, EasyAnimate, SVD
            latents, back = s * z, lambda v: 1 / s * v
        z = back(latents)
        if name == "AutoencoderKLTemporalDecoder":
            frames = z.transpose(1, 2).flatten(0, 1).contiguous()  # as the pipeline's latents are
            video = model.decode(frames, num_frames=t).sample.unflatten(0, (n, t))
        elif name == "AutoencoderVidTok":
            video = model.decode(z).transpose(1, 2)
        elif name == "AutoencoderKLAllegro":
            video = model.decode(z).sample
        else:
            video = model.decode(z).sample.transpose(1, 2)
    return latents, (video / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize("class_name", _params(list(TINY)))
def test_reduced_model_round_trips_an_embedded_clip_as_its_pipeline(class_name: str) -> None:
    model = tiny_video_model(class_name)
    adapter = DiffusersVideoAutoencoderBase.wrap(model, class_name)
    frames, height, width = CLIP_SHAPES[class_name]
    clips = panning_clip(frames, height, width)
    original = clips.clone()
    encoded = adapter.encode(clips)
    latents, pixels = pipeline_round_trip(model, clips)
    payload, kept = encoded.payload
    assert kept == frames and torch.equal(payload, latents)
    assert encoded.num_tokens == math.prod(payload.shape[2:]) and encoded.bits is None
    decoded = adapter.decode(encoded)
    assert decoded.shape == clips.shape and decoded.dtype == torch.float32
    assert torch.equal(decoded, pixels) and torch.equal(clips, original)
    assert not torch.equal(latents, pipeline_round_trip(model, clips.flip(1))[0])  # the input matters
    described = adapter.describe()
    assert not any(described["switches"].get(s) for s in ("use_slicing", "use_framewise_encoding"))
    assert described["switches"].get("use_tiling", False) == (class_name == "AutoencoderKLAllegro")


@pytest.mark.parametrize("class_name", _params(list(TINY)))
def test_clips_that_do_not_fit_are_refused_naming_the_shape(class_name: str) -> None:
    adapter = DiffusersVideoAutoencoderBase.wrap(tiny_video_model(class_name), class_name)
    frames, height, width = CLIP_SHAPES[class_name]
    if adapter.frame_multiple > 1:
        bad = torch.rand(1, frames + 1, 3, height, width)
        with pytest.raises(ConfigError, match=rf"{class_name}: .*got torch.float32 \(1, {frames + 1}, 3,"):
            adapter.encode(bad)
    if adapter.spatial_multiple > 1 or class_name == "AutoencoderKLAllegro":
        bad = torch.rand(1, frames, 3, height + 1, width)
        with pytest.raises(ConfigError, match=rf"\(1, {frames}, 3, {height + 1}, {width}\)"):
            adapter.encode(bad)
    with pytest.raises(ConfigError, match=r"\[N, T, 3, H, W\]"):
        adapter.encode(torch.rand(1, 3, height, width))


def test_frame_rules() -> None:
    cog = DiffusersVideoAutoencoderBase.wrap(tiny_video_model("AutoencoderKLCogVideoX"), "cog")
    assert [t for t in range(1, 34) if cog.accepts_frames(t)] == [1, 9, 17, 25, 33]
    assert "T = 1 + 8k" in cog.shape_rule()
    wan = DiffusersVideoAutoencoderBase.wrap(tiny_video_model("AutoencoderKLWan"), "wan")
    assert [t for t in range(1, 8) if wan.accepts_frames(t)] == [1, 3, 5, 7]
    svd = DiffusersVideoAutoencoderBase.wrap(tiny_video_model("AutoencoderKLTemporalDecoder"), "svd")
    assert all(svd.accepts_frames(t) for t in range(1, 6))


def test_vidtok_fsq_is_discrete_with_bits() -> None:
    config = TINY["AutoencoderVidTok"] | {"regularizer": "fsq", "z_channels": 3, "codebook_size": 512}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = diffusers.AutoencoderVidTok(**config, double_z=False).eval()
    adapter = DiffusersVideoAutoencoderBase.wrap(model, "vidtok-fsq")
    clips = panning_clip(9, 32, 32, count=2)
    encoded = adapter.encode(clips)
    assert encoded.num_tokens == 3 * 8 * 8 and encoded.bits.tolist() == [3 * 8 * 8 * 9.0] * 2
    assert adapter.decode(encoded).shape == clips.shape


# ---------------------------------------------------------------------------- weights and the hub


@pytest.fixture()
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("cls", NAMED, ids=[c.model_name for c in NAMED])
def test_offline_error_names_the_hub_id_and_weights(
    cls: type[NamedVideoAutoencoder], offline_env: Path
) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model(cls.model_name)
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert cls.releases[cls.default_variant].hub_id in message and "HF_HUB_OFFLINE" in message
    assert "--weights PATH" in message and f"{cls.model_name}:variant={cls.default_variant}" in message


def test_hub_ids_are_pinned() -> None:
    assert {
        cls.model_name: {n: (r.hub_id, r.subfolder) for n, r in cls.releases.items()} for cls in NAMED
    } == {
        "cogvideox-vae": {"2b": ("THUDM/CogVideoX-2b", "vae"), "5b": ("THUDM/CogVideoX-5b", "vae")},
        "hunyuan-video-vae": {"hunyuanvideo": ("hunyuanvideo-community/HunyuanVideo", "vae")},
        "cosmos-vae": {"cv8x8x8-1.0": ("nvidia/Cosmos-1.0-Diffusion-7B-Text2World", "vae")},
        "wan-vae": {"2.1": ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "vae")},
    }


def test_generic_offline_error(offline_env: Path) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model("diffusers-video-autoencoder:repo=org/some-video,subfolder=vae")
    assert time.monotonic() - start < 5
    assert "org/some-video" in str(error.value) and "--weights PATH" in str(error.value)


@pytest.mark.parametrize(
    "class_name",
    [
        pytest.param(n, marks=[] if n in FAST_FOLDERS else [pytest.mark.slow], id=n)
        for n in TINY  # every class loads from a folder; three of them in the fast run
    ],
)
def test_generic_adapter_reads_a_folder_bit_identical_to_diffusers(class_name: str, tmp_path: Path) -> None:
    model = tiny_video_model(class_name)
    model.save_pretrained(tmp_path / "repo" / "vae")
    built = build_model(f"diffusers-video-autoencoder:repo={tmp_path / 'repo'},subfolder=vae")
    adapter = built.adapter
    assert isinstance(adapter, DiffusersVideoAutoencoder) and built.spec.endswith(adapter.weights_sha256[:12])
    clips = panning_clip(*CLIP_SHAPES[class_name], count=2)
    latents, pixels = pipeline_round_trip(model, clips)
    encoded = adapter.encode(clips)
    assert torch.equal(encoded.payload[0], latents) and torch.equal(adapter.decode(encoded), pixels)
    described = adapter.describe()
    assert described["class_name"] == class_name and described["subfolder"] == "vae"
    for key, value in described["normalisation"].items():
        expected = dict(model.named_buffers()).get(key)
        expected = expected.tolist() if expected is not None else json.loads(json.dumps(model.config[key]))
        assert value == expected


def test_named_release_loads_a_folder_and_checks_its_architecture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(
        WanVae.releases,
        "tiny",
        AutoencoderRelease("tiny", "org/tiny", "vae", TINY["AutoencoderKLWan"], 32),
    )
    monkeypatch.setitem(SHAPES, "wan-vae:tiny", SHAPES["wan-vae:2.1"])
    model = tiny_video_model("AutoencoderKLWan")
    model.register_to_config(latents_std=[1.0, 2.0, 3.0, 4.0])  # the folder's statistics win
    model.save_pretrained(tmp_path / "vae")
    loaded = build_model(f"wan-vae:variant=tiny,weights={tmp_path}").adapter
    assert loaded.describe()["normalisation"]["latents_std"] == [1.0, 2.0, 3.0, 4.0]
    clips = panning_clip(9, 32, 32)
    assert torch.equal(loaded.encode(clips).payload[0], pipeline_round_trip(model, clips)[0])
    with pytest.raises(
        WeightsError, match=r"not the 2\.1 architecture: .*base_dim=8.*diffusers-video-autoencoder"
    ):
        WanVae(weights=str(tmp_path))


def test_generic_refuses_image_classes(tmp_path: Path) -> None:
    folder = tmp_path / "kl"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="'AutoencoderKL' is not a supported diffusers video autoencoder"):
        DiffusersVideoAutoencoder(str(folder))


def test_from_model_checks_the_class() -> None:
    with pytest.raises(ConfigError, match="from_model takes a diffusers AutoencoderKLWan"):
        WanVae.from_model(tiny_video_model("AutoencoderKLCogVideoX"))


def test_ltx_compression_follows_the_block_types() -> None:
    """LTX-0.9.5-style blocks downsample space only, or time only: the declared rule follows them and
    the round trip keeps the clip's shape (the class's own attribute would say 8× time)."""
    config = TINY["AutoencoderKLLTXVideo"] | {
        "block_out_channels": [8, 16, 16],  # 0.9.5 encoders build one block fewer: spatial, temporal
        "down_block_types": ["LTXVideo095DownBlock3D"] * 3,
        "downsample_type": ["spatial", "temporal", "conv"],
        "spatio_temporal_scaling": [True, True, True],
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = diffusers.AutoencoderKLLTXVideo(**config).eval()
    adapter = DiffusersVideoAutoencoderBase.wrap(model, "ltx-095")
    assert (adapter.frame_multiple, adapter.spatial_multiple) == (2, 4)
    assert model.temporal_compression_ratio == 8  # the class's count, not the architecture's
    clips = panning_clip(9, 32, 32)
    encoded = adapter.encode(clips)
    assert encoded.payload[0].shape[2:] == (5, 8, 8) and adapter.decode(encoded).shape == clips.shape


@pytest.mark.slow  # ~10 s: 127 M random weights on the CPU
def test_random_init_builds_the_full_release() -> None:
    adapter = build_model("wan-vae:random_init=true").adapter
    assert isinstance(adapter, WanVae) and adapter.weights_sha256 is None
    clips = panning_clip(5, 16, 16)
    encoded = adapter.encode(clips)
    assert encoded.payload[0].shape == (1, 16, 2, 2, 2) and encoded.num_tokens == 8
    assert adapter.decode(encoded).shape == clips.shape
    assert adapter.describe()["normalisation"]["latents_std"][0] == 2.8184
