"""Named, versioned preprocessing from an RGB image to a square float tensor, and undoing a letterbox.

Geometry boxes are ``[left, top, width, height]`` in pixels and sizes are ``[width, height]``, all
plain ints in lists so they survive a JSON round trip.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from PIL import Image

from tokbench.data.base import Preprocess, Preprocessed
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.registry import Registry
from tokbench.tensors import pil_to_tensor, tensor_to_pil

PREPROCESSORS: Registry[type[Preprocess]] = Registry(
    "preprocess", base=Preprocess, entry_point_group="tokbench.preprocess"
)


class SquarePreprocess(Preprocess):
    """Shared option handling: the built-ins all output a ``resolution`` × ``resolution`` image."""

    def __init__(self, resolution: int = 256) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ConfigError(
                f"preprocess {self.name!r}: option resolution must be a positive integer, got {resolution!r}"
            )
        self.resolution = resolution

    def options(self) -> dict[str, Any]:
        """The output side length."""
        return {"resolution": self.resolution}


class ImagenetCenterCrop(SquarePreprocess):
    """The ImageNet-val reconstruction protocol (TiTok and most tokenizer papers).

    Identical to torchvision ``Resize(resolution, BICUBIC, antialias=True)`` then
    ``CenterCrop(resolution)`` on a PIL image, re-implemented with PIL: the shorter side becomes
    ``resolution``, the longer ``int(resolution * long / short)`` (truncated, as torchvision does), and
    images smaller than ``resolution`` are upscaled.
    """

    name = "imagenet-center-crop"

    def __call__(self, image: Image.Image) -> Preprocessed:
        _require_rgb(image, self.name)
        width, height = image.size
        new_width, new_height = _torchvision_short_side_size(width, height, self.resolution)
        if (new_width, new_height) != (width, height):
            image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
        left = _torchvision_centre_offset(new_width, self.resolution)
        top = _torchvision_centre_offset(new_height, self.resolution)
        cropped = image.crop((left, top, left + self.resolution, top + self.resolution))
        geometry = {
            "original_size": [width, height],
            "resized_size": [new_width, new_height],
            "crop_box": [left, top, self.resolution, self.resolution],
        }
        return Preprocessed(image=pil_to_tensor(cropped), geometry=geometry)


class AdmCenterCrop(SquarePreprocess):
    """ADM's ``center_crop_arr`` (guided-diffusion; LlamaGen, VAR, DiT and ImageFolder use it).

    While the shorter side is at least twice ``resolution``, the image is halved with PIL ``BOX``
    (each side floor-divided by 2); then PIL ``BICUBIC`` brings the shorter side to ``resolution``,
    each side ``round(side * resolution / short)`` (Python's round, half to even); then the crop starts
    at ``(side - resolution) // 2``. Images smaller than ``resolution`` are upscaled.
    """

    name = "adm-center-crop"

    def __call__(self, image: Image.Image) -> Preprocessed:
        _require_rgb(image, self.name)
        original_size = list(image.size)
        while min(image.size) >= 2 * self.resolution:
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)
        halved_size = list(image.size)
        scale = self.resolution / min(image.size)
        resized = (round(image.width * scale), round(image.height * scale))
        image = image.resize(resized, Image.Resampling.BICUBIC)  # a copy when the size is unchanged
        left = (image.width - self.resolution) // 2
        top = (image.height - self.resolution) // 2
        cropped = image.crop((left, top, left + self.resolution, top + self.resolution))
        geometry = {
            "original_size": original_size,
            "halved_size": halved_size,
            "resized_size": list(resized),
            "crop_box": [left, top, self.resolution, self.resolution],
        }
        return Preprocessed(image=pil_to_tensor(cropped), geometry=geometry)


class CenterCrop(SquarePreprocess):
    """The central ``resolution`` square at native resolution, no resizing (torchvision's offsets)."""

    name = "center-crop"

    def __call__(self, image: Image.Image) -> Preprocessed:
        _require_rgb(image, self.name)
        width, height = image.size
        if width < self.resolution or height < self.resolution:
            raise DataError(
                f"preprocess {self.name!r}: image of {width}x{height} is smaller than the "
                f"{self.resolution}x{self.resolution} crop"
            )
        left = _torchvision_centre_offset(width, self.resolution)
        top = _torchvision_centre_offset(height, self.resolution)
        cropped = image.crop((left, top, left + self.resolution, top + self.resolution))
        geometry = {
            "original_size": [width, height],
            "crop_box": [left, top, self.resolution, self.resolution],
        }
        return Preprocessed(image=pil_to_tensor(cropped), geometry=geometry)


class LetterboxLanczos(SquarePreprocess):
    """TokBench's input: the whole image, longer side scaled to ``resolution``, on a black square.

    As the official TokBench scripts (``smart_padding``): scale factor
    ``min(resolution / width, resolution / height)``, new size ``ceil(side * factor)`` in floating
    point, LANCZOS (images smaller than ``resolution`` are upscaled), pasted at
    ``((resolution - new) // 2)`` so an odd leftover pixel of padding goes right or bottom.
    ``undo_letterbox`` inverts it.
    """

    name = "letterbox-lanczos"

    def __call__(self, image: Image.Image) -> Preprocessed:
        _require_rgb(image, self.name)
        width, height = image.size
        side = self.resolution
        factor = min(side / width, side / height)
        # Clamped to the canvas in case the float product rounds just above it.
        new_width = min(side, math.ceil(width * factor))
        new_height = min(side, math.ceil(height * factor))
        left, top = (side - new_width) // 2, (side - new_height) // 2
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(image.resize((new_width, new_height), Image.Resampling.LANCZOS), (left, top))
        geometry = {
            "original_size": [width, height],
            "content_box": [left, top, new_width, new_height],
            "canvas_size": [side, side],
        }
        return Preprocessed(image=pil_to_tensor(canvas), geometry=geometry)


def undo_letterbox(image: torch.Tensor, geometry: dict[str, Any]) -> Image.Image:
    """A letterboxed 3×R×R float [0, 1] image back at the original size: crop the content, LANCZOS.

    The tensor is first rounded to uint8 (the reconstruction protocol), as TokBench scores saved images.
    """
    canvas_width, canvas_height = geometry["canvas_size"]
    expected = (3, canvas_height, canvas_width)
    if tuple(image.shape) != expected:
        raise AdapterOutputError(
            f"undo_letterbox expects a {'×'.join(map(str, expected))} image (the letterbox canvas), "
            f"got shape {tuple(image.shape)}"
        )
    left, top, width, height = geometry["content_box"]
    content = tensor_to_pil(image).crop((left, top, left + width, top + height))
    return content.resize(tuple(geometry["original_size"]), Image.Resampling.LANCZOS)


def _torchvision_short_side_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """torchvision's ``Resize(int)`` output size: shorter side to ``resolution``, longer truncated."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(resolution * long / short)
    return (resolution, new_long) if width <= height else (new_long, resolution)


def _torchvision_centre_offset(extent: int, crop: int) -> int:
    """torchvision ``center_crop``'s offset: Python's round (half to even) of the centred start."""
    return round((extent - crop) / 2.0)


def _require_rgb(image: Image.Image, name: str) -> None:
    """Preprocessing takes the RGB images datasets produce; anything else is a caller's mistake."""
    if image.mode != "RGB":
        raise DataError(f"preprocess {name!r} expects an RGB image, got mode {image.mode}")


for _preprocess in (ImagenetCenterCrop, AdmCenterCrop, CenterCrop, LetterboxLanczos):
    PREPROCESSORS.register(_preprocess.name, _preprocess)


def build_preprocess(name: str, **options: Any) -> Preprocess:
    """Construct the preprocess registered as ``name`` with ``options``, rejecting unknown options."""
    cls = PREPROCESSORS.get(name)
    accepted = _accepted_options(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"preprocess {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or '(none)'}"
        )
    return cls(**options)


def _accepted_options(cls: type[Preprocess]) -> list[str]:
    """Keyword parameters of the class's constructor."""
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if p.kind in keyword_kinds and p.name != "self"]
