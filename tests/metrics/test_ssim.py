"""SSIM against scikit-image, MS-SSIM against pytorch-msssim."""

from __future__ import annotations

import pytest
import torch
from pytorch_msssim import ms_ssim as reference_ms_ssim
from skimage.metrics import structural_similarity

from tokbench.errors import TokbenchError
from tokbench.metrics.ssim import (
    MultiScaleStructuralSimilarity,
    _ms_ssim_batch,
    _ssim_batch,
    ms_ssim_min_side,
    ms_ssim_per_image,
    ssim_per_image,
)


def _pair(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(
        torch.rand((shape[0], 3, shape[2] // 4, shape[3] // 4), generator=generator), size=shape[2:]
    )
    a = (smooth * 255).round().to(torch.uint8)
    noise = torch.randint(-25, 26, shape, generator=generator)
    b = (a.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)
    return a, b


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_matches_skimage(gaussian: bool) -> None:
    a, b = _pair((3, 3, 40, 57), seed=1)
    ours = ssim_per_image(a, b, gaussian=gaussian)
    for i in range(3):
        reference = structural_similarity(
            a[i].permute(1, 2, 0).numpy(),
            b[i].permute(1, 2, 0).numpy(),
            data_range=255,
            channel_axis=-1,
            gaussian_weights=gaussian,
            sigma=1.5,
        )
        assert ours[i].item() == pytest.approx(reference, abs=1e-10)


def test_ssim_of_identical_images_is_one() -> None:
    a, _ = _pair((1, 3, 16, 16), seed=2)
    assert ssim_per_image(a, a).item() == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_matches_pytorch_msssim() -> None:
    a, b = _pair((2, 3, 192, 256), seed=3)
    ours = ms_ssim_per_image(a, b)
    reference = reference_ms_ssim(
        a.to(torch.float64), b.to(torch.float64), data_range=255, size_average=False, win_size=11
    )
    # pytorch-msssim builds its Gaussian window in float32 before casting; ours is float64.
    torch.testing.assert_close(ours, reference, rtol=1e-7, atol=0)


def test_ms_ssim_too_small_is_not_applicable_not_an_error() -> None:
    side = ms_ssim_min_side() - 1
    a, b = _pair((1, 3, side + 3, side + 3), seed=4)
    small = a[..., :side, :side]
    with pytest.raises(TokbenchError, match="at least 161"):
        ms_ssim_per_image(small, small)
    metric = MultiScaleStructuralSimilarity()
    metric.update(small, b[..., :side, :side])
    assert metric.compute() == {}


@pytest.mark.parametrize("per_image", [ssim_per_image, ms_ssim_per_image], ids=["ssim", "ms_ssim"])
def test_image_by_image_on_cpu_is_bitwise_the_whole_batch(per_image) -> None:
    a, b = _pair((5, 3, 176, 192), seed=5)
    batch = {ssim_per_image: _ssim_batch, ms_ssim_per_image: _ms_ssim_batch}[per_image]
    whole = batch(a, b, gaussian=False) if per_image is ssim_per_image else batch(a, b)
    assert torch.equal(per_image(a, b), whole)
