"""Video metrics on uint8 N×T×3×H×W clips: the image metrics per frame, rate per frame, temporal error.

Frame metrics (``video-psnr``, ``video-ssim``, ``video-lpips``) run the image metric's ``per_image`` on
every frame, average over the clip's frames, and the clip values are then averaged with the image
metrics' 95% CI (so the CI is over clips, the unit of sampling). A clip with one lossless frame has
an infinite PSNR, as an image would.

Temporal consistency (``temporal-difference-error``): the mean absolute difference between the
originals' and the reconstructions' frame-to-frame changes, ``mean |(x[t+1] − x[t]) − (y[t+1] − y[t])|``
over pixels, channels and the T − 1 steps, in uint8 units. It is the pixel-space member of the
family of temporal metrics of TecoGAN (Chu et al., "Learning Temporal Coherence via Self-Supervision
for GAN-based Video Generation", ACM TOG 2020, §5: tOF compares optical flows, tLP compares LPIPS
between consecutive frames): no flow network, zero for a perfect copy and for any reconstruction
whose error is constant in time, large for flicker. ``video-tlp`` is TecoGAN's tLP itself with the
suite's LPIPS judge: ``mean |LPIPS(x[t], x[t+1]) − LPIPS(y[t], y[t+1])|``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tokbench.errors import ConfigError
from tokbench.metrics.base import MeanMetric
from tokbench.metrics.lpips import LearnedPerceptualImagePatchSimilarity
from tokbench.metrics.psnr import PeakSignalNoiseRatio
from tokbench.metrics.rate import BitsPerPixel
from tokbench.metrics.ssim import StructuralSimilarity


def _check_clips(originals: torch.Tensor, reconstructions: torch.Tensor, metric: str) -> None:
    if originals.dim() != 5 or originals.shape != reconstructions.shape:
        raise ConfigError(
            f"{metric} takes two N×T×3×H×W clip batches of one shape, got {tuple(originals.shape)} and "
            f"{tuple(reconstructions.shape)}"
        )


class _PerFrame:
    """Mixin: the image metric's ``per_image`` on every frame, averaged over each clip's frames."""

    #: The metric takes N×T×3×H×W clips (tests and tracks feed it clips, not images).
    takes_clips: ClassVar[bool] = True

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        _check_clips(originals, reconstructions, type(self).__name__)
        clips, frames = originals.shape[:2]
        values = super().per_image(originals.flatten(0, 1), reconstructions.flatten(0, 1))  # type: ignore[misc]
        return values.to(torch.float64).reshape(clips, frames).mean(dim=1)


class VideoPeakSignalNoiseRatio(_PerFrame, PeakSignalNoiseRatio):
    """PSNR per frame, averaged over frames, then over clips."""

    key = "frame_psnr"
    label = "PSNR (per frame)"


class VideoStructuralSimilarity(_PerFrame, StructuralSimilarity):
    """SSIM per frame, averaged over frames, then over clips."""

    key = "frame_ssim"
    label = "SSIM (per frame)"


class VideoLearnedPerceptualImagePatchSimilarity(_PerFrame, LearnedPerceptualImagePatchSimilarity):
    """LPIPS per frame, averaged over frames, then over clips."""

    key = "frame_lpips"
    label = "LPIPS (per frame)"


class VideoBitsPerPixel(BitsPerPixel):
    """Bits per pixel of each frame: a clip's bits over T·H·W, averaged over clips."""

    key = "frame_bits_per_pixel"
    label = "bits per pixel (per frame)"
    takes_clips: ClassVar[bool] = True

    def per_image(self, bits: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
        frames, _, height, width = originals.shape[-4:]
        return bits.to(torch.float64) / (frames * height * width)


class TemporalDifferenceError(MeanMetric):
    """Mean |(x[t+1] − x[t]) − (y[t+1] − y[t])| per clip (uint8 units), averaged over clips."""

    key = "temporal_difference_error"
    label = "temporal difference error"
    unit = "uint8 levels"
    takes_clips: ClassVar[bool] = True
    inputs: ClassVar[tuple[str, ...]] = ("originals", "reconstructions")
    higher_is_better = False

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        _check_clips(originals, reconstructions, "temporal-difference-error")
        if originals.shape[1] < 2:
            raise ConfigError("temporal-difference-error needs clips of at least 2 frames")
        x, y = originals.to(torch.float64), reconstructions.to(torch.float64)
        change = (x[:, 1:] - x[:, :-1]) - (y[:, 1:] - y[:, :-1])
        return change.abs().flatten(1).mean(dim=1)


class TemporalLpips(LearnedPerceptualImagePatchSimilarity):
    """TecoGAN's tLP: mean over steps of |LPIPS(x[t], x[t+1]) − LPIPS(y[t], y[t+1])|, over clips."""

    key = "tlp"
    label = "tLP"
    takes_clips: ClassVar[bool] = True

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        _check_clips(originals, reconstructions, "video-tlp")
        if originals.shape[1] < 2:
            raise ConfigError("video-tlp needs clips of at least 2 frames")
        clips, frames = originals.shape[:2]
        steps = [self._steps(clip) for clip in (originals, reconstructions)]
        return (steps[0] - steps[1]).abs().reshape(clips, frames - 1).mean(dim=1)

    def _steps(self, clips: torch.Tensor) -> torch.Tensor:
        """LPIPS between consecutive frames, (N·(T−1)) values."""
        return self.judge.distance(clips[:, :-1].flatten(0, 1), clips[:, 1:].flatten(0, 1)).to(
            "cpu", torch.float64
        )
