"""Reduced configs of each diffusers video autoencoder class, a few channels wide, for fast tests:
the same block types, causal structure and latent conventions as the releases.

Latent statistics (LTX buffers, Wan/Mochi/Cosmos config means and deviations) are non-trivial, so a
test that skipped the normalisation or its inverse would see it.
"""

from __future__ import annotations

from typing import Any

import torch

_MEAN, _STD = [0.1, -0.2, 0.3, -0.4], [1.5, 0.5, 2.0, 1.0]
_LTX_LISTS = {
    "decoder_inject_noise": [False] * 3,
    "upsample_residual": [False, False],
    "upsample_factor": [1, 1],
}

TINY: dict[str, dict[str, Any]] = {
    "AutoencoderKLCogVideoX": {
        "down_block_types": ["CogVideoXDownBlock3D"] * 3,
        "up_block_types": ["CogVideoXUpBlock3D"] * 3,
        "block_out_channels": [8, 16, 16],
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "temporal_compression_ratio": 4,
        "scaling_factor": 0.7,
    },
    "AutoencoderKLHunyuanVideo": {
        "latent_channels": 4,
        "down_block_types": ["HunyuanVideoDownBlock3D"] * 3,
        "up_block_types": ["HunyuanVideoUpBlock3D"] * 3,
        "block_out_channels": [8, 16, 16],
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "spatial_compression_ratio": 4,
        "temporal_compression_ratio": 4,
    },
    "AutoencoderKLHunyuanVideo15": {
        "latent_channels": 4,
        "block_out_channels": [8, 16, 16],
        "layers_per_block": 1,
        "spatial_compression_ratio": 4,
        "temporal_compression_ratio": 4,
    },
    "AutoencoderKLLTXVideo": {
        "latent_channels": 8,
        "block_out_channels": [8, 16],
        "down_block_types": ["LTXVideoDownBlock3D"] * 2,
        "decoder_block_out_channels": [8, 16],
        "layers_per_block": [1, 1, 1],
        "decoder_layers_per_block": [1, 1, 1],
        "spatio_temporal_scaling": [True, False],
        "decoder_spatio_temporal_scaling": [True, False],
        "downsample_type": ["conv", "conv"],
        "patch_size": 2,
        "scaling_factor": 0.5,
        **_LTX_LISTS,
    },
    # LTX-2's block types (spatial, temporal, spatio-temporal downsampling; residual upsampling)
    "AutoencoderKLLTX2Video": {
        "latent_channels": 8,
        "block_out_channels": [8, 16, 32, 64],
        "layers_per_block": [1, 1, 1, 1, 1],
        "decoder_block_out_channels": [8, 16, 32],
        "decoder_layers_per_block": [1, 1, 1, 1],
        "spatio_temporal_scaling": [True] * 4,
        "decoder_spatio_temporal_scaling": [True] * 3,
        "decoder_inject_noise": [False] * 4,
        "upsample_residual": [True] * 3,
        "upsample_factor": [2, 2, 2],
        "patch_size": 1,
        "spatial_compression_ratio": 8,
        "temporal_compression_ratio": 8,
    },
    "AutoencoderKLWan": {
        "base_dim": 8,
        "z_dim": 4,
        "dim_mult": [1, 2, 2],
        "num_res_blocks": 1,
        "temperal_downsample": [False, True],
        "latents_mean": _MEAN,
        "latents_std": _STD,
        "scale_factor_temporal": 2,
        "scale_factor_spatial": 4,
    },
    # Mochi's group norms have 32 groups: 32 channels at least
    "AutoencoderKLMochi": {
        "encoder_block_out_channels": [32, 32],
        "decoder_block_out_channels": [32, 32],
        "latent_channels": 4,
        "layers_per_block": [1, 1, 1],
        "temporal_expansions": [2],
        "spatial_expansions": [2],
        "add_attention_block": [False, False, True],
        "latents_mean": _MEAN,
        "latents_std": _STD,
        "scaling_factor": 0.8,
    },
    # tiles of 24 frames × 128 px (Allegro's tile overlaps are fixed at 8 frames, 120 and 80 px)
    "AutoencoderKLAllegro": {
        "down_block_types": ["AllegroDownBlock3D"] * 2,
        "up_block_types": ["AllegroUpBlock3D"] * 2,
        "block_out_channels": [8, 16],
        "temporal_downsample_blocks": [True, False],
        "temporal_upsample_blocks": [False, True],
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "temporal_compression_ratio": 2,
        "sample_size": 128,
    },
    "AutoencoderKLCosmos": {
        "latent_channels": 4,
        "encoder_block_out_channels": [8, 16],
        "decode_block_out_channels": [8, 16],
        "attention_resolutions": [],
        "resolution": 32,
        "num_layers": 1,
        "patch_size": 2,
        "spatial_compression_ratio": 4,
        "temporal_compression_ratio": 4,
        # per channel and latent frame, as the release's (16 channels × 16 latent frames)
        "latents_mean": [0.05 * i for i in range(4 * 8)],
        "latents_std": [0.5 + 0.05 * i for i in range(4 * 8)],
    },
    "AutoencoderKLMagvit": {
        "latent_channels": 4,
        "block_out_channels": [8, 16, 16],
        "down_block_types": [
            "SpatialDownBlock3D",
            "SpatialTemporalDownBlock3D",
            "SpatialTemporalDownBlock3D",
        ],
        "up_block_types": ["SpatialUpBlock3D", "SpatialTemporalUpBlock3D", "SpatialTemporalUpBlock3D"],
        "layers_per_block": 1,
        "norm_num_groups": 4,
    },
    "AutoencoderVidTok": {"ch": 8, "ch_mult": [1, 2, 2], "z_channels": 4, "num_res_blocks": 1},
    "AutoencoderKLTemporalDecoder": {
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "block_out_channels": [32, 32],
        "layers_per_block": 1,
        "latent_channels": 4,
    },
}

#: A clip shape (frames, height, width) each reduced model accepts.
CLIP_SHAPES: dict[str, tuple[int, int, int]] = {name: (9, 32, 32) for name in TINY} | {
    "AutoencoderKLAllegro": (24, 128, 128),
}


def tiny_video_model(class_name: str, seed: int = 0) -> torch.nn.Module:
    """A seeded ``class_name`` of its reduced config, eval mode (LTX: non-trivial latent buffers)."""
    import diffusers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(diffusers, class_name)(**TINY[class_name]).eval()
        buffers = dict(model.named_buffers())
        if "latents_mean" in buffers:
            channels = buffers["latents_mean"].shape[0]
            buffers["latents_mean"].copy_(torch.linspace(-0.3, 0.3, channels))
            buffers["latents_std"].copy_(torch.linspace(0.5, 2.0, channels))
    return model
