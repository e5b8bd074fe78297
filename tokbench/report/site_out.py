"""Where ``tokbench site build`` writes: a new or empty folder, or one an earlier build wrote.

A build's folder holds a manifest, ``.tokbench-site`` (JSON: the relative path of every file the build
wrote). A rebuild refuses a folder that holds anything its manifest does not list, builds into a
staging folder beside ``out``, swaps it into place and then deletes only the listed files of the
replaced build, so nothing a build did not write is ever deleted. ``out`` may neither contain the
record store nor lie inside it. Staging folders of builds killed over an hour ago are removed.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from tokbench.errors import ConfigError
from tokbench.files import STALE_AFTER_SECONDS

logger = logging.getLogger(__name__)

MARKER = ".tokbench-site"
MANIFEST_FORMAT = "tokbench-site/1"
#: Name part of build folders beside ``out`` (staging, and the replaced site while it is removed).
_STAGING = "tokbench-staging-"


def check_out(store_root: Path, out: Path) -> set[str]:
    """The files an earlier build in ``out`` wrote (empty for a new or empty folder); ConfigError if
    ``out`` is a file, holds files no build wrote, contains the store or lies inside it."""
    target, store = out.resolve(), store_root.resolve()
    if target == store or target in store.parents:
        raise ConfigError(
            f"--out {out} contains the record store {store_root}; a rebuild replaces --out, so choose "
            "an output folder outside the store"
        )
    if store in target.parents:
        raise ConfigError(f"--out {out} is inside the record store {store_root}; choose a folder outside it")
    if not out.exists():
        return set()
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a new or empty directory")
    entries = _site_entries(out)
    if not entries:
        return set()
    if MARKER not in entries:
        raise ConfigError(
            f"{out} exists and is not an earlier tokbench site; choose a new or empty directory"
        )
    owned = _manifest_files(out / MARKER)
    foreign = sorted(entries - owned)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(
            f"{out} is an earlier tokbench site but also holds files no site build wrote ({listed}); "
            "a rebuild would delete them: move them out or choose another directory"
        )
    return owned


def _manifest_files(marker: Path) -> set[str]:
    """The files a build's manifest lists; a marker from before manifests lists the site's layout."""
    text = marker.read_text(encoding="utf-8", errors="replace")
    try:
        manifest = json.loads(text)
    except ValueError:
        manifest = None
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        return {name for name in manifest.get("files", []) if isinstance(name, str)}
    root = marker.parent
    return {name for name in _site_entries(root) if _is_layout_file(name)}


def _is_layout_file(name: str) -> bool:
    """Whether a relative path fits the layout an older build (without a manifest) wrote."""
    parts = name.split("/")
    if len(parts) == 1:
        return name == MARKER or name.endswith((".html", ".csv", ".json"))
    return len(parts) == 2 and (
        parts[0] == "assets" or (parts[0] == "records" and name.endswith((".html", ".json")))
    )


def _site_entries(root: Path) -> set[str]:
    """Relative POSIX paths of every file and symlink under ``root`` (symlinked folders not followed)."""
    entries = set()
    for directory, folders, files in os.walk(root):
        for name in [*files, *(folder for folder in folders if Path(directory, folder).is_symlink())]:
            entries.add(Path(directory, name).relative_to(root).as_posix())
    return entries


def _remove_site(old: Path, owned: set[str]) -> None:
    """Delete the files of a replaced build that its manifest lists (or that were checked as ``owned``
    before the build: a concurrent build may have replaced that one), then its emptied folders;
    anything else (a file added while the build ran) is left, with a warning."""
    if (old / MARKER).is_file():
        owned = owned | _manifest_files(old / MARKER)
    for name in owned & _site_entries(old):  # only what is really inside: no '..', no followed links
        path = old / name
        if path.is_symlink() or path.is_file():
            path.unlink()
    for directory, _, _ in sorted(os.walk(old), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    if old.exists():
        logger.warning("site build: kept %s, which holds files no site build wrote", old)


def _remove_stale_builds(out: Path) -> None:
    """Remove staging folders of builds of ``out`` killed over an hour ago (named by mkdtemp here)."""
    cutoff = time.time() - STALE_AFTER_SECONDS
    for path in out.parent.glob(f".{glob.escape(out.name)}.{_STAGING}*"):
        if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)


def new_staging(out: Path) -> Path:
    """A new, empty staging folder beside ``out`` (after removing those of long-dead builds)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{_STAGING}", dir=out.parent))


def write_manifest(staging: Path) -> None:
    """Write the manifest listing every file of the finished build in ``staging``."""
    manifest = {"format": MANIFEST_FORMAT, "files": sorted(_site_entries(staging) | {MARKER})}
    (staging / MARKER).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def install(staging: Path, out: Path, owned: set[str]) -> None:
    """Swap the finished build into ``out``; delete only the ``owned`` files of the build it replaces."""
    staging.chmod(0o755)
    if not out.exists():
        staging.rename(out)
        return
    old = out.with_name(f".{out.name}.{_STAGING}old-{os.getpid()}")
    out.rename(old)
    staging.rename(out)
    _remove_site(old, owned)
