"""Contract test over every registered built-in model, and codec-specific behaviour."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from tokbench.adapters import MODELS, Tokenizer, build_model
from tokbench.errors import ConfigError
from tokbench.tensors import quantize_uint8

BUILTINS = ["identity", "resize", "jpeg", "webp"]


def _images(n: int = 3, side: int = 64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand((n, 3, side // 8, side // 8), generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear").clamp(0, 1)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_contract(name: str) -> None:
    assert name in MODELS.names()
    tokenizer = build_model(name).adapter
    assert isinstance(tokenizer, Tokenizer)
    images = _images()
    encoded = tokenizer.encode(images)
    decoded = tokenizer.decode(encoded)
    assert decoded.dtype == torch.float32
    assert decoded.shape == images.shape
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1
    assert encoded.bits is not None and encoded.bits.shape == (3,) and bool((encoded.bits > 0).all())
    again = tokenizer.decode(tokenizer.encode(images))
    assert torch.equal(decoded, again)  # deterministic


def test_identity_is_lossless_and_24_bits_per_pixel() -> None:
    images = _images()
    encoded = build_model("identity").adapter.encode(images)
    assert torch.equal(build_model("identity").adapter.decode(encoded), images)
    assert encoded.bits.tolist() == [24 * 64 * 64] * 3


@pytest.mark.parametrize("codec,fmt", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_codec_bits_are_the_real_encoded_size(codec: str, fmt: str) -> None:
    tokenizer = build_model(f"{codec}:quality=40").adapter
    encoded = tokenizer.encode(_images(1))
    data = encoded.payload[0]
    assert encoded.bits.item() == 8 * len(data)
    assert Image.open(io.BytesIO(data)).format == fmt


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_higher_quality_costs_more_bits_and_loses_less(codec: str) -> None:
    images = _images(2, 128)
    low, high = build_model(f"{codec}:quality=10").adapter, build_model(f"{codec}:quality=90").adapter
    low_enc, high_enc = low.encode(images), high.encode(images)
    assert bool((low_enc.bits < high_enc.bits).all())
    target = quantize_uint8(images).float()

    def error(decoded: torch.Tensor) -> float:
        return float((quantize_uint8(decoded).float() - target).square().mean())

    assert error(high.decode(high_enc)) < error(low.decode(low_enc))


def test_resize_factor_reduces_size_and_detail() -> None:
    images = _images(1, 128)
    encoded = build_model("resize:factor=4").adapter.encode(images)
    assert encoded.bits.item() == 24 * 32 * 32
    assert encoded.payload[0][0].size == (32, 32)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("jpeg:quality=101", "quality must be in"),
        ("webp:quality=-1", "quality must be in"),
        ("webp:method=9", "method must be in"),
        ("jpeg:subsampling=4:1:1", "subsampling must be"),
        ("resize:factor=0.5", "factor must be >= 1"),
        ("resize:filter=cubic", "filter must be one of"),
    ],
)
def test_bad_codec_arguments(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(spec)
