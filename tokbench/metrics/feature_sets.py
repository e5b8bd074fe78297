"""Helpers for metrics that keep whole feature sets (KID, precision/recall, Inception Score).

Such metrics hold per-image rows in ``"cat"`` states. Their values depend on which rows fall into
which random subset or split, so before computing, the rows are put into a canonical order that
depends only on their contents (a hash of each row's bytes). Shards merged in any order, and any
batching, then give bit-identical results.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from tokbench.errors import ConfigError, TokbenchError


def check_rows(value: torch.Tensor, metric: str, field: str, width: int | None) -> torch.Tensor:
    """Validate an ``n × width`` batch of per-image rows; return a detached float32 CPU copy.

    Rows are stored in float32 (judge outputs are float32; half the memory of float64).
    """
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(np.asarray(value))
    if value.ndim != 2:
        raise ConfigError(
            f"{metric}: {field} must be a 2-D (batch, dim) tensor, got shape {tuple(value.shape)}"
        )
    if width is not None and value.shape[1] != width:
        raise ConfigError(
            f"{metric}: {field} has dimension {value.shape[1]}, expected {width} "
            "(set the metric's dimension option to the judge's output width)"
        )
    if value.is_complex() or value.dtype == torch.bool:
        raise ConfigError(f"{metric}: {field} must be real-valued, got dtype {value.dtype}")
    rows = value.detach().to("cpu", torch.float32)
    if not torch.isfinite(rows).all():
        raise TokbenchError(f"{metric}: {field} contains NaN or Inf (a judge produced non-finite outputs)")
    return rows.clone()


def gather_rows(
    parts: list[torch.Tensor], metric: str, field: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Concatenate a ``"cat"`` state into one ``dtype`` tensor, in canonical (content-hash) row order.

    Each part is written straight to its rows' canonical positions: one copy of the set, not two.
    """
    if not parts:
        return torch.empty(0, 0, dtype=dtype)
    widths = {part.shape[1] for part in parts}
    if len(widths) != 1:
        raise ConfigError(f"{metric}: {field} batches have different dimensions {sorted(widths)}")
    keys = np.concatenate([_row_keys(part.to(torch.float32)) for part in parts])
    position = np.empty(len(keys), dtype=np.int64)
    position[np.argsort(keys, kind="stable")] = np.arange(len(keys))
    rows = torch.empty((len(keys), widths.pop()), dtype=dtype)
    offset = 0
    for part in parts:
        rows[torch.from_numpy(position[offset : offset + part.shape[0]])] = part.to(torch.float32).to(dtype)
        offset += part.shape[0]
    return rows


def _row_keys(rows: torch.Tensor) -> np.ndarray:
    """A 64-bit hash of each row's bytes."""
    array = np.ascontiguousarray(rows.numpy())
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "big") for row in array),
        dtype=np.uint64,
        count=array.shape[0],
    )
