"""``folder:PATH``: every image under a directory, recursively, in a deterministic order."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from tokbench.data.base import Dataset, ImageItem
from tokbench.data.decode import (
    SUPPORTED_EXTENSIONS,
    UNSUPPORTED_IMAGE_EXTENSIONS,
    display_path,
    file_sha256,
    load_rgb,
)
from tokbench.errors import ConfigError, DataError

#: Extensions of the files a folder dataset lists: supported ones are decoded, the others are items
#: that every run skips with the reason (so they are counted, never silently ignored).
IMAGE_EXTENSIONS = SUPPORTED_EXTENSIONS + UNSUPPORTED_IMAGE_EXTENSIONS


class FolderDataset(Dataset):
    """Images (any case of an ``IMAGE_EXTENSIONS`` extension) under ``root``, sorted by relative POSIX path.

    Hidden files and folders (names starting with '.') are skipped and symlinked folders are not
    followed. Item ids are the relative POSIX paths, with the bytes of a name that is not UTF-8 written
    as ``\\xNN`` escapes (the file is still read by its real name); images are decoded only when an item
    is loaded, and an unsupported format or an unreadable file is an item every run skips with its
    reason (or stops at, under ``--on-error fail``).
    """

    name = "folder"

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.exists():
            raise ConfigError(f"dataset folder {display_path(root)} does not exist")
        if not root.is_dir():
            raise ConfigError(f"dataset folder {display_path(root)} is not a directory")
        self.root = root.resolve()
        self._paths = _find_images(self.root)
        if not any(path.suffix.lower() in SUPPORTED_EXTENSIONS for path in self._paths.values()):
            unsupported = f" ({len(self._paths)} in unsupported formats)" if self._paths else ""
            raise ConfigError(
                f"dataset folder {display_path(root)} contains no images with extensions "
                f"{', '.join(SUPPORTED_EXTENSIONS)}{unsupported} (hidden files and folders are skipped)"
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
            ImageItem(id=item_id, source=display_path(path), load=functools.partial(load_rgb, path, item_id))
            for item_id, path in self._paths.items()
        ]

    def manifest(self) -> dict[str, Any]:
        """Folder name (not its absolute path, so copies compare equal) and each file's sha256 and size.

        A file that cannot be read has null sha256 and size (its item is skipped when loaded). The files
        are hashed on the first call only; later calls return the same cached manifest.
        """
        if self._manifest is None:
            entries = []
            for item_id, path in self._paths.items():
                try:
                    sha256, size = file_sha256(path)
                except DataError:
                    sha256, size = None, None
                entries.append({"id": item_id, "sha256": sha256, "bytes": size})
            self._manifest = {"name": self.name, "root": display_path(self.root.name), "items": entries}
        return self._manifest


def _find_images(root: Path) -> dict[str, Path]:
    """Item id (the relative POSIX path, escaped by ``display_path``) → absolute path of every
    non-hidden image file, sorted by id."""
    found: dict[str, Path] = {}
    for directory, subdirectories, filenames in os.walk(root, onerror=_raise_unreadable):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for filename in filenames:
            path = Path(directory, filename)
            if filename.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if path.is_file():
                item_id = display_path(path.relative_to(root).as_posix())
                if item_id in found:
                    raise ConfigError(
                        f"dataset folder {display_path(root)}: two files have the item id {item_id!r} "
                        "(a name that is not UTF-8 is escaped as \\xNN); rename one of them"
                    )
                found[item_id] = path
    return dict(sorted(found.items()))


def _raise_unreadable(error: OSError) -> None:
    """``os.walk`` error hook: an unreadable subfolder fails loudly instead of being skipped."""
    raise ConfigError(f"cannot list dataset folder {display_path(error.filename)}: {error.strerror}")
