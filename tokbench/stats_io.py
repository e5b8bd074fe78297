"""Reading and writing FID reference statistics (``.npz`` files). Never unpickles anything.

Formats read (``numpy.load(allow_pickle=False)`` only):

- ``mu`` (d,) and ``sigma`` (d, d): clean-fid (``make_custom_stats`` and its downloadable
  ``*_clean_*.npz``), pytorch-fid, tokbench's own files (which add an int ``count``), and the ADM
  evaluator's reference batches (``VIRTUAL_imagenet256_labeled.npz``: ``arr_0`` images N×H×W×3
  uint8, ``mu``/``sigma`` pool-3 statistics and ``mu_s``/``sigma_s`` spatial ``mixed_6/conv``
  statistics for sFID; ``spatial=True`` selects the latter). The image count is taken from
  ``count``, else from the length of ``arr_0`` (read from the array header, without loading images).
- ``feats`` (n, d): clean-fid's KID reference features; statistics are computed from them.

Not read: torch-fidelity's statistics cache (``*-stat-fid-*.pt``) is a pickle written by
``torch.save`` and loading it would execute arbitrary code; convert it once, in an environment you
trust, with ``numpy.savez("ref.npz", **torch.load("x.pt", weights_only=False))``. An ADM *sample*
batch (``arr_0`` images only) has no statistics: extract features with the judge and save them with
``save_statistics``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from tokbench.errors import ConfigError
from tokbench.metrics.frechet import FeatureStatistics, statistics_from_features

SYMMETRY_TOLERANCE = 1e-6  # relative to max |sigma|; float32-stored covariances are within ~1e-7
#: Widest feature vector read without a judge to compare with (a float64 sigma of 8192² is 512 MiB).
MAX_FEATURE_DIM = 8192


def save_statistics(
    path: str | os.PathLike[str], stats: FeatureStatistics, images: np.ndarray | None = None
) -> Path:
    """Write ``mu``, ``sigma`` (float64), ``count`` if known and optionally ``arr_0`` (uint8 N×H×W×3
    images, as ADM's reference batches hold for precision/recall) to an ``.npz`` file, atomically."""
    target = Path(path)
    if target.suffix != ".npz":
        raise ConfigError(f"save_statistics: {target} must end in .npz (the format clean-fid and ADM read)")
    if not isinstance(stats, FeatureStatistics):
        raise ConfigError(f"save_statistics: expected FeatureStatistics, got {type(stats).__name__}")
    arrays: dict[str, np.ndarray] = {"mu": stats.mean, "sigma": stats.covariance}
    if stats.count is not None:
        arrays["count"] = np.asarray(stats.count, dtype=np.int64)
    if images is not None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ConfigError(
                f"save_statistics: images must be uint8 N×H×W×3, got {images.dtype} {images.shape}"
            )
        arrays["arr_0"] = images
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def load_statistics(
    path: str | os.PathLike[str], feature_dim: int | None = None, spatial: bool = False
) -> FeatureStatistics:
    """Read FID statistics from an ``.npz`` file; every problem raises a ``ConfigError`` naming the file.

    ``feature_dim`` is the judge's feature width; a file of another width is refused. Every array's
    shape and dtype are read from its header and checked (against ``feature_dim``, else against
    ``MAX_FEATURE_DIM``, and against the bytes the file holds) before any array is allocated.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"statistics file {source} does not exist (or is not a file)")
    _refuse_pickles(source)
    mean_key, covariance_key = ("mu_s", "sigma_s") if spatial else ("mu", "sigma")
    try:
        loaded = np.load(source, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ConfigError(
                f"statistics file {source} holds a single array of shape {loaded.shape}, "
                f"not an .npz with '{mean_key}' and '{covariance_key}'"
            )
        with loaded as data:
            keys = set(data.files)
            if {mean_key, covariance_key} <= keys:
                check_declared_array(source, mean_key, "(d,)", feature_dim)
                check_declared_array(source, covariance_key, "(d, d)", feature_dim)
                mean, covariance = data[mean_key], data[covariance_key]
                count = _count(source, data)
            elif not spatial and "feats" in keys:
                check_declared_array(source, "feats", "(n, d)", feature_dim)
                return _from_features(source, data["feats"], feature_dim)
            else:
                raise ConfigError(_missing_keys_message(source, keys, mean_key, covariance_key))
    except ConfigError:
        raise
    except ValueError as error:
        if "Object arrays" in str(error):
            raise ConfigError(
                f"statistics file {source} holds object arrays (pickled Python objects); "
                "tokbench never unpickles"
            ) from None
        if "pickle" in str(error):
            raise ConfigError(
                f"statistics file {source} is neither .npz nor .npy (numpy would have to unpickle it)"
            ) from None
        raise ConfigError(f"statistics file {source} is not a readable .npz: {error}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ConfigError(f"statistics file {source} is not a readable .npz: {error}") from None
    return _validated(source, mean, covariance, count, feature_dim, mean_key, covariance_key)


def _refuse_pickles(source: Path) -> None:
    with open(source, "rb") as handle:
        head = handle.read(8)
    if head[:1] == b"\x80":
        raise ConfigError(f"statistics file {source} is a Python pickle (torch.save); {_CONVERT_HINT}")
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(source) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile as error:
            raise ConfigError(f"statistics file {source} is a damaged zip/.npz archive: {error}") from None
        if any(name.endswith("data.pkl") for name in names):
            raise ConfigError(
                f"statistics file {source} is a torch.save checkpoint (e.g. torch-fidelity's statistics "
                f"cache); {_CONVERT_HINT}"
            )


_CONVERT_HINT = (
    "tokbench never unpickles statistics; convert it once where you trust the file: "
    'numpy.savez("ref.npz", **torch.load(PATH, weights_only=False)) and load ref.npz'
)


def _missing_keys_message(source: Path, keys: set[str], mean_key: str, covariance_key: str) -> str:
    message = f"statistics file {source} has no '{mean_key}'/'{covariance_key}' arrays (found {sorted(keys)})"
    if "arr_0" in keys:
        message += (
            "; it looks like an ADM sample batch of images: extract judge features and save their statistics "
            "with tokbench.stats_io.save_statistics"
        )
    return message


def check_declared_array(source: Path, key: str, layout: str, feature_dim: int | None) -> None:
    """Check the shape and dtype an array declares in its .npz header before it is read: real numbers,
    the ``layout`` (``(d,)``, ``(d, d)`` or ``(n, d)``), a feature width d of ``feature_dim`` (else at
    most ``MAX_FEATURE_DIM``), and no more data than the member holds."""
    declared = _declared_header(source, f"{key}.npy")
    if declared is None:
        return  # an unreadable header: numpy's own read fails, and the caller names the file
    shape, dtype, stored = declared
    where = f"statistics file {source}: '{key}'"
    if dtype.hasobject:
        raise ConfigError(
            f"statistics file {source} holds object arrays (pickled Python objects); tokbench never unpickles"
        )
    if dtype.kind not in "fiu":
        raise ConfigError(f"{where} must be real numbers, got dtype {dtype}")
    if len(shape) != (1 if layout == "(d,)" else 2):
        raise ConfigError(f"{where} must have shape {layout}, got {shape}")
    widths = shape if layout == "(d, d)" else shape[-1:]
    if feature_dim is not None and layout != "(d, d)":
        _check_dim(source, shape[-1], feature_dim)
    elif feature_dim is not None and any(width != feature_dim for width in widths):
        raise ConfigError(f"{where} declares shape {shape}, but the judge produces {feature_dim} features")
    elif max(widths) > MAX_FEATURE_DIM:
        raise ConfigError(f"{where} declares shape {shape}; at most {MAX_FEATURE_DIM} features are read")
    needed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if needed > stored:
        raise ConfigError(
            f"{where} declares shape {shape} ({needed:,} bytes of {dtype}), but the file holds only "
            f"{stored:,} bytes for it; the file is damaged or forged"
        )


def _declared_header(source: Path, member: str) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """Shape, dtype and stored (uncompressed) size of an array inside an .npz, from its header only."""
    try:
        with zipfile.ZipFile(source) as archive, archive.open(member) as handle:
            stored = archive.getinfo(member).file_size
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None
    return tuple(int(n) for n in shape), np.dtype(dtype), stored


def _count(source: Path, data: np.lib.npyio.NpzFile) -> int | None:
    if "count" in data.files:
        declared = _declared_header(source, "count.npy")
        if declared is not None and declared[0] != ():
            raise ConfigError(
                f"statistics file {source}: 'count' must be a scalar integer, got shape {declared[0]}"
            )
        count = data["count"]
        if count.shape != () or not np.issubdtype(count.dtype, np.integer):
            raise ConfigError(
                f"statistics file {source}: 'count' must be a scalar integer, got {count.dtype} {count.shape}"
            )
        return int(count)
    if "arr_0" in data.files:
        return _leading_dimension(source, "arr_0.npy")
    return None


def _leading_dimension(source: Path, member: str) -> int | None:
    """The first dimension of an array inside an .npz, read from its header (the data stays on disk)."""
    declared = _declared_header(source, member)
    return declared[0][0] if declared is not None and declared[0] else None


def _from_features(source: Path, features: np.ndarray, feature_dim: int | None) -> FeatureStatistics:
    if features.ndim != 2:
        raise ConfigError(f"statistics file {source}: 'feats' must be (n, d), got shape {features.shape}")
    _check_dim(source, features.shape[1], feature_dim)
    if not np.isfinite(features).all():
        raise ConfigError(f"statistics file {source}: 'feats' contains NaN or Inf")
    return statistics_from_features(features, source=str(source), keep_features=True)


def _check_dim(source: Path, dim: int, feature_dim: int | None) -> None:
    if feature_dim is not None and dim != feature_dim:
        raise ConfigError(
            f"statistics file {source} has feature dimension {dim}, but the judge produces {feature_dim}; "
            "use statistics computed with the same judge layer"
        )


def _validated(
    source: Path,
    mean: np.ndarray,
    covariance: np.ndarray,
    count: int | None,
    feature_dim: int | None,
    mean_key: str,
    covariance_key: str,
) -> FeatureStatistics:
    for key, array in ((mean_key, mean), (covariance_key, covariance)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ConfigError(
                f"statistics file {source}: '{key}' must be real numbers, got dtype {array.dtype}"
            )
    if mean.ndim != 1:
        raise ConfigError(f"statistics file {source}: '{mean_key}' must have shape (d,), got {mean.shape}")
    d = mean.shape[0]
    if covariance.shape != (d, d):
        raise ConfigError(
            f"statistics file {source}: '{covariance_key}' must have shape ({d}, {d}) to match "
            f"'{mean_key}', got {covariance.shape}"
        )
    _check_dim(source, d, feature_dim)
    mean, covariance = mean.astype(np.float64), covariance.astype(np.float64)
    for key, array in ((mean_key, mean), (covariance_key, covariance)):
        if not np.isfinite(array).all():
            raise ConfigError(f"statistics file {source}: '{key}' contains NaN or Inf")
    scale = max(float(np.abs(covariance).max()), np.finfo(np.float64).tiny)
    asymmetry = float(np.abs(covariance - covariance.T).max()) / scale
    if asymmetry > SYMMETRY_TOLERANCE:
        raise ConfigError(
            f"statistics file {source}: '{covariance_key}' is not symmetric (max |Σ − Σᵀ| / max |Σ| = "
            f"{asymmetry:.2e}); it is not a covariance matrix"
        )
    if (np.diagonal(covariance) < 0).any():
        raise ConfigError(
            f"statistics file {source}: '{covariance_key}' has negative variances on its diagonal"
        )
    if count is not None and count < 2:
        raise ConfigError(f"statistics file {source}: 'count' is {count}; statistics need at least 2 images")
    return FeatureStatistics(
        count=count, mean=mean, covariance=(covariance + covariance.T) / 2, source=str(source)
    )
