"""Weightless baselines: identity, resize, and the JPEG and WebP codecs (Pillow).

They are real rate–distortion references, not mocks: codecs report their real encoded size, so
records compare tokenizers with JPEG and WebP at equal bytes (as One-D-Piece does).
"""

from __future__ import annotations

import io
from typing import ClassVar

import torch
from PIL import Image

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.errors import ConfigError
from tokbench.tensors import pil_to_tensor, tensor_to_pil

RAW_BITS_PER_PIXEL = 24  # uint8 RGB

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


class Identity(Tokenizer):
    """Returns its input; its size is the raw uint8 RGB image (24 bits per pixel)."""

    def __init__(self) -> None:
        pass

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """The upper bound of every table: 24 bits per pixel, no loss."""
        return (ModelCard("Identity", "identity", "codec", verification="none", note="output is the input"),)

    def encode(self, images: torch.Tensor) -> Encoded:
        n, _, h, w = images.shape
        bits = torch.full((n,), float(RAW_BITS_PER_PIXEL * h * w), dtype=torch.float64)
        return Encoded(payload=images, bits=bits)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return encoded.payload


class Resize(Tokenizer):
    """Downsample by ``factor`` and upsample back (TokBench's "Resize" baseline).

    Its size is the raw uint8 RGB image at the reduced resolution.
    """

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """TokBench's Resize baseline (Pillow's resampling, Lanczos by default)."""
        return (ModelCard("Resize", "resize", "codec", verification="library: Pillow Image.resize"),)

    def __init__(self, factor: float = 2.0, filter: str = "lanczos") -> None:
        if not factor >= 1.0:
            raise ConfigError(f"resize: factor must be >= 1, got {factor}")
        if filter not in _RESAMPLING:
            raise ConfigError(f"resize: filter must be one of {sorted(_RESAMPLING)}, got {filter!r}")
        self.factor = factor
        self.filter = filter

    def encode(self, images: torch.Tensor) -> Encoded:
        resample = _RESAMPLING[self.filter]
        small, bits = [], []
        for image in images:
            pil = tensor_to_pil(image)
            size = (max(1, round(pil.width / self.factor)), max(1, round(pil.height / self.factor)))
            small.append((pil.resize(size, resample), pil.size))
            bits.append(RAW_BITS_PER_PIXEL * size[0] * size[1])
        return Encoded(payload=small, bits=torch.tensor(bits, dtype=torch.float64))

    def decode(self, encoded: Encoded) -> torch.Tensor:
        resample = _RESAMPLING[self.filter]
        return torch.stack([pil_to_tensor(small.resize(size, resample)) for small, size in encoded.payload])


class _PillowCodec(Tokenizer):
    """Encode each image to bytes with Pillow and decode them back."""

    format: ClassVar[str] = ""

    def _save_options(self) -> dict:
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> Encoded:
        payload = []
        for image in images:
            buffer = io.BytesIO()
            tensor_to_pil(image).save(buffer, format=self.format, **self._save_options())
            payload.append(buffer.getvalue())
        bits = torch.tensor([8 * len(b) for b in payload], dtype=torch.float64)
        return Encoded(payload=payload, bits=bits)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        decoded = []
        for data in encoded.payload:
            with Image.open(io.BytesIO(data)) as image:
                decoded.append(pil_to_tensor(image.convert("RGB")))
        return torch.stack(decoded)


def _check_quality(codec: str, quality: int) -> int:
    if not 0 <= quality <= 100:
        raise ConfigError(f"{codec}: quality must be in [0, 100], got {quality}")
    return quality


class Jpeg(_PillowCodec):
    """Baseline JPEG (libjpeg through Pillow) at a quality setting, 4:2:0 chroma by default."""

    format = "JPEG"

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """Baseline JPEG at quality 75, 4:2:0."""
        return (ModelCard("JPEG", "jpeg", "codec", verification="library: Pillow (libjpeg)"),)

    def __init__(self, quality: int = 75, subsampling: str = "4:2:0") -> None:
        if subsampling not in ("4:4:4", "4:2:2", "4:2:0"):
            raise ConfigError(f"jpeg: subsampling must be 4:4:4, 4:2:2 or 4:2:0, got {subsampling!r}")
        self.quality = _check_quality("jpeg", quality)
        self.subsampling = subsampling

    def _save_options(self) -> dict:
        return {"quality": self.quality, "subsampling": self.subsampling}


class WebP(_PillowCodec):
    """Lossy WebP (libwebp through Pillow) at a quality setting."""

    format = "WEBP"

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """Lossy WebP at quality 75."""
        return (ModelCard("WebP", "webp", "codec", verification="library: Pillow (libwebp)"),)

    def __init__(self, quality: int = 75, method: int = 4) -> None:
        if not 0 <= method <= 6:
            raise ConfigError(f"webp: method must be in [0, 6], got {method}")
        self.quality = _check_quality("webp", quality)
        self.method = method

    def _save_options(self) -> dict:
        return {"quality": self.quality, "method": self.method}
