"""Files that survive a kill: cleaning up the temporary files of killed writers, and cache files that
are checked when read.

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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
