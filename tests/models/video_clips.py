"""Small natural-content clips for video tokenizer tests: an embedded photo panned across frames."""

from __future__ import annotations

import functools

import torch

from tokbench.data.embedded import EmbeddedDataset
from tokbench.tensors import pil_to_tensor


@functools.cache
def _photo(side: int) -> torch.Tensor:
    """The first embedded photo (scikit-image's astronaut) as a float32 3×side×(2·side) tensor."""
    image = EmbeddedDataset().items()[0].load()
    return pil_to_tensor(image.convert("RGB").resize((2 * side, side)))


def panning_clip(frames: int = 9, height: int = 32, width: int = 32, count: int = 1) -> torch.Tensor:
    """float32 count×frames×3×height×width in [0, 1]: a window sliding right one pixel a frame over an
    embedded photo (clip i starts i·3 pixels further right)."""
    photo = _photo(max(height, width))
    clips = [
        torch.stack([photo[:, :height, 3 * i + t : 3 * i + t + width] for t in range(frames)])
        for i in range(count)
    ]
    return torch.stack(clips).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [0, 1] tensors over every value."""
    return float(10 * torch.log10(1.0 / torch.mean((a.double() - b.double()) ** 2)))
