"""Reduced configs of each diffusers image autoencoder class the zoo wraps: the same block types and
latent conventions as the releases, a few channels wide, for fast tests (contract, round trips, suites).

Each built model gets non-trivial normalisation statistics (BatchNorm running statistics, latent
means and standard deviations), so a test that skipped the normalisation or its inverse would see it.
"""

from __future__ import annotations

from typing import Any

import torch

TINY: dict[str, dict[str, Any]] = {
    # DC-AE in/mix structure: ResBlock levels with BatchNorm+ReLU, an EfficientViT level, pixel shuffles
    "AutoencoderDC": {
        "latent_channels": 4,
        "attention_head_dim": 8,
        "encoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock"],
        "decoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock"],
        "encoder_block_out_channels": [8, 16, 16],
        "decoder_block_out_channels": [8, 16, 16],
        "encoder_layers_per_block": [0, 1, 1],
        "decoder_layers_per_block": [0, 1, 1],
        "encoder_qkv_multiscales": [[], [], []],
        "decoder_qkv_multiscales": [[], [], []],
        "decoder_norm_types": ["batch_norm", "batch_norm", "rms_norm"],
        "decoder_act_fns": ["relu", "relu", "silu"],
        "scaling_factor": 0.3189,
    },
    "AutoencoderKLFlux2": {
        "block_out_channels": [8, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 16,
    },
    "AutoencoderKLQwenImage": {
        "base_dim": 8,
        "z_dim": 4,
        "dim_mult": [1, 2],
        "num_res_blocks": 1,
        "temperal_downsample": [False],
        "latents_mean": [0.1, -0.2, 0.3, -0.4],
        "latents_std": [1.5, 0.5, 2.0, 1.0],
    },
    "AutoencoderKLHunyuanImage": {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "block_out_channels": [32, 32],
        "layers_per_block": 1,
        "spatial_compression_ratio": 2,
        "sample_size": 16,
        "scaling_factor": 0.75289,
    },
    "AutoencoderRAE": {
        "encoder_type": "dinov2",
        "encoder_hidden_size": 64,
        "encoder_patch_size": 4,
        "encoder_num_hidden_layers": 1,
        "decoder_hidden_size": 32,
        "decoder_num_hidden_layers": 1,
        "decoder_num_attention_heads": 2,
        "decoder_intermediate_size": 64,
        "patch_size": 4,
        "encoder_input_size": 16,
        "latents_mean": [[[0.25]]] * 64,
        "latents_std": [[[2.0]]] * 64,
        "scaling_factor": 0.5,
    },
    "AutoencoderKL": {
        "block_out_channels": [8, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 16,
        "scaling_factor": 0.3611,
        "shift_factor": 0.1159,
    },
}


def tiny_model(class_name: str, seed: int = 0) -> torch.nn.Module:
    """A seeded ``class_name`` of its reduced config, eval mode, with non-trivial BatchNorm statistics."""
    import diffusers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(diffusers, class_name)(**TINY[class_name]).eval()
        generator = torch.Generator().manual_seed(seed)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(0.2 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model
