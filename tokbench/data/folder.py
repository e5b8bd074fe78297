"""``folder:PATH``: every image under a directory, recursively, in a deterministic order."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from tokbench.data.base import Dataset, ImageItem
from tokbench.data.decode import SUPPORTED_EXTENSIONS, file_sha256, load_rgb
from tokbench.errors import ConfigError


class FolderDataset(Dataset):
    """Images with a supported extension (any case) under ``root``, sorted by relative POSIX path.

    Hidden files and folders (names starting with '.') are skipped and symlinked folders are not
    followed. Item ids are the relative POSIX paths; images are decoded only when an item is loaded.
    """

    name = "folder"

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.exists():
            raise ConfigError(f"dataset folder {root} does not exist")
        if not root.is_dir():
            raise ConfigError(f"dataset folder {root} is not a directory")
        self.root = root.resolve()
        self._paths = _find_images(self.root)
        if not self._paths:
            raise ConfigError(
                f"dataset folder {root} contains no images with extensions "
                f"{', '.join(SUPPORTED_EXTENSIONS)} (hidden files and folders are skipped)"
            )
        self._manifest: dict[str, Any] | None = None

    @classmethod
    def from_spec_argument(cls, argument: str | None) -> FolderDataset:
        """``folder:PATH`` names the directory; the path is required."""
        if not argument:
            raise ConfigError("dataset 'folder' needs a directory: use folder:PATH")
        return cls(Path(argument))

    def items(self) -> list[ImageItem]:
        """One lazily loaded item per image file."""
        return [
            ImageItem(id=item_id, source=str(path), load=functools.partial(load_rgb, path, item_id))
            for item_id, path in self._paths.items()
        ]

    def manifest(self) -> dict[str, Any]:
        """Folder name (not its absolute path, so copies compare equal) and each file's sha256 and size.

        The files are hashed on the first call only; later calls return the same cached manifest.
        """
        if self._manifest is None:
            entries = []
            for item_id, path in self._paths.items():
                sha256, size = file_sha256(path)
                entries.append({"id": item_id, "sha256": sha256, "bytes": size})
            self._manifest = {"name": self.name, "root": self.root.name, "items": entries}
        return self._manifest


def _find_images(root: Path) -> dict[str, Path]:
    """Relative POSIX path → absolute path of every non-hidden supported image, sorted by the former."""
    found: dict[str, Path] = {}
    for directory, subdirectories, filenames in os.walk(root, onerror=_raise_unreadable):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for filename in filenames:
            path = Path(directory, filename)
            if filename.startswith(".") or path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                continue
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path
    return dict(sorted(found.items()))


def _raise_unreadable(error: OSError) -> None:
    """``os.walk`` error hook: an unreadable subfolder fails loudly instead of being skipped."""
    raise ConfigError(f"cannot list dataset folder {error.filename}: {error.strerror}")
