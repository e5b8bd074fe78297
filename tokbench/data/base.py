"""Dataset and preprocessing contracts shared by every data source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from PIL import Image

from tokbench.errors import ConfigError
from tokbench.hashing import sha256_json
from tokbench.provenance import imaging_versions


@dataclass(frozen=True)
class ImageItem:
    """One dataset image: a stable id, where it comes from, and how to load it as RGB.

    ``load`` raises ``DataError`` naming the item when the image cannot be used.
    """

    id: str
    source: str
    load: Callable[[], Image.Image] = field(compare=False, repr=False)
    #: Class label (an index into the dataset's ``class_names()``), or None for unlabelled data.
    label: int | None = None


class Dataset(ABC):
    """An ordered, deterministic list of images with a manifest that identifies them."""

    name: ClassVar[str] = ""

    @abstractmethod
    def items(self) -> list[ImageItem]:
        """Every item, always in the same order."""

    @abstractmethod
    def manifest(self) -> dict[str, Any]:
        """A JSON-able description of the items (ids, sources, sha256) that pins the data."""

    def class_names(self) -> tuple[str, ...] | None:
        """Class names indexed by the items' labels, or None when the dataset has no labels."""
        return None

    def manifest_hash(self) -> str:
        """sha256 of the canonical JSON of the manifest."""
        return sha256_json(self.manifest())

    @classmethod
    def from_spec_argument(cls, argument: str | None) -> Dataset:
        """Build from the text after ``name:`` in a dataset spec; by default no argument is taken."""
        if argument is not None:
            raise ConfigError(f"dataset {cls.name!r} takes no argument, got {cls.name}:{argument}")
        return cls()


@dataclass(frozen=True)
class Preprocessed:
    """A preprocessed image (float32 3×H×W in [0, 1]) and the geometry needed to undo it."""

    image: torch.Tensor
    geometry: dict[str, Any]


class Preprocess(ABC):
    """A named, versioned image transform from an RGB PIL image to the model's input tensor."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"

    @abstractmethod
    def __call__(self, image: Image.Image) -> Preprocessed:
        """Transform one RGB image."""

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """Options that change the output (resolution, ...); they enter the protocol hash."""

    def describe(self) -> dict[str, Any]:
        """Name, version, options and the imaging libraries that compute it, as recorded (and hashed)."""
        return {"name": self.name, "version": self.version, **self.options(), "imaging": imaging_versions()}
