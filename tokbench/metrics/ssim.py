"""SSIM (Wang et al. 2004) and MS-SSIM (Wang et al. 2003) on uint8 images, in float64.

``SSIM`` defaults reproduce scikit-image's ``structural_similarity(data_range=255,
channel_axis=...)``: a 7×7 uniform window, sample covariances, the mean over the region where the
window fits, then the mean over channels. ``gaussian=True`` gives the 11×11, σ = 1.5 Gaussian window
of the original paper. MS-SSIM uses the paper's five scales and exponents with the Gaussian window.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.base import MeanMetric

K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
GAUSSIAN_SIGMA = 1.5
GAUSSIAN_SIZE = 11  # scikit-image: 2 * int(3.5 * sigma + 0.5) + 1
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _profile(size: int, gaussian: bool, device: torch.device) -> torch.Tensor:
    """The 1D window whose outer product with itself is the 2D SSIM window (it is separable)."""
    if gaussian:
        offsets = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
        profile = torch.exp(-(offsets**2) / (2 * GAUSSIAN_SIGMA**2))
    else:
        profile = torch.ones(size, dtype=torch.float64, device=device)
    return profile / profile.sum()


def _filter_valid(images: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering along H then W by weighted sums of shifted views.

    Far faster than a float64 depthwise conv2d on CPU, and the same values up to round-off.
    """
    weights = profile.tolist()
    size = len(weights)
    height, width = images.shape[-2:]
    rows = images[..., : height - size + 1, :] * weights[0]
    for i in range(1, size):
        rows.add_(images[..., i : height - size + 1 + i, :], alpha=weights[i])
    out = rows[..., : width - size + 1] * weights[0]
    for i in range(1, size):
        out.add_(rows[..., i : width - size + 1 + i], alpha=weights[i])
    return out


def ssim_components(
    x: torch.Tensor, y: torch.Tensor, profile: torch.Tensor, sample_covariance: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel means of the SSIM map and of its contrast–structure term, each N×C."""
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    channels = x.shape[1]
    filtered = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), profile)
    mu_x, mu_y, xx, yy, xy = filtered.split(channels, dim=1)
    n_points = profile.numel() ** 2
    covariance_scale = n_points / (n_points - 1) if sample_covariance else 1.0
    var_x = covariance_scale * (xx - mu_x * mu_x)
    var_y = covariance_scale * (yy - mu_y * mu_y)
    cov_xy = covariance_scale * (xy - mu_x * mu_y)
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * contrast_structure).mean(dim=(2, 3)), contrast_structure.mean(dim=(2, 3))


def _image_by_image(
    per_image: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    originals: torch.Tensor,
    reconstructions: torch.Tensor,
) -> torch.Tensor:
    """``per_image`` over the batch, one image at a time on the CPU (whole batch on a GPU).

    The float64 maps of a whole batch overflow the CPU caches: one image at a time is 4-6× faster
    (``benchmarks/RESULTS.md``) and gives bitwise the same values, since every image is computed alone.
    """
    if originals.device.type != "cpu" or originals.shape[0] <= 1:
        return per_image(originals, reconstructions)
    pairs = zip(originals.split(1), reconstructions.split(1), strict=True)
    return torch.cat([per_image(x, y) for x, y in pairs])


def ssim_per_image(
    originals: torch.Tensor, reconstructions: torch.Tensor, gaussian: bool = False
) -> torch.Tensor:
    """SSIM of each pair of N×C×H×W uint8 images, averaged over channels."""
    size = GAUSSIAN_SIZE if gaussian else 7
    _check_size(originals, size, "SSIM")
    return _image_by_image(partial(_ssim_batch, gaussian=gaussian), originals, reconstructions)


def _ssim_batch(originals: torch.Tensor, reconstructions: torch.Tensor, gaussian: bool) -> torch.Tensor:
    size = GAUSSIAN_SIZE if gaussian else 7
    profile = _profile(size, gaussian, originals.device)
    ssim, _ = ssim_components(
        originals.to(torch.float64), reconstructions.to(torch.float64), profile, sample_covariance=True
    )
    return ssim.mean(dim=1)


def ms_ssim_min_side() -> int:
    """Smallest image side MS-SSIM accepts: the window must fit at the coarsest of five scales."""
    return (GAUSSIAN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def ms_ssim_per_image(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of each pair of N×C×H×W uint8 images, averaged over channels.

    Contrast–structure terms at the four finer scales and SSIM at the coarsest are clamped at 0
    before the weighted product, as in pytorch-msssim, so negative terms cannot flip the sign.
    """
    _check_size(originals, ms_ssim_min_side(), "MS-SSIM")
    return _image_by_image(_ms_ssim_batch, originals, reconstructions)


def _ms_ssim_batch(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    profile = _profile(GAUSSIAN_SIZE, True, originals.device)
    x, y = originals.to(torch.float64), reconstructions.to(torch.float64)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=x.device)
    terms = []
    for scale in range(len(MS_SSIM_WEIGHTS)):
        ssim, contrast_structure = ssim_components(x, y, profile, sample_covariance=False)
        if scale < len(MS_SSIM_WEIGHTS) - 1:
            terms.append(contrast_structure.clamp(min=0))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        else:
            terms.append(ssim.clamp(min=0))
    stacked = torch.stack(terms, dim=0)  # scales × N × C
    return torch.prod(stacked ** weights[:, None, None], dim=0).mean(dim=1)


def _check_size(images: torch.Tensor, minimum: int, metric: str) -> None:
    height, width = images.shape[-2:]
    if min(height, width) < minimum:
        raise TokbenchError(f"{metric} needs images of at least {minimum}×{minimum} px, got {height}×{width}")


class StructuralSimilarity(MeanMetric):
    """Mean per-image SSIM between uint8 originals and reconstructions."""

    key = "ssim"
    label = "SSIM"
    inputs: ClassVar[tuple[str, ...]] = ("originals", "reconstructions")
    higher_is_better = True

    def __init__(self, gaussian: bool = False) -> None:
        super().__init__()
        if not isinstance(gaussian, bool):
            raise ConfigError(f"ssim: gaussian must be true or false, got {gaussian!r}")
        self.gaussian = gaussian

    def options(self) -> dict[str, bool]:
        return {"gaussian": self.gaussian}

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        return ssim_per_image(originals, reconstructions, self.gaussian)


class MultiScaleStructuralSimilarity(MeanMetric):
    """Mean per-image MS-SSIM; images below the minimum side are counted as not applicable."""

    key = "ms_ssim"
    label = "MS-SSIM"
    inputs: ClassVar[tuple[str, ...]] = ("originals", "reconstructions")
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("too_small_count", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> None:
        if min(originals.shape[-2:]) < ms_ssim_min_side():
            self.too_small_count = self.too_small_count + originals.shape[0]
            return
        super().update(originals, reconstructions)

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        return ms_ssim_per_image(originals, reconstructions)

    def compute(self) -> dict[str, float]:
        if not self.values and int(self.too_small_count) > 0:
            return {}
        return super().compute()
