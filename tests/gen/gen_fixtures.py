"""Helpers of the gen tests (also imported by spawned worker processes): a tiny random DiT of the
real diffusers structure, a cheap stand-in judge, a counting generator and a tiny reference batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokbench.adapters.base import Generator
from tokbench.errors import WeightsError
from tokbench.judges.base import Judge

#: The head of the tiny gen suites (8 samples of 4 classes in shards of 3); judges and metrics follow.
SUITE_HEAD = """
name: {name}
version: "1"
kind: generator
track: gen
settings: {{num_samples: 8, num_classes: 4, shard_size: 3}}
"""
TINY_SUITE = (
    SUITE_HEAD
    + """judges:
  inception: {{name: {judge}, options: {{{options}outputs: [pool3, logits_unbiased]}}}}
metrics:
  - {{name: fid, judge: inception, key: gfid}}
  - {{name: inception-score, judge: inception, options: {{splits: 2}}}}
  - {{name: precision-recall, judge: inception, options: {{k: 3}}}}
"""
)


def tiny_modules(layers: int = 1, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """DiT-XL/2's transformer and the SD VAE configs shrunk: 1 layer of 2×8 heads on an 8×8 latent,
    a 3-level VAE (8, 16, 16 channels), so samples are 32×32."""
    from diffusers import AutoencoderKL, DiTTransformer2DModel

    from tokbench.models.diffusers_vae import VARIANTS
    from tokbench.models.dit import transformer_config

    config = transformer_config(8)
    config.update(num_layers=layers, num_attention_heads=2, attention_head_dim=8)
    vae_config = dict(VARIANTS["sd-ft-ema"].config)
    vae_config.update(
        block_out_channels=[8, 16, 16],
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = DiTTransformer2DModel(**config)
        for parameter in transformer.parameters():  # DiT zero-initialises its adaLN and output layers
            parameter.data.normal_(0.0, 0.05)
        vae = AutoencoderKL(**vae_config)
    return transformer, vae


class CountingGenerator(Generator):
    """Wraps a generator; counts ``sample`` calls and raises after ``fail_after`` of them (a kill)."""

    def __init__(self, inner: Generator, fail_after: int | None = None):
        self.inner, self.fail_after, self.calls = inner, fail_after, 0
        self.sampling_settings = inner.sampling_settings

    @property
    def weights_sha256(self) -> str | None:
        return self.inner.weights_sha256

    @property
    def num_classes(self) -> int | None:
        return self.inner.num_classes

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()

    def to(self, device):
        self.inner.to(device)
        return self

    def sample(self, conditions, seeds):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        return self.inner.sample(conditions, seeds)


def write_reference(
    path: Path, images: int = 8, width: int = 2048, keys: tuple[str, ...] = ("mu", "sigma", "arr_0")
) -> Path:
    """An ADM-style reference batch: statistics of random features and random 32×32 uint8 images."""
    rng = np.random.default_rng(7)
    features = rng.normal(0.3, 0.2, size=(16, width))
    arrays = {
        "mu": features.mean(axis=0),
        "sigma": np.cov(features, rowvar=False),
        "arr_0": rng.integers(0, 256, size=(images, 32, 32, 3), dtype=np.uint8),
    }
    np.savez(path, **{key: arrays[key] for key in keys})
    return path


class ProjectionJudge(Judge):
    """A cheap stand-in for Inception (the track's logic does not depend on the network): 2048-d
    "pool3" = a fixed random projection of 4×4-pooled pixels, 1008 "logits" from another one.
    With ``logits_available=False`` asking for logits raises ``WeightsError``, as Inception offline."""

    name = "projection"

    def __init__(self, outputs=("pool3",), logits_available: bool = True):
        super().__init__()
        if "logits_unbiased" in outputs and not logits_available:
            raise WeightsError("projection: no classifier weights (test)")
        self.outputs = tuple(outputs)
        generator = torch.Generator().manual_seed(0)
        self.features = torch.nn.Parameter(torch.randn(48, 2048, generator=generator), requires_grad=False)
        self.classifier = torch.nn.Parameter(
            torch.randn(2048, 1008, generator=generator) / 40, requires_grad=False
        )

    @property
    def device(self) -> torch.device:
        return self.features.device

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "outputs": list(self.outputs)}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)
        features = pooled @ self.features
        result = {"pool3": features}
        if "logits_unbiased" in self.outputs:
            result["logits_unbiased"] = features @ self.classifier
        return result


def register_projection() -> None:
    """Make ``projection`` a judge of the global registry (a fresh process, or a test that removes it)."""
    from tokbench.judges.registry import JUDGES

    JUDGES.register("projection", ProjectionJudge)


class NoiseGenerator(Generator):
    """A weightless generator for process tests (no diffusers import): each image is uniform noise
    from its own seed, brightened by its class."""

    sampling_settings = ("brightness",)

    def __init__(self, brightness: float = 0.1):
        self.brightness = brightness

    @property
    def weights_sha256(self) -> str | None:
        return "0" * 64

    @property
    def num_classes(self) -> int:
        return 10

    def sample(self, conditions, seeds):
        images = [torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in seeds]
        shift = torch.tensor([c * self.brightness for c in conditions]).view(-1, 1, 1, 1)
        return (torch.stack(images) * 0.5 + shift).clamp(0.0, 1.0)
