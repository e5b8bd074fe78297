"""``video-embedded``: six short clips made deterministically from the embedded photos, for CI.

Each clip is ``FRAMES`` frames of ``SIDE``×``SIDE`` RGB, rendered with PIL from the ``embedded``
dataset's photos (sha256-checked when loaded) at ``FPS`` frames per second: pans, a zoom in and a zoom
out, printed text moving across a photo (DejaVu Sans from matplotlib, sha256 recorded) and a face crop
(Grace Hopper) pasted on a moving path over another photo. Motion is integer- or box-exact, so two
builds give the same pixels; the manifest holds every frame's pixel sha256, so its hash pins the data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from tokbench.data.decode import file_sha256, rgb_pixels_sha256
from tokbench.data.embedded import EmbeddedDataset
from tokbench.data.video import ClipItem, ClipSampler, VideoDataset
from tokbench.errors import DataError

FRAMES = 17
SIDE = 128
#: Pixel sizes of drawn things (text, face, their paths) are given for 64 px and scaled by this.
SCALE = SIDE // 64
FPS = 8
FONT = ("matplotlib", "matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf")
TEXT = "TOKBENCH video 2026"
#: The face crop (left, top, right, bottom) of matplotlib/grace_hopper.jpg.
FACE_BOX = (150, 60, 370, 330)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """One clip's recipe: its id, the photos it uses and how frame ``t`` is drawn."""

    id: str
    sources: tuple[str, ...]
    motion: str


SCENES = (
    Scene("pan-astronaut", ("skimage/astronaut.png",), "window 256 px, moving 8 px per frame to the right"),
    Scene(
        "pan-chelsea", ("skimage/chelsea.png",), "window 200 px, moving 6 px right and 3 px down per frame"
    ),
    Scene("zoom-in-coffee", ("skimage/coffee.png",), "centred window shrinking from 400 to 80 px"),
    Scene("zoom-out-china", ("sklearn/china.jpg",), "centred window growing from 96 to 416 px"),
    Scene(
        "text-flower", ("sklearn/flower.jpg",), f"the words {TEXT!r} moving left (5 px per frame at 64 px)"
    ),
    Scene(
        "face-rocket",
        ("skimage/rocket.jpg", "matplotlib/grace_hopper.jpg"),
        "a face crop (28×34 px at 64 px) moving right and down over the photo",
    ),
)


class EmbeddedVideoDataset(VideoDataset):
    """Six deterministic 17-frame 128×128 clips rendered from the embedded photos."""

    name = "video-embedded"

    def __init__(self) -> None:
        self._manifest: dict[str, Any] | None = None

    def clips(self, sampler: ClipSampler) -> list[ClipItem]:
        """The sampler's clips of each scene (frames indexed at the scenes' own ``FPS``)."""
        return [
            ClipItem(
                id=f"{scene.id}@{start}",
                source=f"video-embedded:{scene.id}",
                load=functools.partial(_sampled, scene, sampler, start),
            )
            for scene in SCENES
            for start in sampler.starts()
        ]

    def manifest(self) -> dict[str, Any]:
        """Recipe, sources, font and every frame's pixel sha256 (rendered once, on the first call)."""
        if self._manifest is None:
            _, font = _font()
            self._manifest = {
                "name": self.name,
                "version": "1",
                "frames": FRAMES,
                "size": [SIDE, SIDE],
                "fps": FPS,
                "font": {"distribution": FONT[0], "path": FONT[1], "sha256": font},
                "pixels_sha256": "sha256 of ASCII 'H,W,3;' followed by the row-major uint8 RGB bytes",
                "items": [
                    {
                        "id": scene.id,
                        "sources": list(scene.sources),
                        "motion": scene.motion,
                        "frames_sha256": [rgb_pixels_sha256(frame) for frame in render(scene)],
                    }
                    for scene in SCENES
                ],
            }
        return self._manifest


def render(scene: Scene) -> list[Image.Image]:
    """All ``FRAMES`` frames of a scene."""
    photos = [_photo(source) for source in scene.sources]
    draw = _DRAWERS[scene.id]
    return [draw(photos, t) for t in range(FRAMES)]


def _sampled(scene: Scene, sampler: ClipSampler, start: int) -> list[Image.Image]:
    """The frames of one clip; a sampler asking for frames past the scene's end is refused."""
    frames = render(scene)
    fps = FPS if sampler.fps is None else float(sampler.fps)
    # resampling by presentation time: the frame shown at index / fps seconds
    indices = [int(index * FPS // fps) if fps != FPS else index for index in sampler.indices(start)]
    if max(indices) >= FRAMES:
        raise DataError(
            f"video-embedded:{scene.id}@{start}: the scene has {FRAMES} frames at {FPS} fps; the clip "
            f"needs frame {max(indices)}"
        )
    return [frames[index] for index in indices]


@functools.lru_cache(maxsize=8)
def _photo(item_id: str) -> Image.Image:
    """An embedded photo by id (checked against its manifest when loaded)."""
    for item in EmbeddedDataset().items():
        if item.id == item_id:
            return item.load()
    raise DataError(f"video-embedded: the embedded dataset has no item {item_id!r}")


@functools.lru_cache(maxsize=1)
def _font() -> tuple[Path, str]:
    """The font file and its sha256."""
    try:
        distribution = metadata.distribution(FONT[0])
    except metadata.PackageNotFoundError:
        raise DataError(f"video-embedded needs the font of {FONT[0]}, which is not installed") from None
    path = Path(str(distribution.locate_file(FONT[1])))
    if not path.is_file():
        raise DataError(f"video-embedded: {FONT[0]} {distribution.version} has no file {FONT[1]}")
    return path, file_sha256(path)[0]


def _window(photo: Image.Image, box: Box) -> Image.Image:
    """The box of the photo, resized to the frame size (box-filtered, so every frame is exact)."""
    return photo.resize((SIDE, SIDE), Image.Resampling.BOX, box=box)


def _centred(photo: Image.Image, side: float) -> Box:
    width, height = photo.size
    return ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)


def _pan_astronaut(photos: list[Image.Image], t: int) -> Image.Image:
    return _window(photos[0], (8 * t, 128, 8 * t + 256, 384))


def _pan_chelsea(photos: list[Image.Image], t: int) -> Image.Image:
    return _window(photos[0], (60 + 6 * t, 20 + 3 * t, 260 + 6 * t, 220 + 3 * t))


def _zoom_in_coffee(photos: list[Image.Image], t: int) -> Image.Image:
    return _window(photos[0], _centred(photos[0], 400 - 20 * t))


def _zoom_out_china(photos: list[Image.Image], t: int) -> Image.Image:
    return _window(photos[0], _centred(photos[0], 96 + 20 * t))


def _text_flower(photos: list[Image.Image], t: int) -> Image.Image:
    frame = _window(photos[0], _centred(photos[0], 320))
    font = ImageFont.truetype(str(_font()[0]), 14 * SCALE)
    draw = ImageDraw.Draw(frame)
    draw.rectangle((0, 22 * SCALE, SIDE, 42 * SCALE), fill=(255, 255, 255))
    draw.text((SIDE - 5 * SCALE * t, 24 * SCALE), TEXT, font=font, fill=(0, 0, 0))
    return frame


def _face_rocket(photos: list[Image.Image], t: int) -> Image.Image:
    frame = _window(photos[0], _centred(photos[0], 400))
    face = photos[1].resize((28 * SCALE, 34 * SCALE), Image.Resampling.BOX, box=FACE_BOX)
    frame.paste(face, ((4 + 2 * t) * SCALE, (6 + t) * SCALE))
    return frame


_DRAWERS: dict[str, Callable[[list[Image.Image], int], Image.Image]] = {
    "pan-astronaut": _pan_astronaut,
    "pan-chelsea": _pan_chelsea,
    "zoom-in-coffee": _zoom_in_coffee,
    "zoom-out-china": _zoom_out_china,
    "text-flower": _text_flower,
    "face-rocket": _face_rocket,
}
