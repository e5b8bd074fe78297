"""Conversions between PIL images, uint8 arrays and the float32 [0, 1] tensor convention."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def quantize_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] to uint8 by rounding to the nearest level (the recon protocol)."""
    return images.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]."""
    return images.to(torch.float32).div(255.0)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image to a float32 3×H×W tensor in [0, 1]."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode!r}")
    array = np.asarray(image, dtype=np.uint8)
    return uint8_to_float(torch.from_numpy(array.copy()).permute(2, 0, 1))


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """A float32 3×H×W tensor in [0, 1] to an RGB PIL image (rounded to uint8)."""
    array = quantize_uint8(image.detach().cpu()).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")
