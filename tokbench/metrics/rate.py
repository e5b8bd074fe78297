"""Rate metrics: the size of a tokenizer's representation, per pixel and per image."""

from __future__ import annotations

from typing import ClassVar

import torch

from tokbench.metrics.base import MeanMetric


class BitsPerPixel(MeanMetric):
    """Mean bits per pixel of the encoded representation, relative to the input resolution."""

    key = "bits_per_pixel"
    label = "bits per pixel"
    inputs: ClassVar[tuple[str, ...]] = ("bits", "originals")
    higher_is_better = False

    def per_image(self, bits: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
        height, width = originals.shape[-2:]
        return bits.to(torch.float64) / (height * width)


class BytesPerImage(MeanMetric):
    """Mean size of the encoded representation in bytes."""

    key = "bytes_per_image"
    label = "bytes per image"
    inputs: ClassVar[tuple[str, ...]] = ("bits",)
    higher_is_better = False

    def per_image(self, bits: torch.Tensor) -> torch.Tensor:
        return bits.to(torch.float64) / 8.0
