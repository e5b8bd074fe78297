"""Judge weights are resolved, never assumed: explicit path → $TOKBENCH_WEIGHTS_DIR → a package that
bundles the file → the download cache → a download; the sha256 is checked every time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from tokbench.errors import WeightsError
from tokbench.files import remove_stale_temp_files
from tokbench.hashing import file_sha256

WEIGHTS_DIR_ENV = "TOKBENCH_WEIGHTS_DIR"
CACHE_DIR_ENV = "TOKBENCH_CACHE"
OFFLINE_ENV = "TOKBENCH_OFFLINE"


@dataclass(frozen=True)
class BundledFile:
    """A weights file shipped inside an installed distribution (read by path, never imported)."""

    distribution: str
    path: str


@dataclass(frozen=True)
class WeightsSpec:
    """Where one weights file can come from and the sha256 it must have."""

    name: str
    filename: str
    sha256: str
    bundled: tuple[BundledFile, ...] = ()
    urls: tuple[str, ...] = ()
    install_hint: str = ""
    licence: str = ""
    paper: str = ""


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file that passed its hash check, and where it was found."""

    spec: WeightsSpec
    path: Path
    source: str  # explicit | env | package | cache | download


def cache_dir() -> Path:
    """Where downloaded and converted weights live: ``$TOKBENCH_CACHE`` or ~/.cache/tokbench."""
    root = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "tokbench"
    return Path(root)


def _checked(spec: WeightsSpec, path: Path, source: str) -> ResolvedWeights:
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise WeightsError(
            f"weights {spec.name!r} at {path} ({source}) have sha256 {actual}, expected {spec.sha256}; "
            f"remove or replace the file. {_how_to_supply(spec)}"
        )
    return ResolvedWeights(spec=spec, path=path, source=source)


def _how_to_supply(spec: WeightsSpec) -> str:
    ways = [f"put {spec.filename} in ${WEIGHTS_DIR_ENV}"]
    if spec.install_hint:
        ways.insert(0, spec.install_hint)
    if spec.urls:
        ways.append(f"download {spec.urls[0]} (sha256 {spec.sha256})")
    return "To supply it: " + ", or ".join(ways) + "."


def _bundled_path(entry: BundledFile) -> Path | None:
    try:
        located = Path(str(distribution(entry.distribution).locate_file(entry.path)))
    except PackageNotFoundError:
        return None
    return located if located.is_file() else None


def candidate_paths(spec: WeightsSpec, explicit: Path | None = None) -> list[tuple[str, Path]]:
    """Every local place the file could be, in resolution order, whether or not it exists."""
    candidates: list[tuple[str, Path]] = []
    if explicit is not None:
        candidates.append(("explicit", Path(explicit)))
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if env_dir:
        candidates.append(("env", Path(env_dir) / spec.filename))
    for entry in spec.bundled:
        path = _bundled_path(entry)
        if path is not None:
            candidates.append(("package", path))
    candidates.append(("cache", cache_dir() / "weights" / spec.filename))
    return candidates


def resolve_weights(
    spec: WeightsSpec, explicit: Path | None = None, download: bool = True
) -> ResolvedWeights:
    """Find ``spec``'s file, check its sha256, downloading it into the cache only as a last resort."""
    for source, path in candidate_paths(spec, explicit):
        if path.is_file():
            return _checked(spec, path, source)
        if source == "explicit":
            raise WeightsError(
                f"weights file {path} for {spec.name!r} does not exist; pass an existing file, or omit the "
                f"path to resolve the weights. {_how_to_supply(spec)}"
            )
    if download and spec.urls and not offline():
        return _checked(spec, _download(spec), "download")
    refused = f" (downloads are disabled by ${OFFLINE_ENV})" if download and spec.urls else ""
    raise WeightsError(
        f"weights {spec.name!r} ({spec.filename}) are not available offline{refused}. {_how_to_supply(spec)}"
    )


def offline() -> bool:
    """True when ``$TOKBENCH_OFFLINE`` forbids downloads (any value but empty, 0, false, no, off)."""
    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def locate_weights(spec: WeightsSpec) -> tuple[str, Path] | None:
    """Where the file would resolve from without downloading, or None (for ``tokbench doctor``)."""
    for source, path in candidate_paths(spec):
        if path.is_file():
            return source, path
    return None


def _download(spec: WeightsSpec) -> Path:
    target = cache_dir() / "weights" / spec.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(target.parent, [".download-*.partial"])  # downloads a kill interrupted
    errors = []
    for url in spec.urls:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".download-", suffix=".partial")
        os.close(handle)
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(temporary, "wb") as out:
                shutil.copyfileobj(response, out)
            if file_sha256(Path(temporary)) != spec.sha256:
                raise WeightsError(f"{url} served a file with the wrong sha256")
            os.replace(temporary, target)
            return target
        except (OSError, ValueError, WeightsError) as error:  # ValueError: a malformed or unknown URL
            errors.append(f"{url}: {error}")
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    raise WeightsError(
        f"weights {spec.name!r} could not be downloaded ({'; '.join(errors)}). {_how_to_supply(spec)}"
    )
