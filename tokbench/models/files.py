"""Outputs made elsewhere, scored as models: ``reconstructions:DIR`` (tokenizers) and ``samples:PATH``
(generators).

The model ran on someone else's machine; tokbench only reads its files. The adapters never encode,
decode or sample: the tracks ask them for the file of an item (``FileReconstructions``) or for rows of
an image set (``FileSamples``). Their identity is the content of the files (sha256 over every image
file's relative path and bytes), not where they are, so a moved folder keeps its records.

Layouts ``reconstructions:DIR`` accepts (any image extension for the same stem, one file per item):

- ``recon``/``pfid`` style: ``DIR/<item id without extension>.<ext>``, the reconstruction of the
  preprocessed image (e.g. 256×256 for recon);
- TokBench, tokbench-native: ``DIR/<R>/<original file stem>.<ext>`` for each resolution R;
- TokBench, official scripts: ``DIR/<anything>_<R>/<original file name>`` (``resize_rec.py`` and every
  ``*_rec.py`` save to ``<save_path>_<R>/``), e.g. ``DIR/text_256/0001.jpg``, ``DIR/face_256/...``;
  restored to the original size, as those scripts write them.

An optional sidecar ``DIR/tokbench_rate.json`` gives the rate: ``{"bits": {"<item id>": bits, ...},
"num_tokens": T}`` (bits per item; tokens per image). Without it there is no bits per pixel.

``tokbench run --save-reconstructions DIR`` writes a model's reconstructions in the first layout (PNG,
lossless), so ``reconstructions:DIR`` gives that model's numbers again (``save_image``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.adapters.base import Encoded, Generator, ModelCard, Tokenizer
from tokbench.data.decode import SUPPORTED_EXTENSIONS, file_sha256
from tokbench.data.image_sets import ImageSet, load_image, open_image_set
from tokbench.data.video import VIDEO_EXTENSIONS
from tokbench.errors import ConfigError, DataError

RATE_SIDECAR = "tokbench_rate.json"
RAN_ELSEWHERE = "outputs made elsewhere, read from files"


def item_stem(item_id: str) -> str:
    """An item id without its image extension: where its reconstruction lives (any extension)."""
    path = Path(item_id)
    return path.with_suffix("").as_posix() if path.suffix.lower() in SUPPORTED_EXTENSIONS else item_id


class FileReconstructions(Tokenizer):
    """``reconstructions:DIR``: the reconstruction of an item is the image file at its path under DIR."""

    positional_argument: ClassVar[str] = "path"
    location_arguments: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(self, path: str) -> None:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"reconstructions:{path}: not a directory of reconstructed images")
        self.root = root.resolve()
        self._files = index_files(self.root, SUPPORTED_EXTENSIONS)
        if not self._files:
            raise ConfigError(
                f"reconstructions:{path}: no images with extensions {', '.join(SUPPORTED_EXTENSIONS)} "
                f"under it{other_kind(self.root, VIDEO_EXTENSIONS, 'video', 'video suites (video-recon)')}"
            )
        self._sha256 = content_sha256(self.root, self._files, RATE_SIDECAR)
        self.rate = _read_rate(self.root)

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """Files made elsewhere are not a released model."""
        return ()

    @property
    def weights_sha256(self) -> str:
        """sha256 over every image file's relative path and content (and the rate sidecar)."""
        return self._sha256

    def describe(self) -> dict[str, Any]:
        """What the record says about the files."""
        return {
            "ran_elsewhere": True,
            "source": RAN_ELSEWHERE,
            "files": sum(len(paths) for paths in self._files.values()),
            "content_sha256": self._sha256,
            "rate_sidecar": RATE_SIDECAR if self.rate is not None else None,
        }

    def encode(self, images: torch.Tensor) -> Encoded:
        """Not available: the model ran elsewhere; tracks read files by item instead."""
        raise ConfigError("reconstructions:DIR holds outputs made elsewhere; it cannot encode new images")

    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Not available: the model ran elsewhere; tracks read files by item instead."""
        raise ConfigError("reconstructions:DIR holds outputs made elsewhere; it cannot decode")

    def stems(self) -> set[str]:
        """Every file's relative path without extension."""
        return set(self._files)

    def path_of(self, stem: str, item_id: str) -> Path:
        """The one file for ``stem`` (a relative path without extension), or ``DataError`` saying why."""
        paths = self._files.get(stem, [])
        if not paths:
            raise DataError(f"item {item_id}: no reconstruction {stem}.* under {self.root}")
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise DataError(f"item {item_id}: several reconstructions under {self.root}: {names}")
        return paths[0]

    def read(self, stem: str, item_id: str, size: tuple[int, int]) -> torch.Tensor:
        """The item's reconstruction as uint8 3×H×W, checked to be ``size`` (H, W)."""
        path = self.path_of(stem, item_id)
        image = load_image(path, item_id)
        if tuple(image.shape[1:]) != tuple(size):
            raise DataError(
                f"item {item_id}: reconstruction {path.relative_to(self.root)} is "
                f"{image.shape[2]}×{image.shape[1]}, expected {size[1]}×{size[0]}"
            )
        return image

    def tokbench_stem(self, file_name: str, side: int) -> str:
        """Where the reconstruction of TokBench image ``file_name`` at resolution ``side`` lives: the
        native ``<side>/`` folder or an official ``*_<side>/`` folder (an error when both hold it)."""
        stem = Path(file_name).stem
        folders = sorted({s.split("/")[0] for s in self._files if "/" in s})
        matching = [f for f in folders if f == str(side) or f.endswith(f"_{side}")]
        found = [f"{folder}/{stem}" for folder in matching if f"{folder}/{stem}" in self._files]
        if len(found) > 1:
            raise DataError(f"{file_name}: reconstructions at {side}px in several folders: {found}")
        return found[0] if found else f"{side}/{stem}"

    def read_tokbench(self, file_name: str, image_id: str, side: int, size: tuple[int, int]) -> np.ndarray:
        """The saved reconstruction of a TokBench image at resolution ``side``, restored to the
        original ``size`` (H, W) by whoever made it, as uint8 H×W×3 (no letterbox, restore or save)."""
        stem = self.tokbench_stem(file_name, side)
        return self.read(stem, f"{image_id}@{side}px", size).permute(1, 2, 0).numpy()

    def tokbench_extras(self, file_names: list[str], sides: list[int]) -> list[str]:
        """Files that are the reconstruction of no TokBench image at no resolution."""
        expected = {self.tokbench_stem(name, side) for name in file_names for side in sides}
        return sorted(self.stems() - expected)

    def bits(self, item_id: str) -> float | None:
        """The sidecar's bits for the item, or None without a sidecar."""
        if self.rate is None:
            return None
        value = self.rate["bits"].get(item_id)
        if value is None:
            raise DataError(f"item {item_id}: {self.root / RATE_SIDECAR} gives no bits for it")
        return value


class FileSamples(Generator):
    """``samples:PATH``: an ADM sample batch (``.npz``: ``arr_0`` uint8 N×H×W×3, optional ``arr_1``
    labels) or a folder of images, scored by the gen suite as the samples of a generator."""

    positional_argument: ClassVar[str] = "path"
    location_arguments: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(self, path: str) -> None:
        self.images: ImageSet = open_image_set(Path(path).expanduser())

    @property
    def weights_sha256(self) -> str:
        """sha256 of the samples (the ``.npz`` file, or every image file of the folder)."""
        return self.images.sha256

    @property
    def num_classes(self) -> int | None:
        """One more than the largest label, or None for unlabelled samples."""
        return None if self.images.labels is None else int(self.images.labels.max()) + 1

    def describe(self) -> dict[str, Any]:
        """What the record says about the samples."""
        return {"ran_elsewhere": True, "source": RAN_ELSEWHERE, **self.images.describe()}

    def sample(self, conditions: list[Any], seeds: list[int]) -> torch.Tensor:
        """Not available: the samples were drawn elsewhere; the gen track reads them by index."""
        raise ConfigError("samples:PATH holds samples drawn elsewhere; it cannot draw new ones")

    def class_counts(self) -> dict[int, int]:
        """Samples per label (empty without labels)."""
        if self.images.labels is None:
            return {}
        values, counts = np.unique(self.images.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def index_files(root: Path, extensions: tuple[str, ...]) -> dict[str, list[Path]]:
    """Relative POSIX path without extension → the files with that stem and one of ``extensions``
    (any case; hidden files and folders skipped), sorted."""
    found: dict[str, list[Path]] = defaultdict(list)
    for directory, subdirectories, filenames in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for filename in sorted(filenames):
            path = Path(directory, filename)
            if filename.startswith(".") or path.suffix.lower() not in extensions:
                continue
            found[path.relative_to(root).with_suffix("").as_posix()].append(path)
    return dict(sorted(found.items()))


def content_sha256(root: Path, files: dict[str, list[Path]], sidecar: str | None = None) -> str:
    """sha256 over every file's relative path and content (and ``sidecar`` under ``root`` if present)."""
    digest = hashlib.sha256()
    extra = [root / sidecar] if sidecar is not None and (root / sidecar).is_file() else []
    for path in [p for paths in files.values() for p in paths] + extra:
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_sha256(path)[0]}\n".encode())
    return digest.hexdigest()


def other_kind(root: Path, extensions: tuple[str, ...], what: str, where: str) -> str:
    """A clause for a folder that holds files of the other kind (``extensions``), else ''."""
    count = sum(len(paths) for paths in index_files(root, extensions).values())
    return f"; it holds {count} {what} file(s), which reconstructions:DIR reads for {where}" if count else ""


def save_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a file to a hidden temporary name next to ``path`` (same extension), then rename it:
    a reader never sees half a file (``index_files`` skips hidden files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_image(root: Path, item_id: str, image: torch.Tensor) -> Path:
    """Save a uint8 3×H×W reconstruction as ``root/<item stem>.png`` (lossless), where
    ``reconstructions:root`` reads it back for the item."""
    from PIL import Image

    path = root / f"{item_stem(item_id)}.png"
    array = image.permute(1, 2, 0).cpu().numpy()
    save_atomically(path, lambda target: Image.fromarray(array).save(target, format="PNG"))
    return path


def _read_rate(root: Path) -> dict[str, Any] | None:
    """The rate sidecar, checked: ``bits`` maps item ids to non-negative numbers; ``num_tokens`` an int."""
    path = root / RATE_SIDECAR
    if not path.is_file():
        return None
    try:
        rate = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not readable JSON: {error}") from None
    bits = rate.get("bits") if isinstance(rate, dict) else None
    if not isinstance(bits, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in bits.values()
    ):
        raise ConfigError(f'{path}: expected {{"bits": {{item id: non-negative bits, ...}}}}')
    tokens = rate.get("num_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        raise ConfigError(f"{path}: num_tokens must be a non-negative integer, got {tokens!r}")
    return {"bits": {str(k): float(v) for k, v in bits.items()}, "num_tokens": tokens}


def check_class_balance(samples: FileSamples, settings: Any) -> None:
    """With labels: every label is a class of the suite and every class has ``settings.per_class``
    samples, as the suite would draw them; a ``ConfigError`` naming the file and the first bad class."""
    counts = samples.class_counts()
    if not counts:
        return
    where = samples.images.path
    outside = [label for label in counts if label >= settings.num_classes]
    if outside:
        raise ConfigError(
            f"{where}: label {outside[0]} is not one of the suite's {settings.num_classes} classes"
        )
    for label in range(settings.num_classes):
        if counts.get(label, 0) != settings.per_class:
            raise ConfigError(
                f"{where}: class {label} has {counts.get(label, 0)} samples, the suite needs "
                f"{settings.per_class} of each of its {settings.num_classes} classes (class-balanced "
                "sampling, as ADM's evaluation batches)"
            )


def class_balance(samples: FileSamples) -> str:
    """How the record states the class balance of samples drawn elsewhere."""
    if samples.images.labels is None:
        return "not checked: the samples carry no labels ('arr_1')"
    return "checked: every class has the suite's number of samples"
