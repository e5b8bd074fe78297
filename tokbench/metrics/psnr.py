"""Peak signal-to-noise ratio on uint8 images, one value per image, averaged over images."""

from __future__ import annotations

from typing import ClassVar

import torch

from tokbench.metrics.base import MeanMetric

UINT8_PEAK = 255.0


def psnr_per_image(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each pair of N×C×H×W uint8 images (data range 255), as scikit-image defines it.

    A lossless pair has infinite PSNR.
    """
    difference = originals.to(torch.float64) - reconstructions.to(torch.float64)
    mse = difference.square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(UINT8_PEAK**2 / mse)


class PeakSignalNoiseRatio(MeanMetric):
    """Mean per-image PSNR (dB) between uint8 originals and uint8 reconstructions."""

    key = "psnr"
    label = "PSNR"
    unit = "dB"
    inputs: ClassVar[tuple[str, ...]] = ("originals", "reconstructions")
    higher_is_better = True

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        return psnr_per_image(originals, reconstructions)
