"""Bits per pixel and bytes per image."""

from __future__ import annotations

import pytest
import torch

from tokbench.metrics.rate import BitsPerPixel, BytesPerImage


def test_bits_per_pixel_uses_the_input_resolution() -> None:
    originals = torch.zeros((2, 3, 10, 20), dtype=torch.uint8)
    metric = BitsPerPixel()
    metric.update(torch.tensor([200.0, 600.0], dtype=torch.float64), originals)
    assert metric.compute()["bits_per_pixel"] == pytest.approx((1.0 + 3.0) / 2)


def test_bytes_per_image() -> None:
    metric = BytesPerImage()
    metric.update(torch.tensor([80.0, 160.0], dtype=torch.float64))
    assert metric.compute()["bytes_per_image"] == pytest.approx(15.0)
