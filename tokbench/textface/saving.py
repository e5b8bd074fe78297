"""The official scripts' save step: the restored reconstruction is written under the original's file
name with PIL's defaults for that extension, and the evaluation reads that file back.

``as-original`` reproduces it: ``.jpg``/``.jpeg`` become a fresh PIL JPEG (quality 75, 4:2:0 chroma
subsampling, baseline), ``.png`` is lossless, any other extension gets PIL's defaults for its format;
the file is decoded with PIL as RGB (``cv2.imread`` decodes these JPEGs identically, so faces read the
same pixels). ``lossless`` scores the restored uint8 array itself (no generation loss).
"""

from __future__ import annotations

import io
from pathlib import PurePath
from typing import Any

import numpy as np
from PIL import Image

from tokbench.errors import ConfigError, DataError

SAVE_MODES = ("as-original", "lossless")
#: Formats whose PIL defaults keep RGB uint8 pixels exactly; their round trip is skipped.
_LOSSLESS_FORMATS = frozenset({"PNG"})


def check_save_mode(mode: Any, suite: str) -> str:
    """``settings.save``: one of ``SAVE_MODES``."""
    if mode not in SAVE_MODES:
        raise ConfigError(f"suite {suite!r}: settings.save must be one of {list(SAVE_MODES)}, got {mode!r}")
    return mode


def save_format(file_name: str) -> str:
    """The PIL format ``Image.save`` picks for ``file_name`` (by its extension, case-insensitive)."""
    extension = PurePath(file_name).suffix.lower()
    formats = Image.registered_extensions()
    if extension not in formats:
        raise DataError(
            f"{file_name!r}: PIL has no format for the extension {extension!r}, so the official save "
            "step cannot write it (use settings.save: lossless)"
        )
    return formats[extension]


def saved_pixels(restored: Image.Image, file_name: str, mode: str) -> np.ndarray:
    """The H×W×3 uint8 pixels the evaluation reads for a restored reconstruction of ``file_name``."""
    if mode == "lossless":
        return np.asarray(restored)
    image_format = save_format(file_name)
    if image_format in _LOSSLESS_FORMATS:
        return np.asarray(restored)
    buffer = io.BytesIO()
    restored.save(buffer, format=image_format)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def describe_save(mode: str) -> dict[str, str]:
    """The save step as the protocol records it."""
    rules = {
        "as-original": (
            "written under the original's file name with PIL defaults for its extension (JPEG quality 75, "
            "4:2:0; PNG lossless) and read back with PIL as RGB, as the official *_rec.py scripts"
        ),
        "lossless": "the restored uint8 array is scored as is (no file round trip)",
    }
    return {"mode": mode, "rule": rules[mode]}
