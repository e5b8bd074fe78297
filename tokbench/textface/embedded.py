"""``tokbench-embedded``: an offline TokBench mini set built from photos shipped in installed packages.

Each image is re-rendered from the checked-in manifest (``manifests/tokbench-embedded-v1.json``):
real photos (scikit-image, scikit-learn, matplotlib, insightface) resized with LANCZOS onto a canvas,
face photos pasted at chosen sizes, and text drawn with matplotlib's DejaVu Sans at known positions,
sizes and angles (ground truth = the drawn string). Every source file and the font are sha256-checked;
the rendered pixels are compared with the manifest and a difference (another FreeType) is flagged in
``image.info["tokbench_render_mismatch"]`` and counted by the track.

``ratio`` (relative size) of an instance is its height over the image's longer side: for text the
annotated box's height (for a quadrilateral, the mean length of its two side edges), for a face its
box's height. At resolution R the letterbox maps the longer side to R pixels, so ``ratio * R`` is the
instance's height in the tokenizer's input; TokBench's bucket edges (text from 0.02/0.01/0.005 at
256/512/1024, faces from 0.1/0.05/0.02) start every resolution's small bucket at the same ~5 px of
text and ~20-26 px of face, which is what this definition gives. Rebuild with
``python -m tokbench.textface.build``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from abc import abstractmethod
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from tokbench.data.base import Dataset, ImageItem
from tokbench.data.decode import file_sha256, load_rgb, rgb_pixels_sha256
from tokbench.errors import DataError
from tokbench.textface.annotations import AnnotatedImage, parse_face_instance, parse_text_instance

MANIFEST_NAME = "tokbench-embedded-v1.json"
MISMATCH_KEY = "tokbench_render_mismatch"


class TextFaceDataset(Dataset):
    """A dataset of images annotated with text and face instances (TokBench's track reads these)."""

    @abstractmethod
    def annotated_images(self) -> list[AnnotatedImage]:
        """Every image with its instances, in a fixed order."""

    def items(self) -> list[ImageItem]:
        """The images alone, so the set also serves image-only suites."""
        return [ImageItem(id=a.id, source=a.source, load=a.load) for a in self.annotated_images()]


class EmbeddedTokbenchDataset(TextFaceDataset):
    """The embedded mini set, rendered from its manifest."""

    name = "tokbench-embedded"

    def __init__(self, manifest: dict[str, Any] | None = None) -> None:
        """``manifest`` defaults to the checked-in one; tests pass altered copies."""
        self._manifest = read_manifest() if manifest is None else manifest

    def manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)

    def annotated_images(self) -> list[AnnotatedImage]:
        images = []
        for entry in self._manifest["images"]:
            width, height = entry["canvas"]
            images.append(
                AnnotatedImage(
                    id=entry["id"],
                    source=f"{MANIFEST_NAME}#{entry['id']}",
                    width=width,
                    height=height,
                    load=functools.partial(render_entry, entry, self._manifest),
                    texts=tuple(parse_text_instance(a, width, height) for a in entry["annotations"]),
                    faces=tuple(parse_face_instance(f, width, height) for f in entry["faces"]),
                    file_name=f"{entry['id']}.png",  # rendered losslessly: a PNG original
                    subset=self.name,
                )
            )
        return images


def read_manifest() -> dict[str, Any]:
    """The manifest shipped in ``tokbench/data/manifests``."""
    files = resources.files("tokbench.data").joinpath("manifests").joinpath(MANIFEST_NAME)
    return json.loads(files.read_text("utf-8"))


def locate(distribution: str, path: str, sha256: str, install: str) -> Path:
    """A file inside an installed distribution, checked against its sha256."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise DataError(
            f"tokbench-embedded needs {distribution}, which is not installed: {install}"
        ) from None
    located = Path(str(dist.locate_file(path)))
    if not located.is_file():
        raise DataError(f"tokbench-embedded: {distribution} {dist.version} has no file {path}: {install}")
    actual, _ = file_sha256(located)
    if actual != sha256:
        raise DataError(
            f"tokbench-embedded: {path} from {distribution} {dist.version} has sha256 {actual[:16]}…, "
            f"the manifest expects {sha256[:16]}…: {install}"
        )
    return located


def render_entry(entry: dict[str, Any], manifest: dict[str, Any]) -> Image.Image:
    """Draw one manifest image: photo layers, then text layers, in order."""
    installs = {name: d["install"] for name, d in manifest["distributions"].items()}
    font = manifest["font"]
    font_path = locate(font["distribution"], font["path"], font["sha256"], installs[font["distribution"]])
    canvas = render_layers(entry["canvas"], entry["layers"], font_path, installs)
    if rgb_pixels_sha256(canvas) != entry["pixels_sha256"]:
        canvas.info[MISMATCH_KEY] = True
    return canvas


def render_layers(
    size: list[int], layers: list[dict[str, Any]], font_path: Path, installs: dict[str, str]
) -> Image.Image:
    """Compose photo and text layers on a black canvas of ``size`` = [width, height]."""
    canvas = Image.new("RGBA", tuple(size), (0, 0, 0, 255))
    for layer in layers:
        if layer["kind"] == "photo":
            path = locate(
                layer["distribution"], layer["path"], layer["file_sha256"], installs[layer["distribution"]]
            )
            photo = load_rgb(path, layer["path"])
            if layer["crop"] is not None:
                photo = photo.crop(tuple(layer["crop"]))
            x0, y0, x1, y1 = layer["box"]
            canvas.paste(photo.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), (x0, y0))
        else:
            tile = text_tile(layer, font_path)
            canvas.alpha_composite(tile, tuple(layer["position"]))
    return canvas.convert("RGB")


def text_tile(layer: dict[str, Any], font_path: Path) -> Image.Image:
    """A text layer as an RGBA tile: a plate ``margin`` px larger than the text box on every side,
    the string inside a ``pad``-px box, then rotated by ``angle`` degrees (expanded)."""
    font = ImageFont.truetype(str(font_path), layer["font_size"])
    left, top, right, bottom = font.getbbox(layer["text"])
    inset = layer["pad"] + layer["margin"]
    tile = Image.new("RGBA", (right - left + 2 * inset, bottom - top + 2 * inset), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, tile.width - 1, tile.height - 1), fill=(*layer["plate"], 235))
    draw.text((inset - left, inset - top), layer["text"], font=font, fill=(*layer["fill"], 255))
    if layer["angle"]:
        tile = tile.rotate(layer["angle"], resample=Image.Resampling.BICUBIC, expand=True)
    return tile


def tile_corners(
    size: tuple[int, int], inset: int, angle: float, rotated_size: tuple[int, int]
) -> list[list[float]]:
    """Where the corners (TL, TR, BR, BL) of the box ``inset`` px inside a tile of ``size`` land after
    PIL's ``rotate(angle, expand=True)`` (counter-clockwise on screen, about the centre)."""
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    width, height = size
    cx, cy = width / 2.0, height / 2.0
    nx, ny = rotated_size[0] / 2.0, rotated_size[1] / 2.0
    corners = []
    for x, y in (
        (inset, inset),
        (width - inset, inset),
        (width - inset, height - inset),
        (inset, height - inset),
    ):
        dx, dy = x - cx, y - cy
        corners.append([nx + cos * dx + sin * dy, ny - sin * dx + cos * dy])
    return corners
