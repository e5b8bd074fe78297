"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def tiny_titok() -> Callable[..., object]:
    """A factory of tiny random TiTok adapters (32×32 images, 8 tokens; codebook of 64 for VQ)."""
    from tokbench.models.titok import TiTok, TiTokConfig, TiTokModel, ViTConfig

    vit = ViTConfig(32, 1, 2, 16)

    def make(mode: str = "vq", use_l2_norm: bool = False) -> TiTok:
        if mode == "vq":
            config = TiTokConfig(32, vit, vit, 8, 8, "vq", 64, use_l2_norm)
        else:
            config = TiTokConfig(32, vit, vit, 8, 8, "vae")
        return TiTok.from_model(TiTokModel.random_init(config, seed=0), name=f"tiny-{mode}")

    return make
