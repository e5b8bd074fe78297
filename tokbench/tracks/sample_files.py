"""Samples drawn elsewhere (``samples:PATH``) read for the gen track, decoded in ``--num-workers`` processes.

An ADM ``.npz`` batch is streamed from its zip member in the main process (no decoding to share out);
a folder's images are decoded and converted in DataLoader workers (``RunContext.load``), in index
order. Samples are a fixed set, so an unreadable one stops the run with its ``DataError`` (naming the
file) instead of being skipped: a gFID over fewer samples than the suite asks for is not that gFID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from tokbench.adapters.base import Generator
from tokbench.data.image_sets import ImageSet, item_tensor
from tokbench.models.files import FileSamples
from tokbench.tracks.base import RunContext


def shard_samples(
    generator: Generator,
    run: RunContext,
    indices: range,
    step: int,
    draw: Callable[[range], torch.Tensor],
) -> Iterator[tuple[range, torch.Tensor]]:
    """A shard's uint8 samples in order with their indices: read from files for ``samples:PATH``,
    otherwise ``draw(indices)`` for batches of ``step``."""
    if not isinstance(generator, FileSamples):
        for start in range(0, len(indices), step):
            batch = indices[start : start + step]
            yield batch, draw(batch)
        return
    position = indices.start
    for images in read_samples(generator.images, run, indices, step):
        yield range(position, position + images.shape[0]), images
        position += images.shape[0]


def read_samples(images: ImageSet, run: RunContext, indices: range, step: int) -> Iterator[torch.Tensor]:
    """Samples ``indices`` as uint8 N×3×H×W batches of at most ``step`` on the run's device (a folder
    batch also ends where the image size changes)."""
    if images.kind == "npz":
        for batch in images.batches(step, indices.start, indices.stop):
            yield batch.to(run.device)
        return
    items = images.folder.items()[indices.start : indices.stop]
    for loaded in run.load(list(enumerate(items, indices.start)), item_tensor, step):
        for entry in loaded:
            if entry.error is not None:
                raise entry.error
        yield from _same_size_runs([entry.value for entry in loaded], run)


def _same_size_runs(values: list[torch.Tensor], run: RunContext) -> Iterator[torch.Tensor]:
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or values[end].shape != values[start].shape:
            yield run.to_device(values[start:end])
            start = end
