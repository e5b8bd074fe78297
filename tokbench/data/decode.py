"""Open image files robustly as fully decoded 8-bit RGB, with one-line errors naming the file."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tokbench.errors import DataError

SUPPORTED_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".pbm", ".pgm", ".ppm", ".pnm", ".tga"
)  # fmt: skip
#: Image formats a folder dataset recognises but does not decode: each such file is an item that is
#: skipped with its reason (a fixed list, so which files a dataset holds never depends on Pillow plugins).
UNSUPPORTED_IMAGE_EXTENSIONS = (
    ".avif", ".heic", ".heif", ".jxl", ".jp2", ".j2k", ".jpx", ".psd", ".svg", ".ico", ".icns", ".pcx",
    ".dds", ".eps", ".exr", ".hdr", ".dng", ".cr2", ".nef", ".arw", ".raw", ".xcf",
)  # fmt: skip

# Modes converted through RGBA and composited over black; "P" is included because a palette may carry
# alpha even without a "transparency" entry, and an opaque palette composites to itself.
_STRAIGHT_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "P"})
_UINT16_MAX = 65535
_NATIVE, _FOREIGN = ("L", "B") if sys.byteorder == "little" else ("B", "L")
# Pillow reads 16-bit colour (48-bit RGB, 64-bit RGBA PNG and TIFF) by keeping each sample's high byte;
# decoding the same data with the opposite byte order gives the low bytes (see ``_low_bytes_tiles``).
_LOW_BYTE_RAWMODES = {
    f"{mode};16{order}": f"{mode};16{swapped}"
    for mode in ("RGB", "RGBA")
    for order, swapped in (("B", "L"), ("L", "B"), ("N", _FOREIGN))
}
_CHUNK_BYTES = 1 << 20


def load_rgb(path: Path, item_id: str | None = None) -> Image.Image:
    """Decode an image file completely and convert it to 8-bit RGB, raising ``DataError`` if unusable.

    Conversion rules, chosen so every source maps to one well-defined RGB image:

    - EXIF orientation is applied; multi-frame files (GIF, TIFF) give their first frame.
    - Alpha is composited over BLACK: ``round(colour * alpha / 255)``. This equals the colour channels
      of premultiplied data (Pillow un-premultiplies associated-alpha TIFFs; this gives them back), makes
      fully transparent pixels black whatever colour they hide, and matches the black padding of the
      TokBench letterbox. Palette and colour-key transparency ("transparency" in PNG/GIF) count as alpha.
    - 16-bit samples are scaled by ``round(v / 257)``, mapping 65535 to 255: greys (``I;16*``, and ``I``
      holding values in [0, 65535]; ``I`` values outside [0, 65535] are refused) and 16-bit colour
      (48-bit RGB and 64-bit RGBA PNG and TIFF, whose full samples Pillow would truncate to their
      high byte), one conversion for both.
    - Float images (``F``) must lie in [0, 1] (scaled by 255) or [0, 255] (kept); [0, 1] wins when
      both hold; anything else (or NaN/Inf) is refused.
    - Other modes (1, L, CMYK, YCbCr, ...) use Pillow's converter; Adobe-inverted CMYK JPEGs are read
      correctly, and embedded ICC profiles are ignored, as in the PIL-based reference pipelines.
    """
    path = Path(path)
    where = f"image {display_path(path)}" + (f" (item {item_id})" if item_id is not None else "")
    if not path.is_file():
        what = "file does not exist" if not path.exists() else "not a regular file"
        raise DataError(f"{where}: {what}")
    if path.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS:
        raise DataError(
            f"{where}: unsupported image format {path.suffix.lower()} (supported: "
            f"{', '.join(SUPPORTED_EXTENSIONS)}); convert it to PNG to include it"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{where}: empty file (0 bytes)")
    image, wide = _decode_first_frame(path, where, low_bytes=False)
    if wide:
        low, _ = _decode_first_frame(path, where, low_bytes=True)
        return _sixteen_bit_colour_to_rgb(image, low, where)
    return _to_rgb(image, where)


def display_path(path: Path | str) -> str:
    """A path as printable text: bytes that are not UTF-8 (a non-UTF-8 file name) as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _decode_first_frame(path: Path, where: str, low_bytes: bool) -> tuple[Image.Image, bool]:
    """Open, fully decode and orient the first frame, turning every decoder failure into DataError.

    Returns the image and whether it is 16-bit colour; with ``low_bytes`` such an image is decoded with
    the opposite byte order, which gives the samples' low bytes instead of their high bytes.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with path.open("rb") as file, Image.open(file) as opened:
                low_tiles = _low_bytes_tiles(opened)
                if low_bytes and low_tiles is not None:
                    opened.tile = low_tiles
                opened.load()
                # A new image (copy or transposed) that stays valid after the file closes.
                return ImageOps.exif_transpose(opened), low_tiles is not None
    except UnidentifiedImageError:
        raise DataError(f"{where}: not an image format Pillow recognises ({path.suffix} file)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{where}: refused as a possible decompression bomb ({_one_line(exc)}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted"
        ) from exc
    except OSError as exc:
        if exc.errno is None:  # Pillow's decoders raise a bare OSError for broken data
            raise DataError(f"{where}: corrupt or truncated image data ({_one_line(exc)})") from exc
        raise DataError(f"{where}: cannot read file ({exc.strerror})") from exc
    except Exception as exc:  # decoders of corrupt data fail with many exception types
        raise DataError(f"{where}: corrupt or truncated image data ({_one_line(exc)})") from exc


def _low_bytes_tiles(image: Image.Image) -> list | None:
    """The tiles of a 16-bit colour image with swapped byte order (see ``_LOW_BYTE_RAWMODES``), or None
    when the image is not 16-bit colour (the tiles must be read before ``load``)."""
    tiles = list(getattr(image, "tile", None) or ())
    swapped = []
    for tile in tiles:
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        if not args or args[0] not in _LOW_BYTE_RAWMODES:
            return None
        low = (_LOW_BYTE_RAWMODES[args[0]], *args[1:])
        swapped.append(tile._replace(args=low if isinstance(tile.args, tuple) else low[0]))
    return swapped or None


def _sixteen_bit_colour_to_rgb(high: Image.Image, low: Image.Image, where: str) -> Image.Image:
    """16-bit RGB(A) samples (their high and low bytes as two 8-bit images) to 8-bit RGB by
    ``round(v / 257)`` as 16-bit greys, alpha composited over black as 8-bit alpha; a colour key
    (PNG ``tRNS``, 16-bit values) makes its pixels transparent, hence black."""
    values = (np.asarray(high).astype(np.uint32) << 8) | np.asarray(low).astype(np.uint32)
    pixels = _sixteen_bit_to_uint8(values, f"{high.mode};16", where)
    if high.mode == "RGBA":
        pixels = _composite_over_black(pixels)
    key = high.info.get("transparency")
    if high.mode == "RGB" and isinstance(key, tuple) and len(key) == 3:
        pixels[(values == np.asarray(key, dtype=np.uint32)).all(axis=-1)] = 0
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def _to_rgb(image: Image.Image, where: str) -> Image.Image:
    """Convert a decoded image of any supported mode to a new RGB image (rules in ``load_rgb``)."""
    mode = image.mode
    if mode == "RGB":
        pixels = np.array(image)
    elif mode in _STRAIGHT_ALPHA_MODES or ("transparency" in image.info and not _is_wide(mode)):
        pixels = _composite_over_black(np.asarray(image.convert("RGBA")))
    elif mode.startswith("I;16") or mode == "I":
        pixels = _grey_to_rgb(_sixteen_bit_to_uint8(np.asarray(image), mode, where))
    elif mode == "F":
        pixels = _grey_to_rgb(_float_to_uint8(np.asarray(image), where))
    else:
        try:
            pixels = np.asarray(image.convert("RGB"))
        except ValueError as exc:
            raise DataError(f"{where}: cannot convert mode {mode} to RGB ({_one_line(exc)})") from exc
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def _is_wide(mode: str) -> bool:
    """Modes with more than 8 bits per sample, whose conversion through RGBA would clip."""
    return mode in ("I", "F") or mode.startswith("I;16")


def _composite_over_black(rgba: np.ndarray) -> np.ndarray:
    """H×W×4 straight-alpha uint8 to H×W×3 uint8 composited over black, rounded to nearest."""
    alpha = rgba[..., 3:].astype(np.uint32)
    return ((rgba[..., :3].astype(np.uint32) * alpha + 127) // 255).astype(np.uint8)


def _sixteen_bit_to_uint8(values: np.ndarray, mode: str, where: str) -> np.ndarray:
    """16-bit samples (grey or colour) to 8 bits by round(v / 257), refusing values outside [0, 65535]."""
    if values.dtype.kind not in "ui":
        raise DataError(f"{where}: unsupported mode {mode} (dtype {values.dtype})")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > _UINT16_MAX:
        raise DataError(
            f"{where}: mode {mode} pixel values span [{low}, {high}]; only 16-bit data in "
            f"[0, {_UINT16_MAX}] is supported"
        )
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, where: str) -> np.ndarray:
    """Float grey levels in [0, 1] or [0, 255] to uint8 (round half to even, as ``torch.round``)."""
    if not np.isfinite(values).all():
        raise DataError(f"{where}: float (mode F) image contains NaN or Inf")
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return np.rint(values.astype(np.float64) * 255.0).astype(np.uint8)
    if low >= 0.0 and high <= 255.0:
        return np.rint(values.astype(np.float64)).astype(np.uint8)
    raise DataError(
        f"{where}: float (mode F) pixel values span [{low:g}, {high:g}], neither within [0, 1] "
        "nor within [0, 255]"
    )


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """H×W grey levels to H×W×3 by repeating the channel."""
    return np.repeat(grey[..., np.newaxis], 3, axis=2)


def _one_line(exc: BaseException) -> str:
    """An exception's message collapsed to one line (with its type when the message is empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def rgb_pixels_sha256(image: Image.Image) -> str:
    """sha256 identifying an RGB image's pixels: the ASCII shape "H,W,3;" then the uint8 bytes."""
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    digest = hashlib.sha256(",".join(str(n) for n in pixels.shape).encode("ascii") + b";")
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 (hex) and byte count of a file, read in chunks; ``DataError`` if it cannot be read."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise DataError(f"cannot read {display_path(path)} to hash it ({reason})") from exc
    return digest.hexdigest(), size
