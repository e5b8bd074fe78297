"""TokBench's annotation format, parsed per instance: a bad instance carries its error, never aborts.

Text (``annotations/text_<set>.json``): a list of ``{file_name, height, width, annotations: [{rec,
bbox, ratio, ...}]}``; ``bbox`` is an axis-aligned box ``[x_min, y_min, x_max, y_max]`` or a
quadrilateral ``[[x, y] × 4]`` (top-left, top-right, bottom-right, bottom-left, in reading order),
in pixels of the original image. Faces (``annotations/face_meta.json``): a list of ``{image_name,
img_height, img_width, faces: [{kps, box, ratio, ...}]}`` with ``kps`` the five landmarks (eye
centres, nose tip, mouth corners). ``ratio`` is the instance's relative size, precomputed by the
dataset (see ``tokbench.textface.embedded`` for how the embedded set defines it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

# Coordinates may overshoot the image by this many pixels (annotation rounding) before it is an error.
BOX_TOLERANCE = 1.0


@dataclass(frozen=True)
class TextInstance:
    """One word or line: ground truth, geometry (4 numbers or 4 points), ratio, or why it is unusable."""

    text: str
    geometry: tuple[float, ...] | tuple[tuple[float, float], ...] | None
    ratio: float | None
    error: str | None = None

    @property
    def is_polygon(self) -> bool:
        """True for a quadrilateral, False for an axis-aligned box."""
        return bool(self.geometry) and isinstance(self.geometry[0], tuple)


@dataclass(frozen=True)
class FaceInstance:
    """One face: five landmarks, its box if given, ratio, or why it is unusable."""

    landmarks: tuple[tuple[float, float], ...] | None
    box: tuple[float, ...] | None
    ratio: float | None
    error: str | None = None


@dataclass(frozen=True)
class AnnotatedImage:
    """An image with its text and face instances; ``load`` raises DataError when the file is unusable.

    ``file_name`` is the name the official scripts save its reconstruction under (its extension picks
    the format); ``subset`` is the annotation file it comes from (the official OCR batches never span
    two).
    """

    id: str
    source: str
    width: int
    height: int
    load: Callable[[], Image.Image] = field(compare=False, repr=False)
    texts: tuple[TextInstance, ...] = ()
    faces: tuple[FaceInstance, ...] = ()
    file_name: str = ""
    subset: str = ""


def parse_text_instance(raw: Any, width: int, height: int) -> TextInstance:
    """One entry of ``annotations``; problems become the instance's ``error``."""
    if not isinstance(raw, dict):
        return TextInstance("", None, None, f"annotation is a {type(raw).__name__}, expected an object")
    text = raw.get("rec")
    ratio, ratio_error = _ratio(raw.get("ratio"))
    if not isinstance(text, str):
        return TextInstance("", None, ratio, f"'rec' is {text!r}, expected a string")
    if not text.strip():
        return TextInstance(text, None, ratio, "empty ground-truth string ('rec')")
    geometry, error = _text_geometry(raw.get("bbox"), width, height)
    return TextInstance(text, geometry, ratio, error or ratio_error)


def parse_face_instance(raw: Any, width: int, height: int) -> FaceInstance:
    """One entry of ``faces``; problems become the instance's ``error``."""
    if not isinstance(raw, dict):
        return FaceInstance(None, None, None, f"face is a {type(raw).__name__}, expected an object")
    ratio, ratio_error = _ratio(raw.get("ratio"))
    points = _points(raw.get("kps"), 5)
    if points is None:
        return FaceInstance(None, None, ratio, f"'kps' is {_short(raw.get('kps'))}, expected 5 [x, y] points")
    outside = _outside([c for p in points for c in p], width, height)
    box = _numbers(raw.get("box"), 4)
    if outside:
        return FaceInstance(points, box, ratio, f"landmarks {outside} lie outside the {width}x{height} image")
    return FaceInstance(points, box, ratio, ratio_error)


def _ratio(value: Any) -> tuple[float | None, str | None]:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        return None, f"'ratio' is {value!r}, expected a finite non-negative number"
    return float(value), None


def _text_geometry(
    raw: Any, width: int, height: int
) -> tuple[tuple[float, ...] | tuple[tuple[float, float], ...] | None, str | None]:
    box = _numbers(raw, 4)
    if box is not None:
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            return box, f"box {list(box)} is empty (x_max <= x_min or y_max <= y_min)"
        outside = _outside(box, width, height)
        return box, (f"box {list(box)} lies outside the {width}x{height} image" if outside else None)
    polygon = _points(raw, 4)
    if polygon is None:
        return None, f"'bbox' is {_short(raw)}, expected [x_min, y_min, x_max, y_max] or 4 [x, y] points"
    if _polygon_area(polygon) <= 0:
        return polygon, f"quadrilateral {[list(p) for p in polygon]} has no area"
    outside = _outside([c for p in polygon for c in p], width, height)
    error = f"quadrilateral {[list(p) for p in polygon]} lies outside the {width}x{height} image"
    return polygon, (error if outside else None)


def _numbers(raw: Any, count: int) -> tuple[float, ...] | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != count:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw):
        return None
    return tuple(float(v) for v in raw)


def _points(raw: Any, count: int) -> tuple[tuple[float, float], ...] | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != count:
        return None
    points = [_numbers(p, 2) for p in raw]
    return None if any(p is None for p in points) else tuple((p[0], p[1]) for p in points)  # type: ignore[index]


def _outside(coordinates: tuple[float, ...] | list[float], width: int, height: int) -> list[float]:
    """Coordinates (x, y alternating) beyond the image by more than the tolerance."""
    limits = [width if i % 2 == 0 else height for i in range(len(coordinates))]
    return [
        c
        for c, limit in zip(coordinates, limits, strict=True)
        if c < -BOX_TOLERANCE or c > limit + BOX_TOLERANCE
    ]


def _polygon_area(points: tuple[tuple[float, float], ...]) -> float:
    """Absolute shoelace area."""
    total = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True))
    return abs(total) / 2.0


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def text_box_height(geometry: tuple[float, ...] | tuple[tuple[float, float], ...]) -> float:
    """The height of a text box across its reading direction (mean of the two side edges for a quad)."""
    if isinstance(geometry[0], tuple):
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = geometry  # type: ignore[misc]
        return (math.hypot(dx - ax, dy - ay) + math.hypot(cx - bx, cy - by)) / 2.0
    return float(geometry[3] - geometry[1])  # type: ignore[operator]
