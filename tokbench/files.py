"""Files that survive a kill (cleaning up the temporary files of killed writers, cache files that are
checked when read) and output paths checked before any work (``check_output_paths``).

Every tokbench writer writes to a hidden temporary file beside its target and renames it into place,
so a kill leaves a temporary file, never a torn target. ``remove_stale_temp_files`` deletes those
leftovers the next time something is written to the same folder. A temporary file is removed only
when it is older than ``STALE_AFTER_SECONDS`` (one hour): a live writer is still writing to its file,
so the file's modification time stays recent, and a concurrent run's temporary file is never taken
from under it. Writers that hold an exclusive lock for every write (the record store) pass
``min_age_seconds=0``, since no other writer can be mid-write while they hold it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokbench.errors import ConfigError

logger = logging.getLogger(__name__)

#: Age (seconds since last modification) after which a temporary file is a killed writer's leftover.
STALE_AFTER_SECONDS = 3600.0


def remove_stale_temp_files(
    directory: Path, patterns: Iterable[str], min_age_seconds: float = STALE_AFTER_SECONDS
) -> list[Path]:
    """Delete the files in ``directory`` matching any glob of ``patterns`` that were last modified more
    than ``min_age_seconds`` ago, and return them; files that vanish or cannot be removed are left."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    cutoff = time.time() - min_age_seconds
    removed = []
    for pattern in patterns:
        for path in sorted(directory.glob(pattern)):
            try:
                if path.is_file() and path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:  # removed meanwhile by another process, or not ours to remove
                continue
    if removed:
        logger.info("removed %d temporary file(s) left by killed writers in %s", len(removed), directory)
    return removed


def load_safetensors_cache(path: Path, what: str) -> dict[str, Any] | None:
    """The tensors of a cache file, or None when it is absent; a damaged file (truncated, garbled) is
    named in a warning and removed, so the caller recomputes and rewrites it."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        return None
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error types (and OSError) for damaged files
        reason = " ".join(str(error).split()) or type(error).__name__
        logger.warning("%s %s is damaged (%s); it is removed and will be recomputed", what, path, reason)
        path.unlink(missing_ok=True)
        return None


def check_output_paths(
    files: dict[str, str | os.PathLike[str] | None] | None = None,
    folders: dict[str, str | os.PathLike[str] | None] | None = None,
) -> None:
    """Raise ConfigError naming the flag and path unless each output can be written, before any work.

    ``files`` (flag → path) must be files in an existing, writable folder, not folders; ``folders``
    (flag → path) must be folders, or be creatable: no file may sit where the folder or one of its
    parents should be, and the nearest existing parent must be writable. None values are skipped.
    """
    for flag, value in (files or {}).items():
        if value is not None:
            _check_output_file(flag, Path(value))
    for flag, value in (folders or {}).items():
        if value is not None:
            _check_output_folder(flag, Path(value))


def _check_output_file(flag: str, path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the path of a file to write")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"{flag} {path}: the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{flag} {path}: no permission to write there")


def _check_output_folder(flag: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder (it is created if missing)")
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise ConfigError(f"{flag} {path}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: no permission to write in {existing}")
