"""Text crops from ground-truth geometry, as TokBench's docTR data loader cuts them.

Coordinates are cast to float32 (the loader's ``np.array(..., dtype=np.float32)``), then truncated to
integers. An axis-aligned box ``[x0, y0, x1, y1]`` is the slice
``image[y0:y1, x0:x1]``; a quadrilateral is rectified with the affine map that sends its first three
corners to ``(0, 0)``, ``(d1 - 1, 0)`` and ``(d1 - 1, d2 - 1)`` (``d1``, ``d2`` the lengths of its
first two edges), bilinear, into a ``int(d1)`` × ``int(d2)`` crop.
"""

from __future__ import annotations

import numpy as np

from tokbench.errors import DataError


def crop_text(image: np.ndarray, geometry: tuple) -> np.ndarray:
    """The crop of one text instance from an H×W×3 uint8 image."""
    if geometry and isinstance(geometry[0], tuple):
        return _rotated_crop(image, np.array(geometry, dtype=np.float32).astype(int).astype(np.float32))
    x0, y0, x1, y1 = (int(v) for v in np.array(geometry, dtype=np.float32).astype(int))
    height, width = image.shape[:2]
    crop = image[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    if min(crop.shape[:2]) < 1:
        raise DataError(f"text box {list(geometry)} gives an empty crop of a {width}x{height} image")
    return np.ascontiguousarray(crop)


def _rotated_crop(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    import cv2

    source = corners[:3]
    first = float(np.linalg.norm(source[0] - source[1]))
    second = float(np.linalg.norm(source[1] - source[2]))
    if int(first) < 1 or int(second) < 1:
        raise DataError(f"quadrilateral {corners.tolist()} is too small to crop")
    target = np.array([[0, 0], [first - 1, 0], [first - 1, second - 1]], dtype=np.float32)
    matrix = cv2.getAffineTransform(source, target)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (int(first), int(second)))
