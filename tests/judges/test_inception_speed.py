"""The Inception judge's CPU speed paths: sub-batching is bit-exact, ``fast`` is close and recorded."""

from __future__ import annotations

import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.judges.inception import CPU_SUB_BATCH, InceptionV3TF


def _images(count: int) -> torch.Tensor:
    coarse = torch.rand((count, 3, 8, 8), generator=torch.Generator().manual_seed(7))
    smooth = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear")
    return (smooth * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def exact() -> InceptionV3TF:
    return InceptionV3TF()


def test_sub_batches_do_not_change_a_bit(exact: InceptionV3TF) -> None:
    images = _images(CPU_SUB_BATCH + 2)
    together = exact(images)["pool3"]
    one_by_one = torch.cat([exact(image[None])["pool3"] for image in images])
    assert torch.equal(together, one_by_one)


def test_fast_path_is_close_and_recorded(exact: InceptionV3TF) -> None:
    fast = InceptionV3TF(fast=True)
    images = _images(3)
    reference, approximate = exact(images)["pool3"], fast(images)["pool3"]
    torch.testing.assert_close(approximate, reference, rtol=1e-4, atol=1e-4)
    assert fast.describe()["fast"] is True and "fast" not in exact.describe()
    with pytest.raises(ConfigError, match="fast must be true or false"):
        InceptionV3TF(fast="yes")
