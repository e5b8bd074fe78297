"""The adapter contract, enforced on what a model returns: images, bit counts, labels of a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tokbench.adapters.base import Encoded
from tokbench.data.base import ImageItem
from tokbench.errors import AdapterOutputError


def check_images(
    output: Any, expected_shape: torch.Size, model: str, ids: list[str], call: str = "decode()"
) -> None:
    """Enforce the adapter contract on the images a model ``call`` returned: float32, expected shape,
    finite, in [0, 1]."""
    where = f"model {model}, items {short_ids(ids)}"
    if not isinstance(output, torch.Tensor):
        raise AdapterOutputError(f"{where}: {call} returned {type(output).__name__}, expected a torch.Tensor")
    if output.dtype != torch.float32:
        raise AdapterOutputError(f"{where}: {call} returned dtype {output.dtype}, expected torch.float32")
    if tuple(output.shape) != tuple(expected_shape):
        raise AdapterOutputError(
            f"{where}: {call} returned shape {tuple(output.shape)}, expected {tuple(expected_shape)}"
        )
    if not torch.isfinite(output).all():
        bad = int((~torch.isfinite(output)).sum())
        raise AdapterOutputError(f"{where}: {call} returned {bad} NaN/Inf values")
    low, high = float(output.min()), float(output.max())
    if low < 0.0 or high > 1.0:
        raise AdapterOutputError(
            f"{where}: {call} returned values in [{low:.4g}, {high:.4g}], expected [0, 1] "
            "(clamp inside the adapter if the model's range is wider)"
        )


def check_encoded(returned: Any, model: str, ids: list[str]) -> Encoded:
    """What ``encode`` returned, as the ``Encoded`` that ``decode`` receives: a bare tensor is accepted as
    ``Encoded(payload=tensor)`` (no bits, no token count); anything else breaks the contract."""
    if isinstance(returned, Encoded):
        return returned
    if isinstance(returned, torch.Tensor):
        return Encoded(payload=returned)
    raise AdapterOutputError(
        f"model {model}, items {short_ids(ids)}: encode() returned {type(returned).__name__}, expected "
        "tokbench.Encoded or a torch.Tensor"
    )


def check_bits(bits: Any, count: int, model: str, ids: list[str]) -> torch.Tensor | None:
    """Enforce the contract on ``Encoded.bits``: None, or N finite non-negative sizes."""
    if bits is None:
        return None
    where = f"model {model}, items {short_ids(ids)}"
    if not isinstance(bits, torch.Tensor) or tuple(bits.shape) != (count,):
        shape = tuple(bits.shape) if isinstance(bits, torch.Tensor) else type(bits).__name__
        raise AdapterOutputError(f"{where}: Encoded.bits must be a tensor of shape ({count},), got {shape}")
    bits = bits.detach().to("cpu", torch.float64)
    if not torch.isfinite(bits).all() or (bits < 0).any():
        raise AdapterOutputError(f"{where}: Encoded.bits must be finite and non-negative")
    return bits


def batch_labels(batch: Sequence[tuple[int, ImageItem]]) -> torch.Tensor | None:
    """The items' class labels as an int64 tensor, or None unless every item has one."""
    labels = [item.label for _, item in batch]
    if any(label is None for label in labels):
        return None
    return torch.tensor(labels, dtype=torch.int64)


def short_ids(ids: list[str], limit: int = 3) -> str:
    """The first few item ids and how many more, for error messages."""
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
