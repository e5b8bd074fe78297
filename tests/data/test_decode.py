"""load_rgb: every failure is a one-line DataError naming the file; every mode converts correctly."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tokbench.data.decode import SUPPORTED_EXTENSIONS, file_sha256, load_rgb, rgb_pixels_sha256
from tokbench.errors import DataError


def _save(image: Image.Image, path: Path, **params) -> Path:
    image.save(path, **params)
    return path


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _noise(height: int = 48, width: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _load_pixels(path: Path) -> np.ndarray:
    image = load_rgb(path)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def _data_error(path: Path, item_id: str | None = None) -> str:
    with pytest.raises(DataError) as info:
        load_rgb(path, item_id)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --- failures ---------------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty file (0 bytes)" in _data_error(path)


def test_text_file_with_image_extension(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    assert "not an image format" in _data_error(path)


def test_missing_file_and_directory(tmp_path):
    assert "does not exist" in _data_error(tmp_path / "missing.jpg")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert "not a regular file" in _data_error(folder)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP"])
def test_truncated_file(tmp_path, fmt):
    data = _encoded(_noise(), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    assert "corrupt or truncated" in _data_error(path)


def test_corrupt_png_data(tmp_path):
    data = bytearray(_encoded(_noise(), "PNG"))
    start = data.index(b"IDAT") + 64
    data[start : start + 64] = bytes(64)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    assert "corrupt or truncated" in _data_error(path)


def test_error_names_the_item(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "(item cats/empty.jpg)" in _data_error(path, "cats/empty.jpg")


@pytest.mark.parametrize("side", [11, 15])  # 121 pixels warns, 225 pixels errors (limit 100)
def test_decompression_bomb(tmp_path, monkeypatch, side):
    path = _save(_noise(side, side), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    filters_before = list(warnings.filters)
    assert "decompression bomb" in _data_error(path)
    assert warnings.filters == filters_before


# --- conversions ------------------------------------------------------------------------------------


def test_rgb_png_is_exact_and_independent_of_the_file(tmp_path):
    source = _noise()
    path = _save(source, tmp_path / "noise.png")
    image = load_rgb(path)
    path.unlink()  # fully decoded: nothing is read from the file afterwards
    np.testing.assert_array_equal(np.asarray(image), np.asarray(source))


def test_grey_l(tmp_path):
    grey = np.array([[0, 17, 128, 255]], dtype=np.uint8)
    pixels = _load_pixels(_save(Image.fromarray(grey), tmp_path / "grey.png"))
    np.testing.assert_array_equal(pixels, np.repeat(grey[..., None], 3, axis=2))


def test_bilevel(tmp_path):
    image = Image.new("1", (4, 1), 0)
    image.putpixel((1, 0), 1)
    pixels = _load_pixels(_save(image, tmp_path / "bits.png"))
    np.testing.assert_array_equal(pixels[0, :, 0], [0, 255, 0, 0])
    assert (pixels == pixels[..., :1]).all()


def test_rgba_composited_over_black(tmp_path):
    rgba = np.array([[[255, 100, 50, 51], [200, 200, 200, 0], [9, 99, 199, 255]]], dtype=np.uint8)
    pixels = _load_pixels(_save(Image.fromarray(rgba), tmp_path / "alpha.png"))
    # round(c * a / 255): half-transparent scales, transparent is black, opaque is unchanged.
    np.testing.assert_array_equal(pixels[0], [[51, 20, 10], [0, 0, 0], [9, 99, 199]])


def test_la_composited_over_black(tmp_path):
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (200, 128))
    la.putpixel((1, 0), (77, 255))
    pixels = _load_pixels(_save(la, tmp_path / "la.png"))
    np.testing.assert_array_equal(pixels[0], [[100, 100, 100], [77, 77, 77]])  # 200*128/255 = 100.4


def test_palette_without_transparency(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    image.putdata([0, 1, 2])
    pixels = _load_pixels(_save(image, tmp_path / "palette.png"))
    np.testing.assert_array_equal(pixels[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_palette_with_transparent_index(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([255, 255, 255, 0, 255, 0, 0, 0, 255] + [0] * 759)
    image.putdata([0, 1, 2])
    path = _save(image, tmp_path / "palette.png", transparency=0)
    assert Image.open(path).mode == "P"
    pixels = _load_pixels(path)
    np.testing.assert_array_equal(pixels[0], [[0, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_palette_with_alpha_tiff_pa(tmp_path):
    image = Image.new("PA", (2, 1))
    image.putpalette([200, 100, 50] + [0] * 765)
    image.putpixel((0, 0), (0, 255))
    image.putpixel((1, 0), (0, 51))
    path = _save(image, tmp_path / "pa.tif")
    assert Image.open(path).mode == "PA"
    np.testing.assert_array_equal(_load_pixels(path)[0], [[200, 100, 50], [40, 20, 10]])


def test_associated_alpha_tiff_gives_back_the_premultiplied_colours(tmp_path):
    data = _encoded(Image.new("RGBA", (2, 2), (10, 20, 30, 128)), "TIFF")
    unassociated = b"\x52\x01\x03\x00\x01\x00\x00\x00\x02\x00"  # ExtraSamples = 2 (unassociated)
    assert data.count(unassociated) == 1
    path = tmp_path / "premultiplied.tif"
    path.write_bytes(data.replace(unassociated, unassociated[:8] + b"\x01\x00"))
    np.testing.assert_allclose(_load_pixels(path)[0, 0], [10, 20, 30], atol=1)


def test_cmyk_jpeg(tmp_path):
    # Pillow writes Adobe (inverted) CMYK JPEGs; the reader must undo the inversion.
    colours = [(0, 255, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0), (255, 0, 255, 0)]
    image = Image.new("CMYK", (32, 8))
    for index, colour in enumerate(colours):
        image.paste(colour, (index * 8, 0, index * 8 + 8, 8))
    path = _save(image, tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    pixels = _load_pixels(path)
    expected = [(255, 0, 0), (0, 0, 0), (255, 255, 255), (0, 255, 0)]
    for index, rgb in enumerate(expected):
        np.testing.assert_allclose(pixels[4, index * 8 + 4], rgb, atol=8)


def test_cmyk_tiff_exact(tmp_path):
    path = _save(Image.new("CMYK", (2, 2), (10, 20, 30, 40)), tmp_path / "cmyk.tif")
    # (255 - c) * (255 - k) / 255 per channel
    np.testing.assert_allclose(_load_pixels(path)[0, 0], [206.6, 198.1, 189.7], atol=1)


def test_sixteen_bit_png_divides_by_257(tmp_path):
    values = np.array([[0, 128, 129, 257, 32896, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_array_equal(_load_pixels(path)[0, :, 0], [0, 0, 1, 1, 128, 255])


def test_sixteen_bit_big_endian_tiff(tmp_path):
    values = np.array([[0, 257, 65535, 1000]], dtype=">u2")
    image = Image.frombytes("I;16B", (4, 1), values.tobytes())
    path = _save(image, tmp_path / "big.tif")
    assert Image.open(path).mode == "I;16B"
    np.testing.assert_array_equal(_load_pixels(path)[0, :, 1], [0, 1, 255, 4])


def test_thirty_two_bit_integer(tmp_path):
    ok = _save(Image.fromarray(np.array([[0, 257, 65535]], dtype=np.int32)), tmp_path / "ok.tif")
    assert Image.open(ok).mode == "I"
    np.testing.assert_array_equal(_load_pixels(ok)[0, :, 2], [0, 1, 255])
    wide = _save(Image.fromarray(np.array([[-1, 70000]], dtype=np.int32)), tmp_path / "wide.tif")
    assert "span [-1, 70000]" in _data_error(wide)


def test_float_unit_range(tmp_path):
    path = _save(Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.2]], dtype=np.float32)), tmp_path / "f.tif")
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(_load_pixels(path)[0, :, 0], [0, 128, 255, 51])


def test_float_byte_range(tmp_path):
    values = np.array([[0.0, 10.4, 254.6, 255.0]], dtype=np.float32)
    path = _save(Image.fromarray(values), tmp_path / "f.tif")
    np.testing.assert_array_equal(_load_pixels(path)[0, :, 0], [0, 10, 255, 255])


def test_float_out_of_range_and_nan(tmp_path):
    wide = _save(Image.fromarray(np.array([[-1.0, 2.0]], dtype=np.float32)), tmp_path / "wide.tif")
    message = _data_error(wide)
    assert "span [-1, 2]" in message
    assert "[0, 1]" in message
    assert "[0, 255]" in message
    nan = _save(Image.fromarray(np.array([[0.5, np.nan]], dtype=np.float32)), tmp_path / "nan.tif")
    assert "NaN" in _data_error(nan)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    path = _save(image, tmp_path / "rotated.jpg", exif=exif, quality=95)
    pixels = _load_pixels(path)
    assert pixels.shape == (40, 20, 3)
    np.testing.assert_allclose(pixels[5, 10], [255, 0, 0], atol=10)  # the left half is now on top
    np.testing.assert_allclose(pixels[35, 10], [0, 0, 255], atol=10)


@pytest.mark.parametrize("suffix", [".gif", ".tif"])
def test_multi_frame_uses_the_first(tmp_path, suffix):
    frames = [Image.new("RGB", (8, 8), colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = _save(frames[0], tmp_path / f"frames{suffix}", save_all=True, append_images=frames[1:])
    assert Image.open(path).n_frames == 3
    np.testing.assert_array_equal(_load_pixels(path)[4, 4], [255, 0, 0])


def test_supported_extensions_all_decode(tmp_path):
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}
    formats |= {".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF", ".tga": "TGA"}
    formats |= {".pbm": "PPM", ".pgm": "PPM", ".ppm": "PPM", ".pnm": "PPM"}
    assert set(formats) == set(SUPPORTED_EXTENSIONS)
    for suffix, fmt in formats.items():
        assert load_rgb(_save(_noise(), tmp_path / f"a{suffix}", format=fmt)).size == (64, 48)


# --- hashes -----------------------------------------------------------------------------------------


def test_pixel_hash_depends_on_shape_and_pixels():
    flat = Image.fromarray(np.zeros((2, 6, 3), dtype=np.uint8))
    tall = Image.fromarray(np.zeros((6, 2, 3), dtype=np.uint8))
    assert rgb_pixels_sha256(flat) != rgb_pixels_sha256(tall)
    expected = hashlib.sha256(b"2,6,3;" + bytes(36)).hexdigest()
    assert rgb_pixels_sha256(flat) == expected


def test_file_sha256_streams_whole_file(tmp_path):
    data = bytes(range(256)) * 10_000  # larger than one read chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(DataError, match=r"missing\.bin"):
        file_sha256(tmp_path / "missing.bin")
