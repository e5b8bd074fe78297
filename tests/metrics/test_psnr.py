"""PSNR against scikit-image on random and real images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from tokbench.metrics.psnr import PeakSignalNoiseRatio, psnr_per_image


def test_psnr_matches_skimage_on_random_pairs() -> None:
    generator = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (4, 3, 33, 47), generator=generator, dtype=torch.uint8)
    b = torch.randint(0, 256, (4, 3, 33, 47), generator=generator, dtype=torch.uint8)
    ours = psnr_per_image(a, b)
    for i in range(4):
        reference = peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=255)
        assert ours[i].item() == pytest.approx(reference, rel=1e-12)


def test_lossless_pair_is_infinite_and_mean_has_no_interval() -> None:
    image = torch.full((2, 3, 8, 8), 7, dtype=torch.uint8)
    metric = PeakSignalNoiseRatio()
    metric.update(image, image)
    assert metric.compute() == {"psnr": math.inf}


def test_mean_and_confidence_interval() -> None:
    metric = PeakSignalNoiseRatio()
    base = torch.zeros((1, 3, 4, 4), dtype=torch.uint8)
    values = []
    for level in (1, 2, 5, 9):
        other = torch.full_like(base, level)
        metric.update(base, other)
        values.append(10 * math.log10(255**2 / level**2))
    result = metric.compute()
    assert result["psnr"] == pytest.approx(np.mean(values), rel=1e-12)
    # t(0.975, 3) = 3.182446305284263
    expected_half_width = 3.182446305284263 * np.std(values, ddof=1) / math.sqrt(4)
    assert result["psnr_ci95"] == pytest.approx(expected_half_width, rel=1e-9)


@pytest.mark.parametrize("degrees_of_freedom", [1, 3, 29, 999, 49_999])
def test_the_ci_quantile_is_scipy_stats_t(degrees_of_freedom: int) -> None:
    from scipy.stats import t

    from tokbench.metrics.base import student_t_975

    assert student_t_975(degrees_of_freedom) == float(t.ppf(0.975, degrees_of_freedom))
