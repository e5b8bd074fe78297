"""Judges and metrics see fixed-size chunks of the run's items, whatever the model's batch size.

A judge network's float32 output for an image can change in the last bits with the batch it runs in
(convolution and matmul kernels pick their blocking by batch size), and a float64 running sum rounds
differently when the same values are added in other groups. So a track does not hand each model batch
to its judges and metrics: it adds the batch to ``Chunks``, which releases chunks of a fixed number of
items in the run's order (the last one shorter). The same items then meet the judges and metrics in
the same groups for ``--batch-size`` 1, 7 or 64, and ``--num-workers`` never changes a batch, so the
numbers are identical, not merely close.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

#: Pixels per chunk: 64 images at 256×256, 4 at 1024×1024 (memory stays flat at any resolution).
CHUNK_PIXELS = 64 * 256 * 256


def chunk_items(height: int, width: int) -> int:
    """Items per chunk for images of ``height`` × ``width``."""
    return max(1, CHUNK_PIXELS // (height * width))


class Chunks:
    """Batches of per-item fields in, chunks of ``size`` items out (to ``release``), in order.

    A batch is a dict of equal-length fields: tensors (first dimension = items), lists, or None (a
    field the batch does not have); a chunk has a field only if every batch it draws from has it.
    """

    def __init__(
        self, size: int, release: Callable[[dict[str, Any]], None], shape: tuple[int, ...] = ()
    ) -> None:
        self.size = size
        #: The shape of one item's image, for a caller that starts a new queue when it changes.
        self.shape = shape
        self.release = release
        self.parts: list[dict[str, Any]] = []
        self.count = 0

    def add(self, batch: dict[str, Any], count: int) -> None:
        """Queue a batch of ``count`` items; release every full chunk."""
        self.parts.append(batch)
        self.count += count
        while self.count >= self.size:
            self.release(self._take(self.size))

    def flush(self) -> None:
        """Release what is queued (the run's last, shorter chunk)."""
        if self.count:
            self.release(self._take(self.count))

    def _take(self, count: int) -> dict[str, Any]:
        taken: list[dict[str, Any]] = []
        needed = count
        while needed:
            part = self.parts[0]
            length = _length(part)
            if length <= needed:
                taken.append(self.parts.pop(0))
                needed -= length
            else:
                taken.append({key: _slice(value, 0, needed) for key, value in part.items()})
                self.parts[0] = {key: _slice(value, needed, length) for key, value in part.items()}
                needed = 0
        self.count -= count
        return {key: _joined([part[key] for part in taken]) for key in taken[0]}


def _length(part: dict[str, Any]) -> int:
    return next(len(value) for value in part.values() if value is not None)


def _slice(value: Any, start: int, stop: int) -> Any:
    return None if value is None else value[start:stop]


def _joined(values: list[Any]) -> Any:
    if any(value is None for value in values):
        return None
    if isinstance(values[0], torch.Tensor):
        return values[0] if len(values) == 1 else torch.cat(values)
    return [entry for value in values for entry in value]
