"""Preprocess specs: torchvision parity, native centre crop, TokBench letterbox and its undo, registry."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import tokbench
from tokbench.data.preprocess import PREPROCESSORS, build_preprocess, undo_letterbox
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.provenance import imaging_versions
from tokbench.tensors import pil_to_tensor, quantize_uint8

#: Golden crops made by LlamaGen's official ``center_crop_arr`` (see that folder's README).
LLAMAGEN_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "llamagen_vq"
needs_llamagen_reference = pytest.mark.skipif(
    not LLAMAGEN_REFERENCE.is_dir(), reason=f"reference data not found at {LLAMAGEN_REFERENCE}"
)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _smooth(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        128 + 100 * np.sin(2 * np.pi * x / width) * np.cos(2 * np.pi * y / height),
        40 + 180 * x / width,
        220 - 150 * y / height,
    ]
    return Image.fromarray(np.stack(channels, axis=2).round().astype(np.uint8))


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return 10 * math.log10(255**2 / mse)


# --- imagenet-center-crop ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "resolution"),
    [
        (500, 375, 256),  # typical ImageNet landscape
        (375, 500, 256),
        (333, 257, 256),
        (256, 257, 256),  # no resize; offset round(0.5) = 0
        (256, 259, 256),  # offset round(1.5) = 2
        (641, 427, 256),
        (999, 257, 256),
        (256, 256, 256),  # identity
        (200, 150, 256),  # smaller than the resolution: upscaled
        (97, 301, 64),
        (61, 61, 64),
        (1023, 77, 17),
    ],
)
def test_imagenet_center_crop_matches_torchvision(width, height, resolution):
    image = _noise(width, height, seed=width * height)
    reference = transforms.Compose(
        [
            transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
            transforms.CenterCrop(resolution),
        ]
    )(image)
    result = build_preprocess("imagenet-center-crop", resolution=resolution)(image)
    assert result.image.dtype == torch.float32
    assert result.image.shape == (3, resolution, resolution)
    assert torch.equal(result.image, pil_to_tensor(reference))


def test_imagenet_center_crop_geometry():
    result = build_preprocess("imagenet-center-crop")(_noise(500, 375))
    # short side 375 -> 256, long side int(256 * 500 / 375) = 341, left = round(85 / 2) = 42
    assert result.geometry == {
        "original_size": [500, 375],
        "resized_size": [341, 256],
        "crop_box": [42, 0, 256, 256],
    }


def test_tokbench_never_imports_torchvision():
    package = Path(tokbench.__file__).parent
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "torchvision" for name in names), path


# --- adm-center-crop --------------------------------------------------------------------------------


@needs_llamagen_reference
@pytest.mark.parametrize("resolution", [64, 32])  # resize only; one BOX halving, then the resize
def test_adm_center_crop_reproduces_the_official_pixels(resolution):
    from safetensors.numpy import load_file

    golden = load_file(str(LLAMAGEN_REFERENCE / "preprocessing.safetensors"))
    source = Image.fromarray(golden["source_uint8_hwc"])  # 150×97 (W×H)
    result = build_preprocess("adm-center-crop", resolution=resolution)(source)
    expected = torch.from_numpy(golden[f"center_crop_{resolution}_uint8_hwc"]).permute(2, 0, 1)
    assert result.image.dtype == torch.float32
    assert torch.equal(quantize_uint8(result.image), expected)


def test_adm_center_crop_geometry_halves_then_rounds():
    result = build_preprocess("adm-center-crop", resolution=32)(_noise(150, 97))
    # 97 >= 64: one BOX halving to 75×48; scale 32/48 gives round(50.0) = 50; left = 18 // 2 = 9
    assert result.geometry == {
        "original_size": [150, 97],
        "halved_size": [75, 48],
        "resized_size": [50, 32],
        "crop_box": [9, 0, 32, 32],
    }
    result = build_preprocess("adm-center-crop")(_noise(500, 375))
    # 375 < 512: no halving; round(500 * 256 / 375) = round(341.33) = 341; left = 85 // 2 = 42
    assert result.geometry["resized_size"] == [341, 256]
    assert result.geometry["crop_box"] == [42, 0, 256, 256]
    upscaled = build_preprocess("adm-center-crop", resolution=64)(_noise(40, 30))
    assert upscaled.geometry["resized_size"] == [85, 64]  # round(85.33)
    assert upscaled.image.shape == (3, 64, 64)


def test_adm_center_crop_differs_from_imagenet_center_crop():
    # The official halving (BOX) before the bicubic resize is not torchvision's one antialiased resize.
    image = _noise(1024, 700)
    adm = build_preprocess("adm-center-crop")(image).image
    imagenet = build_preprocess("imagenet-center-crop")(image).image
    assert not torch.equal(adm, imagenet)


# --- center-crop ------------------------------------------------------------------------------------


def test_center_crop_is_native_pixels():
    image = _noise(101, 80)
    result = build_preprocess("center-crop", resolution=64)(image)
    left, top = round(37 / 2), round(16 / 2)  # 18 (half to even), 8
    expected = np.asarray(image)[top : top + 64, left : left + 64]
    assert torch.equal(result.image, pil_to_tensor(Image.fromarray(expected)))
    assert result.geometry == {"original_size": [101, 80], "crop_box": [18, 8, 64, 64]}


def test_center_crop_refuses_small_images():
    with pytest.raises(DataError, match="image of 300x200 is smaller than the 256x256 crop"):
        build_preprocess("center-crop")(_noise(300, 200))


# --- letterbox-lanczos ------------------------------------------------------------------------------


def test_letterbox_geometry_and_black_padding():
    image = _smooth(300, 200)
    result = build_preprocess("letterbox-lanczos")(image)
    # factor 256/300; height ceil(200 * 256 / 300) = ceil(170.67) = 171; top = (256 - 171) // 2 = 42
    assert result.geometry == {
        "original_size": [300, 200],
        "content_box": [0, 42, 256, 171],
        "canvas_size": [256, 256],
    }
    canvas = result.image
    assert canvas.shape == (3, 256, 256)
    assert canvas.dtype == torch.float32
    assert canvas[:, :42].abs().sum() == 0
    assert canvas[:, 42 + 171 :].abs().sum() == 0
    reference = image.resize((256, 171), Image.Resampling.LANCZOS)
    assert torch.equal(canvas[:, 42 : 42 + 171], pil_to_tensor(reference))


def test_letterbox_portrait_upscales_and_odd_padding_goes_right():
    result = build_preprocess("letterbox-lanczos", resolution=64)(_smooth(15, 40))
    # factor 64/40 = 1.6; width ceil(24.0) = 24; left = (64 - 24) // 2 = 20
    assert result.geometry["content_box"] == [20, 0, 24, 64]
    result = build_preprocess("letterbox-lanczos", resolution=64)(_smooth(21, 40))
    # width ceil(33.6) = 34; padding 30 split 15 left, 15 right
    assert result.geometry["content_box"] == [15, 0, 34, 64]
    result = build_preprocess("letterbox-lanczos", resolution=64)(_smooth(19, 40))
    # width ceil(30.4) = 31; odd padding 33 split 16 left, 17 right
    assert result.geometry["content_box"] == [16, 0, 31, 64]


def test_letterbox_reproduces_tokbench_float_ceil():
    # 273 * (256 / 364) is 192.0 exactly in real numbers but 192.00000000000003 in floating point;
    # TokBench's math.ceil gives 193, and so do we.
    result = build_preprocess("letterbox-lanczos")(_smooth(364, 273))
    assert result.geometry["content_box"] == [0, 31, 256, 193]


@pytest.mark.parametrize(("width", "height"), [(300, 200), (180, 410), (600, 600)])
def test_letterbox_round_trip_of_a_smooth_image(width, height):
    image = _smooth(width, height)
    result = build_preprocess("letterbox-lanczos")(image)
    geometry = json.loads(json.dumps(result.geometry))  # as stored in a record
    restored = undo_letterbox(result.image, geometry)
    assert restored.mode == "RGB"
    assert restored.size == (width, height)
    assert _psnr(image, restored) > 45.0  # about 55-59 dB with Pillow 13


def test_undo_letterbox_checks_the_canvas_shape():
    result = build_preprocess("letterbox-lanczos", resolution=32)(_smooth(40, 20))
    with pytest.raises(AdapterOutputError, match=r"3×32×32 .* got shape \(3, 64, 64\)"):
        undo_letterbox(torch.zeros(3, 64, 64), result.geometry)


# --- registry and options ---------------------------------------------------------------------------


def test_registry_names_and_describe():
    assert PREPROCESSORS.names() == [
        "adm-center-crop",
        "center-crop",
        "imagenet-center-crop",
        "letterbox-lanczos",
    ]
    described = build_preprocess("letterbox-lanczos", resolution=512).describe()
    assert described == {
        "name": "letterbox-lanczos",
        "version": "1",
        "resolution": 512,
        "imaging": imaging_versions(),
    }
    assert build_preprocess("imagenet-center-crop").describe()["resolution"] == 256


def test_unknown_preprocess_lists_available():
    with pytest.raises(
        ConfigError, match="adm-center-crop, center-crop, imagenet-center-crop, letterbox-lanczos"
    ):
        build_preprocess("imagenet-centre-crop")


def test_unknown_option_lists_accepted():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) size; accepted: resolution"):
        build_preprocess("center-crop", size=256)


@pytest.mark.parametrize("resolution", [0, -8, 2.5, "256", True, None])
def test_bad_resolution(resolution):
    with pytest.raises(ConfigError, match="resolution must be a positive integer"):
        build_preprocess("letterbox-lanczos", resolution=resolution)


def test_non_rgb_input_is_refused():
    with pytest.raises(DataError, match="expects an RGB image, got mode L"):
        build_preprocess("imagenet-center-crop")(Image.new("L", (300, 300)))
