"""Named releases of diffusers video autoencoders, the TokBench-Video rows: CogVideoX
(``cogvideox-vae``), HunyuanVideo (``hunyuan-video-vae``), Cosmos (``cosmos-vae``) and Wan 2.1
(``wan-vae``), each with the config of its hub release embedded, so the real architecture builds
offline (random weights, for tests) and a weights file is checked against it.

A release's config.json, when the weights come with one, must match the embedded architecture; its
latent-normalisation factors are the ones used and recorded. No hub revision could be pinned here
(no network): each load records the resolved commit and the weights' sha256.

TokBench-Video's Cosmos row is the 4×8×8 Cosmos-Tokenizer (TorchScript files, not a diffusers
model); the diffusers Cosmos VAE is the 8×8×8 one of Cosmos-1.0's diffusion pipelines, offered here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokbench.adapters.base import ModelCard
from tokbench.models.diffusers_autoencoder_zoo import WAN21_VAE, AutoencoderRelease, NamedRelease
from tokbench.models.video_vaes import VIDEO_CONVENTIONS, DiffusersVideoAutoencoderBase


@dataclass(frozen=True)
class VideoShape:
    """A release's compression and the clip its pipeline makes, for its model card."""

    temporal: int
    spatial: int
    channels: int
    frames: int
    height: int
    width: int

    def note(self) -> str:
        """``4×8×8 (T×H×W), 16 channels; 49 frames at 480×720 → 13×60×90 latents``."""
        t = (self.frames - 1) // self.temporal + 1
        return (
            f"{self.temporal}×{self.spatial}×{self.spatial} (T×H×W), {self.channels} channels; "
            f"{self.frames} frames at {self.height}×{self.width} → "
            f"{t}×{self.height // self.spatial}×{self.width // self.spatial} latents"
        )


#: CogVideoX's VAE (the 2b and 5b releases share the architecture; only scaling_factor differs).
_COGVIDEOX = {
    "down_block_types": ["CogVideoXDownBlock3D"] * 4,
    "up_block_types": ["CogVideoXUpBlock3D"] * 4,
    "block_out_channels": [128, 256, 256, 512],
    "latent_channels": 16,
    "layers_per_block": 3,
    "norm_num_groups": 32,
    "norm_eps": 1e-6,
    "temporal_compression_ratio": 4,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}
COGVIDEOX: dict[str, AutoencoderRelease] = {
    r.name: r
    for r in (
        AutoencoderRelease(
            "2b", "THUDM/CogVideoX-2b", "vae", {**_COGVIDEOX, "scaling_factor": 1.15258426}, 480, "Apache-2.0"
        ),
        AutoencoderRelease(
            "5b", "THUDM/CogVideoX-5b", "vae", {**_COGVIDEOX, "scaling_factor": 0.7}, 480, "CogVideoX License"
        ),
    )
}

#: HunyuanVideo's causal 3-D VAE (diffusers' conversion in the community repository).
_HUNYUAN = {
    "latent_channels": 16,
    "down_block_types": ["HunyuanVideoDownBlock3D"] * 4,
    "up_block_types": ["HunyuanVideoUpBlock3D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "scaling_factor": 0.476986,
    "spatial_compression_ratio": 8,
    "temporal_compression_ratio": 4,
    "mid_block_add_attention": True,
}
HUNYUAN_VIDEO = {
    "hunyuanvideo": AutoencoderRelease(
        "hunyuanvideo",
        "hunyuanvideo-community/HunyuanVideo",
        "vae",
        _HUNYUAN,
        720,
        "Tencent Hunyuan Community License",
    )
}

#: Cosmos-1.0's continuous video tokenizer CV8x8x8 (latent statistics: the class defaults, the release's).
_COSMOS = {
    "latent_channels": 16,
    "encoder_block_out_channels": [128, 256, 512, 512],
    "decode_block_out_channels": [256, 512, 512, 512],
    "attention_resolutions": [32],
    "resolution": 1024,
    "num_layers": 2,
    "patch_size": 4,
    "patch_type": "haar",
    "scaling_factor": 1.0,
    "spatial_compression_ratio": 8,
    "temporal_compression_ratio": 8,
}
COSMOS = {
    "cv8x8x8-1.0": AutoencoderRelease(
        "cv8x8x8-1.0",
        "nvidia/Cosmos-1.0-Diffusion-7B-Text2World",
        "vae",
        _COSMOS,
        704,
        "NVIDIA Open Model License",
    )
}

#: Wan 2.1's causal 3-D VAE (shared by the 1.3B and 14B models; latent statistics: the class defaults).
_WAN = {**WAN21_VAE, "is_residual": False, "patch_size": None}
WAN = {"2.1": AutoencoderRelease("2.1", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "vae", _WAN, 480, "Apache-2.0")}

#: Compression and pipeline clip of each release (model cards; checked against the built classes).
SHAPES: dict[str, VideoShape] = {
    "cogvideox-vae:2b": VideoShape(4, 8, 16, 49, 480, 720),
    "cogvideox-vae:5b": VideoShape(4, 8, 16, 49, 480, 720),
    "hunyuan-video-vae:hunyuanvideo": VideoShape(4, 8, 16, 129, 720, 1280),
    "cosmos-vae:cv8x8x8-1.0": VideoShape(8, 8, 16, 121, 704, 1280),
    "wan-vae:2.1": VideoShape(4, 8, 16, 81, 480, 832),
}


class NamedVideoAutoencoder(NamedRelease, DiffusersVideoAutoencoderBase):
    """A named hub release of a diffusers video autoencoder (arguments: ``NamedRelease``)."""

    conventions = VIDEO_CONVENTIONS
    generic_model = "diffusers-video-autoencoder"

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per release: spatial downsampling, and in the note the compression and clip."""
        shapes = [(release, SHAPES[f"{cls.model_name}:{release.name}"]) for release in cls.releases.values()]
        return tuple(cls.release_card(r, downsampling=s.spatial, note=s.note()) for r, s in shapes)


class CogVideoXVae(NamedVideoAutoencoder):
    """CogVideoX's 3-D causal VAE (Yang et al., CogVideoX, ICLR 2025) through ``AutoencoderKLCogVideoX``."""

    model_name, family, class_name = "cogvideox-vae", "CogVideoX VAE", "AutoencoderKLCogVideoX"
    releases, default_variant = COGVIDEOX, "2b"


class HunyuanVideoVae(NamedVideoAutoencoder):
    """HunyuanVideo's causal 3-D VAE (Kong et al., HunyuanVideo, 2024) through diffusers'
    ``AutoencoderKLHunyuanVideo``."""

    model_name, family, class_name = "hunyuan-video-vae", "HunyuanVideo VAE", "AutoencoderKLHunyuanVideo"
    releases, default_variant = HUNYUAN_VIDEO, "hunyuanvideo"


class CosmosVae(NamedVideoAutoencoder):
    """Cosmos-1.0's continuous video tokenizer CV8x8x8 (NVIDIA, Cosmos World Foundation Model Platform,
    2025) through ``AutoencoderKLCosmos``."""

    model_name, family, class_name = (
        "cosmos-vae",
        "Cosmos tokenizer (continuous video)",
        "AutoencoderKLCosmos",
    )
    releases, default_variant = COSMOS, "cv8x8x8-1.0"


class WanVae(NamedVideoAutoencoder):
    """Wan 2.1's causal 3-D VAE (Wan team, Wan: Open and Advanced Large-Scale Video Generative Models,
    2025) through ``AutoencoderKLWan``."""

    model_name, family, class_name = "wan-vae", "Wan-VAE", "AutoencoderKLWan"
    releases, default_variant = WAN, "2.1"
