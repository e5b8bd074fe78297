"""Image sets made elsewhere, read as uint8 batches: ADM ``.npz`` sample batches and image folders.

An ADM sample batch is an ``.npz`` with ``arr_0`` (uint8 N×H×W×3) and optionally ``arr_1`` (N class
labels), as OpenAI's guided-diffusion ``sample.py`` writes it and its ``evaluator.py`` reads it.
``arr_0`` is streamed from the zip member in chunks, never loaded whole (50,000 images at 256² are
9.8 GB). A folder is every image under it (recursively, sorted by relative POSIX path, as
``folder:PATH`` lists it); torch-fidelity's and pytorch-fid's flat folders are the one-level case.
Folders carry no labels.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tokbench.data.base import ImageItem
from tokbench.data.decode import file_sha256, load_rgb
from tokbench.data.folder import FolderDataset
from tokbench.errors import ConfigError

IMAGES_MEMBER = "arr_0"
LABELS_MEMBER = "arr_1"


def open_images_member(archive: zipfile.ZipFile, path: Path) -> tuple[object, tuple[int, ...]]:
    """The open ``arr_0.npy`` member of ``archive`` positioned at its data, and its shape (N, H, W, 3)."""
    handle = archive.open(f"{IMAGES_MEMBER}.npy")
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = reader(handle)
    if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or fortran_order or shape[0] < 1:
        handle.close()
        raise ConfigError(
            f"{path}: '{IMAGES_MEMBER}' must be uint8 images N×H×W×3 (ADM's layout), got "
            f"{dtype} {tuple(shape)}{' in Fortran order' if fortran_order else ''}"
        )
    return handle, tuple(shape)


def npz_image_shape(path: Path) -> tuple[int, int, int]:
    """(N, H, W) of ``arr_0`` in ``path``, read from the member's header only."""
    try:
        with zipfile.ZipFile(path) as archive:
            handle, shape = open_images_member(archive, path)
            handle.close()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ConfigError(f"{path}: cannot read the header of '{IMAGES_MEMBER}': {error}") from None
    return shape[0], shape[1], shape[2]


def iter_npz_images(
    path: Path, chunk: int, start: int = 0, stop: int | None = None
) -> Iterator[torch.Tensor]:
    """``arr_0[start:stop]`` as uint8 N×3×H×W tensors of at most ``chunk`` images, streamed."""
    with zipfile.ZipFile(path) as archive:
        handle, shape = open_images_member(archive, path)
        row_bytes = int(np.prod(shape[1:]))
        stop = shape[0] if stop is None else min(stop, shape[0])
        with handle:
            _skip(handle, start * row_bytes, path)
            for first in range(start, stop, chunk):
                count = min(chunk, stop - first)
                data = handle.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise ConfigError(f"{path}: '{IMAGES_MEMBER}' ends early at image {first}")
                array = np.frombuffer(data, dtype=np.uint8).reshape(count, *shape[1:])
                yield torch.from_numpy(array.copy()).permute(0, 3, 1, 2).contiguous()


def _skip(handle, count: int, path: Path) -> None:
    """Read past ``count`` bytes of a (possibly compressed) zip member."""
    while count > 0:
        data = handle.read(min(count, 1 << 24))
        if not data:
            raise ConfigError(f"{path}: '{IMAGES_MEMBER}' ends early")
        count -= len(data)


@dataclass(frozen=True)
class ImageSet:
    """A set of images given by path: its kind, size, optional labels and content hash."""

    path: Path
    kind: str  # "npz" or "folder"
    count: int
    labels: np.ndarray | None
    sha256: str
    folder: FolderDataset | None = None

    def describe(self) -> dict[str, object]:
        """Name, kind, count and sha256, for records."""
        return {
            "name": self.path.name,
            "kind": self.kind,
            "count": self.count,
            "sha256": self.sha256,
            "labels": self.labels is not None,
        }

    def batches(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        """Images ``start`` … ``stop - 1`` as uint8 N×3×H×W batches of at most ``size`` (a folder
        batch also ends where the image size changes)."""
        stop = self.count if stop is None else min(stop, self.count)
        if self.kind == "npz":
            yield from iter_npz_images(self.path, size, start, stop)
            return
        items = self.folder.items()[start:stop]
        pending: list[torch.Tensor] = []
        for item in items:
            image = item_tensor(item)
            if pending and (len(pending) == size or pending[0].shape != image.shape):
                yield torch.stack(pending)
                pending = []
            pending.append(image)
        if pending:
            yield torch.stack(pending)


def open_image_set(path: str | Path) -> ImageSet:
    """An ADM ``.npz`` sample batch or an image folder; ``ConfigError`` naming the path otherwise."""
    path = Path(path)
    if path.is_dir():
        folder = FolderDataset(path)
        digest = hashlib.sha256()
        for entry in folder.manifest()["items"]:
            digest.update(f"{entry['id']}\0{entry['sha256']}\n".encode())
        return ImageSet(path, "folder", len(folder.items()), None, digest.hexdigest(), folder)
    if not path.is_file():
        raise ConfigError(f"image set {path} does not exist (expected a folder of images or an .npz batch)")
    if path.suffix.lower() != ".npz":
        raise ConfigError(f"image set {path}: expected a folder of images or an ADM .npz sample batch")
    count = npz_image_shape(path)[0]
    return ImageSet(path, "npz", count, _labels(path, count), file_sha256(path)[0])


def _labels(path: Path, count: int) -> np.ndarray | None:
    """``arr_1`` as int64 labels (one per image, non-negative integers), or None when absent."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if LABELS_MEMBER not in data.files:
                return None
            labels = data[LABELS_MEMBER]
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read '{LABELS_MEMBER}': {error}") from None
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise ConfigError(
            f"{path}: '{LABELS_MEMBER}' must hold {count} non-negative integer class labels (one per "
            f"image in '{IMAGES_MEMBER}'), got {labels.dtype} {labels.shape}"
        )
    return labels.astype(np.int64)


def load_image(path: Path, item_id: str | None = None) -> torch.Tensor:
    """One image file as a uint8 3×H×W tensor (``DataError`` naming the file when unusable)."""
    return _rgb_tensor(load_rgb(path, item_id))


def item_tensor(item: ImageItem) -> torch.Tensor:
    """A dataset item's image as a uint8 3×H×W tensor (``DataError`` naming the item when unusable)."""
    return _rgb_tensor(item.load())


def _rgb_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()
