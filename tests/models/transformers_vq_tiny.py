"""Tiny configs of the transformers VQ-VAEs (chameleon-vq, emu3-vq, janus-vq) for offline tests: the
library's classes at a few channels, random seeded weights."""

from __future__ import annotations

from typing import Any

#: The golden's tiny LlamaGen VQ-16 (reference/llamagen_vq README, "Tiny reference models").
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "janus-vq": {
        "base_channels": 32,
        "channel_multiplier": [1, 1, 1, 1, 2],
        "num_res_blocks": 1,
        "latent_channels": 32,
        "embed_dim": 8,
        "num_embeddings": 1024,
        "num_patches": 2,
    },
    "chameleon-vq": {
        "base_channels": 32,
        "channel_multiplier": [1, 1, 2],
        "num_res_blocks": 1,
        "latent_channels": 32,
        "embed_dim": 8,
        "num_embeddings": 64,
    },
    "emu3-vq": {
        "base_channels": 32,
        "channel_multiplier": [1, 1, 2],
        "num_res_blocks": 1,
        "latent_channels": 4,
        "embed_dim": 4,
        "codebook_size": 64,
        "attn_resolutions": [2],
        "hidden_size": 64,  # the attention width: the channels of the attended level
    },
}


def tiny_transformers_vq(name: str) -> Any:
    """The registered adapter ``name`` at its tiny config with seeded random weights."""
    from tokbench.adapters.registry import MODELS

    return MODELS.get(name).from_config(TINY_CONFIGS[name], random_init=True)
