"""Items decoded and preprocessed in ``DataLoader`` worker processes while the model and judges run.

``load_batches`` turns a track's ``(position, item)`` list into batches of ``Loaded`` entries, in the
run's order whatever the worker count: a batch is a fixed slice of the list (batching by index, never
by which worker finished first) and the DataLoader hands batches back in sampler order. ``prepare``
(item → prepared value: a decoded, preprocessed image, ...) runs in the workers; it and the items
must pickle under the ``spawn`` start method (module-level functions, ``functools.partial`` over them,
small objects), while Linux's default ``fork`` inherits them. A ``DataError`` raised by ``prepare``
comes back as the entry's ``error`` with its message, never as a dead worker; any other exception is
a bug and is re-raised in the main process, as it would be without workers.

With ``num_workers=0`` nothing changes from a plain loop in the main process. A background thread
receives each batch from the workers (unpickling its tensors, mapping their shared memory) while the
caller runs the model on the previous one; on CUDA the DataLoader's own pinning thread does that and
puts the tensors in pinned memory, so ``to_device`` copies them without blocking the host. Workers run
torch with one thread each: the main process's model and judges keep the cores they use. Between
batches the heap's freed pages go back to the system (``tokbench.tracks.heap``), so the resident set
follows the live data.
"""

from __future__ import annotations

import pickle
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

from tokbench.errors import DataError
from tokbench.tracks.heap import TRIMMER

I = TypeVar("I")  # noqa: E741 (the item type)
V = TypeVar("V")
#: Batches each worker prepares ahead of the one the main process is using.
PREFETCH_BATCHES = 2
#: Name of the thread that receives batches from the workers.
RECEIVER = "tokbench-loader"


@dataclass(frozen=True)
class Loaded(Generic[I, V]):
    """One item of a batch: its position in the run, the item, its prepared value or why it has none."""

    index: int
    item: I
    value: V | None
    error: DataError | None = None


def load_batches(
    indexed: Sequence[tuple[int, I]],
    prepare: Callable[[I], V],
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
    start_method: str | None = None,
) -> Iterator[list[Loaded[I, V]]]:
    """Batches of ``batch_size`` consecutive entries of ``indexed`` with ``prepare(item)`` as value,
    prepared by ``num_workers`` processes (0: here, one item after the other); ``start_method`` is a
    ``multiprocessing`` start method (None: the platform's default)."""
    if num_workers == 0 or not indexed:
        for start in range(0, len(indexed), batch_size):
            yield [_prepared(index, item, prepare) for index, item in indexed[start : start + batch_size]]
            TRIMMER.trim()
        return
    loader = DataLoader(
        _Items(list(indexed), prepare),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES,
        worker_init_fn=_one_thread,
        multiprocessing_context=start_method,
    )
    for batch in _received_ahead(loader, receive_in_thread=not pin_memory):
        yield [Loaded(*indexed[position], value, error) for position, value, error in batch]
        TRIMMER.trim()


def _received_ahead(loader: DataLoader, receive_in_thread: bool) -> Iterator[Any]:
    """The loader's batches, taken from its workers by a background thread while the caller uses the
    previous one (unless the loader already receives them in its pinning thread)."""
    if not receive_in_thread:
        yield from loader
        return
    batches = iter(loader)  # started here: the workers' failure handler belongs to the main thread
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()
    receiver = threading.Thread(target=_receive, args=(batches, ready, stop), name=RECEIVER, daemon=True)
    receiver.start()
    try:
        while True:
            kind, payload = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()
        receiver.join()
        del batches  # the workers stop now, not when the generator is collected


def _receive(batches: Iterator[Any], ready: queue.Queue, stop: threading.Event) -> None:
    """The receiving thread: each batch, then the end or the error, into ``ready``."""
    try:
        for batch in batches:
            if not _put(ready, ("batch", batch), stop):
                return
        _put(ready, ("end", None), stop)
    except BaseException as error:  # re-raised in the caller's thread
        _put(ready, ("error", error), stop)


def _put(ready: queue.Queue, entry: tuple[str, Any], stop: threading.Event) -> bool:
    """Put ``entry`` once there is room; False if the consumer stopped first."""
    while not stop.is_set():
        try:
            ready.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def to_device(values: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The tensors stacked on ``device`` (a pinned tensor is copied without blocking the host)."""
    if device.type == "cpu":
        return torch.stack(list(values))
    return torch.stack([value.to(device, non_blocking=value.is_pinned()) for value in values])


class _Items(Dataset):
    """The run's items as a map-style dataset: entry ``p`` is ``(p, prepared value, DataError or None)``
    (the item itself stays in the main process)."""

    def __init__(self, indexed: list[tuple[int, Any]], prepare: Callable[[Any], Any]) -> None:
        self.indexed = indexed
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.indexed)

    def __getitem__(self, position: int) -> tuple[int, Any, DataError | None]:
        entry = _prepared(*self.indexed[position], self.prepare)
        return position, entry.value, None if entry.error is None else _portable(entry.error)


def _prepared(index: int, item: Any, prepare: Callable[[Any], Any]) -> Loaded:
    try:
        return Loaded(index, item, prepare(item))
    except DataError as error:
        return Loaded(index, item, None, error)


def _portable(error: DataError) -> DataError:
    """The error, or a ``DataError`` with its message when its class does not survive pickling."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # an error class whose arguments do not pickle: keep the message
        return DataError(str(error))
    return error


def _as_list(entries: list[Any]) -> list[Any]:
    """The collate function: a batch stays a list of entries (the track stacks what it needs)."""
    return entries


def _one_thread(worker: int) -> None:
    """Each worker computes with one torch thread (the cores belong to the model and the judges)."""
    torch.set_num_threads(1)
