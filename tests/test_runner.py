"""The runner: batching, the adapter-output checks, and the skip/fail error policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokbench import Encoded, Tokenizer, evaluate
from tokbench.errors import AdapterOutputError, ConfigError, TokbenchError


def _write_images(folder: Path, count: int, size: tuple[int, int] = (80, 64)) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    _write_images(folder, 5)
    return folder


class Passthrough(Tokenizer):
    """Returns its input, optionally corrupted by ``corrupt`` for images whose mean is marked."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, images: torch.Tensor) -> Encoded:
        self.calls += 1
        return Encoded(payload=images)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return self.corrupt(encoded.payload.clone())

    def corrupt(self, images: torch.Tensor) -> torch.Tensor:
        return images


class NaNForSecondImage(Passthrough):
    """Poisons exactly one dataset image (img01) wherever it lands in a batch."""

    def __init__(self, marker: torch.Tensor) -> None:
        super().__init__()
        self.marker = marker

    def corrupt(self, images: torch.Tensor) -> torch.Tensor:
        for index in range(images.shape[0]):
            if torch.equal(images[index], self.marker):
                images[index, 0, 0, 0] = float("nan")
        return images


class WrongShape(Passthrough):
    def corrupt(self, images: torch.Tensor) -> torch.Tensor:
        return images[..., :-1]


class WrongDtype(Passthrough):
    def corrupt(self, images: torch.Tensor) -> torch.Tensor:
        return images.double()


class OutOfRange(Passthrough):
    def corrupt(self, images: torch.Tensor) -> torch.Tensor:
        return images * 1.5 - 0.1


class NotATensor(Passthrough):
    def corrupt(self, images: torch.Tensor) -> torch.Tensor:
        return images.numpy()  # type: ignore[return-value]


class BadEncode(Passthrough):
    def encode(self, images: torch.Tensor) -> Encoded:
        return [images]  # type: ignore[return-value]


class BadBits(Passthrough):
    def encode(self, images: torch.Tensor) -> Encoded:
        return Encoded(payload=images, bits=torch.tensor([float("nan")] * images.shape[0]))


def _recon(model, image_dir: Path, **kwargs):
    return evaluate(model, "recon", f"folder:{image_dir}", **kwargs)


@pytest.mark.parametrize(
    "adapter,message",
    [
        (WrongShape(), r"returned shape \(\d+, 3, 256, 255\), expected"),
        (WrongDtype(), "dtype torch.float64, expected torch.float32"),
        (OutOfRange(), r"values in \[-0.1.*expected \[0, 1\]"),
        (NotATensor(), "returned ndarray, expected a torch.Tensor"),
        (BadEncode(), "encode\\(\\) returned list, expected tokbench.Encoded or a torch.Tensor"),
        (BadBits(), "Encoded.bits must be finite"),
    ],
)
def test_bad_outputs_fail_with_the_model_and_item_named(adapter, message: str, image_dir: Path) -> None:
    with pytest.raises(AdapterOutputError, match=message) as info:
        _recon(adapter, image_dir, on_error="fail")
    text = str(info.value)
    assert "img00.png" in text and type(adapter).__name__ in text and "\n" not in text


def test_bad_output_under_skip_counts_every_item(image_dir: Path) -> None:
    with pytest.raises(TokbenchError, match="no item of 5 could be evaluated"):
        _recon(WrongShape(), image_dir, on_error="skip", batch_size=1)
    with pytest.raises(AdapterOutputError, match="every item of the first batch, 5 items, failed"):
        _recon(WrongShape(), image_dir, on_error="skip")


def _preprocessed(image_dir: Path, name: str) -> torch.Tensor:
    from tokbench.data.decode import load_rgb
    from tokbench.data.preprocess import build_preprocess

    return build_preprocess("imagenet-center-crop", resolution=256)(load_rgb(image_dir / name)).image


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_one_poisoned_image_is_skipped_and_the_rest_scored(image_dir: Path, batch_size: int) -> None:
    adapter = NaNForSecondImage(_preprocessed(image_dir, "img01.png"))
    result = _recon(adapter, image_dir, on_error="skip", batch_size=batch_size)
    record = result.record
    assert record["dataset"]["items_used"] == 4
    assert record["dataset"]["items_skipped"] == 1
    (skip,) = record["skipped"]
    assert skip["item"] == "img01.png"
    assert "NaN/Inf" in skip["reason"] and "NaNForSecondImage" in skip["reason"]


def test_poisoned_image_under_fail_raises(image_dir: Path) -> None:
    adapter = NaNForSecondImage(_preprocessed(image_dir, "img01.png"))
    with pytest.raises(AdapterOutputError, match=r"img01\.png"):
        _recon(adapter, image_dir, on_error="fail", batch_size=1)


def test_unreadable_files_are_skipped_with_reasons(image_dir: Path) -> None:
    (image_dir / "empty.png").write_bytes(b"")
    (image_dir / "text.jpg").write_text("not an image")
    result = _recon("identity", image_dir)
    skipped = {s["item"]: s["reason"] for s in result.record["skipped"]}
    assert set(skipped) == {"empty.png", "text.jpg"}
    assert result.record["dataset"]["items_used"] == 5
    with pytest.raises(TokbenchError, match=r"empty\.png"):
        _recon("identity", image_dir, on_error="fail")


def test_results_do_not_depend_on_batch_size(image_dir: Path) -> None:
    one = _recon("jpeg:quality=40", image_dir, batch_size=1).metrics
    many = _recon("jpeg:quality=40", image_dir, batch_size=3).metrics
    for key in ("psnr", "ssim", "ms_ssim", "bits_per_pixel"):
        assert one[key] == pytest.approx(many[key], rel=1e-12)


def test_identity_is_lossless(image_dir: Path) -> None:
    metrics = _recon("identity", image_dir).metrics
    assert metrics["psnr"] == float("inf")
    assert metrics["ssim"] == pytest.approx(1.0)
    assert metrics["bits_per_pixel"] == pytest.approx(24.0)


def test_limit_and_options_are_validated(image_dir: Path) -> None:
    assert _recon("identity", image_dir, limit=2).record["dataset"]["items_requested"] == 2
    with pytest.raises(ConfigError, match="limit must be >= 1"):
        _recon("identity", image_dir, limit=0)
    with pytest.raises(ConfigError, match="on_error must be one of"):
        _recon("identity", image_dir, on_error="ignore")
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        _recon("identity", image_dir, batch_size=0)


def test_unavailable_device_is_a_clear_error(image_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        _recon("identity", image_dir, device="cuda")
