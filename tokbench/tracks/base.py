"""The track contract: a track *plans* a run, *measures* its share of the items, and *merges* shares.

Everything else is the evaluator's (``tokbench.evaluator``) and is written once for every track:
claiming the record (protocol hash, reuse of a stored result), TF32 off, seeds, the error policy,
progress, timing, ``torchrun`` sharding (``measure`` runs on every process, ``merge`` on rank 0 with
every process's ``Shard``), the empty-run error, and storing the record.

To add a track: subclass ``Track`` in one module, register it (``TRACKS`` in ``tokbench.tracks`` or
the ``tokbench.tracks`` entry-point group) and write a suite YAML with ``track: <name>``.
"""

from __future__ import annotations

import contextlib
import os
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from tqdm.auto import tqdm

from tokbench.adapters.base import Adapter
from tokbench.distributed import Distributed
from tokbench.errors import AdapterOutputError, ConfigError, TokbenchError
from tokbench.suites import SuiteConfig
from tokbench.tracks.loading import Loaded, load_batches, to_device
from tokbench.tracks.model_calls import call_model

if TYPE_CHECKING:
    from tokbench.adapters.registry import BuiltModel

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (an item)
V = TypeVar("V")
ERROR_POLICIES = ("skip", "fail")


def default_num_workers() -> int:
    """Worker processes by default: one fewer than the CPUs (the main process runs the model), at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class RunOptions:
    """How to run: device, batching, sample limit, seed, error policy, progress display."""

    device: str = "cpu"
    batch_size: int = 16
    limit: int | None = None
    seed: int = 0
    on_error: str = "skip"
    progress: bool = True
    #: Seconds a single model call may take before the run stops (None: no limit); see ``model_calls``.
    timeout: float | None = None
    #: DataLoader worker processes that decode and preprocess items (0: in the main process); see
    #: ``tokbench.tracks.loading``. Recorded in the record's ``run`` section, never in the protocol.
    num_workers: int = field(default_factory=default_num_workers)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.on_error not in ERROR_POLICIES:
            raise ConfigError(f"on_error must be one of {ERROR_POLICIES}, got {self.on_error!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"timeout must be a number of seconds > 0, got {self.timeout}")
        if (
            isinstance(self.num_workers, bool)
            or not isinstance(self.num_workers, int)
            or self.num_workers < 0
        ):
            raise ConfigError(f"num_workers must be an int >= 0, got {self.num_workers!r}")


@dataclass(frozen=True)
class TrackRequest:
    """Everything ``tokbench.evaluate`` was asked, with the suite already loaded."""

    model: str | Adapter
    suite: SuiteConfig
    data: str | None
    options: RunOptions
    store: Path | None = None
    force: bool = False
    reference: Path | None = None
    cache_features: bool = True
    #: Generator suites: samples to draw (overrides the suite's ``num_samples``), the directory of
    #: resumable shard files (default: the tokbench cache) and whether to dump the samples there.
    num_samples: int | None = None
    work_dir: Path | None = None
    save_samples: bool = False
    #: Generator suites: resume from shards of a generator whose determinism probe failed.
    allow_nondeterministic: bool = False
    #: Reconstruction suites (tracks with ``saves_reconstructions``): also write each reconstruction
    #: losslessly under this folder, where ``reconstructions:DIR`` reads it; not part of the protocol.
    save_reconstructions: Path | None = None


@dataclass
class Plan:
    """What a track resolved before measuring anything.

    ``protocol`` is hashed into the record id (so an identical run is found in the store before any
    work); ``state`` is the track's own (dataset, judges, metrics, settings ...).
    """

    model: BuiltModel
    protocol: dict[str, Any]
    device: torch.device
    items_requested: int
    state: Any = None
    #: Other runs this one needs (e.g. the unpruned model, for "% of unpruned"), by name; the evaluator
    #: runs them (or finds them in the store) before measuring and puts their ``RunResult`` in ``results``.
    requires: dict[str, TrackRequest] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shard:
    """What one process measured: items used and skipped, seconds per phase, the track's payload."""

    items_used: int = 0
    #: (position in the run, {"item": id, "reason": text}); sorted by position when merged.
    skipped: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    seconds: Counter[str] = field(default_factory=Counter)
    payload: Any = None


@dataclass
class Measurement:
    """A track's merged result: record metrics, what was not applicable and why, its record section."""

    metrics: dict[str, float]
    not_applicable: dict[str, str] = field(default_factory=dict)
    #: Top-level record sections of this track (e.g. ``{"generation": {...}}``).
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: Record key → {"metric", "label", "unit", "higher_is_better"} (``tokbench.tracks.scoring``).
    metric_info: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """What a run measured, before it becomes a record (built by the evaluator from a Measurement)."""

    metrics: dict[str, float]
    items_requested: int
    items_used: int
    skipped: list[dict[str, str]]
    not_applicable: dict[str, str]
    timings: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    metric_info: dict[str, dict[str, Any]] = field(default_factory=dict)


class RunContext:
    """One process's view of a run: its options, device and rank, its ``Shard``, the error policy,
    the loader (``load``: decoding in worker processes) and the one door to the model (``call_model``)."""

    def __init__(
        self,
        options: RunOptions,
        device: torch.device,
        distributed: Distributed,
        model: BuiltModel | None = None,
    ) -> None:
        self.options = options
        self.device = device
        self.distributed = distributed
        self.shard = Shard()
        self.model_name = model.spec if model is not None else "(unnamed)"
        self.model_source = (model.source or {}).get("path") if model is not None else None
        self._attempted = False

    def share(self, items: Sequence[T]) -> list[tuple[int, T]]:
        """This process's items with their positions in the whole run (a strided slice)."""
        return self.distributed.shard(list(enumerate(items)))

    def load(
        self, indexed: Sequence[tuple[int, I]], prepare: Callable[[I], V], batch_size: int | None = None
    ) -> Iterator[list[Loaded[I, V]]]:
        """Batches (``--batch-size`` by default) of this process's ``(position, item)`` pairs with
        ``prepare(item)`` computed in ``--num-workers`` processes, in the run's order; an entry whose
        ``prepare`` raised ``DataError`` carries it (``usable`` counts it)."""
        return load_batches(
            indexed,
            prepare,
            batch_size or self.options.batch_size,
            self.options.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def usable(
        self, batch: Sequence[Loaded[I, V]], name: Callable[[I], str] = lambda item: item.id
    ) -> list[Loaded[I, V]]:
        """The entries that loaded; each one that did not is counted by ``skip`` (named by ``name``)."""
        for entry in batch:
            if entry.error is not None:
                self.skip(entry.index, name(entry.item), entry.error)
        return [entry for entry in batch if entry.error is None]

    def to_device(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        """Prepared tensors stacked on the run's device (pinned ones copied without blocking)."""
        return to_device(values, self.device)

    def skip(self, index: int, item_id: str, error: TokbenchError) -> None:
        """Count an unusable item with its reason, or raise under ``--on-error fail``."""
        if self.options.on_error == "fail":
            raise error
        self.shard.skipped.append((index, {"item": item_id, "reason": str(error)}))

    def call_model(self, call: str, ids: list[str], fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a call into the model on items ``ids``: an exception raised inside it becomes a
        ``ModelCallError`` (counted per item by ``attempt`` under ``skip``), ``--timeout`` bounds it."""
        finish = self.synchronize if self.options.timeout is not None else None
        return call_model(
            self.model_name,
            call,
            ids,
            fn,
            args,
            timeout=self.options.timeout,
            source=self.model_source,
            finish=finish,
        )

    def attempt(
        self,
        batch: Sequence[T],
        call: Callable[[Sequence[T]], None],
        failed: Callable[[T, AdapterOutputError], None],
    ) -> None:
        """``call(batch)``; when the model breaks its contract or raises, retry item by item to find the
        items it fails on, and hand each of those to ``failed`` (under ``fail`` the first of them is
        raised, naming its item, or the batch's error if every item passes alone). When every item of
        this process's first batch (of two or more) fails, the run stops there with the first item's
        error: the model fails on everything, and trying every item of the dataset would repeat that."""
        first, self._attempted = not self._attempted, True
        try:
            call(batch)
            return
        except AdapterOutputError as error:
            if len(batch) == 1:
                if self.options.on_error == "fail":
                    raise
                failed(batch[0], error)
                return
            batch_error = error
        errors: list[tuple[T, AdapterOutputError]] = []
        for entry in batch:
            try:
                call([entry])
            except AdapterOutputError as error:
                if self.options.on_error == "fail":
                    raise
                errors.append((entry, error))
        if self.options.on_error == "fail":
            raise batch_error
        if first and len(errors) == len(batch):
            error = errors[0][1]
            raise type(error)(
                f"{error} (every item of the first batch, {len(batch)} items, failed alone as well: the "
                "run stops here)"
            ) from error
        for entry, error in errors:
            failed(entry, error)

    def progress(self, total: int, description: str, unit: str = "img") -> tqdm:
        """A progress bar, shown on rank 0 only and only when the run asked for progress."""
        return tqdm(
            total=total,
            desc=description,
            unit=unit,
            disable=not self.options.progress or not self.distributed.is_main,
            dynamic_ncols=True,
        )

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block (device-synchronised) to this shard's ``seconds[phase]``."""
        self.synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.synchronize()
            self.shard.seconds[phase] += time.perf_counter() - started

    def synchronize(self) -> None:
        """Wait for queued device work, so that timings measure it."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class Track(ABC):
    """How a family of suites runs. Subclasses implement ``plan``, ``measure`` and ``merge``."""

    #: Registry key, used by suites as ``track: <name>``.
    name: ClassVar[str] = ""
    #: Suite kinds (``tokenizer``, ``generator``, ``pruner``) this track evaluates.
    kinds: ClassVar[tuple[str, ...]] = ()
    #: Whether the track writes its reconstructions under ``TrackRequest.save_reconstructions``.
    saves_reconstructions: ClassVar[bool] = False

    @abstractmethod
    def plan(self, request: TrackRequest) -> Plan:
        """Check the request and resolve model, data, judges and protocol; measure nothing."""

    @abstractmethod
    def measure(self, plan: Plan, run: RunContext) -> Any:
        """Evaluate this process's share of the items; return the payload of its ``Shard``."""

    @abstractmethod
    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Merge every process's shard (rank 0 only; at least one item was used) into the result."""

    def write_artifacts(  # noqa: B027 (an optional hook: most tracks write nothing)
        self, plan: Plan, record: dict[str, Any], record_path: Path | None, force: bool
    ) -> None:
        """Write files that go beside the stored record (called before it is stored); none by default."""


def check_kind(track: Track, suite: SuiteConfig) -> None:
    """Raise unless the suite's kind is one the track evaluates."""
    if suite.kind not in track.kinds:
        raise ConfigError(
            f"suite {suite.name!r} has kind {suite.kind!r}; track {track.name!r} evaluates "
            f"{', '.join(track.kinds)}"
        )


def check_adapter(built: BuiltModel, expected: type, suite: SuiteConfig) -> None:
    """Raise unless the model is an adapter of the kind the suite evaluates (naming both)."""
    if not isinstance(built.adapter, expected):
        raise ConfigError(
            f"suite {suite.name!r} evaluates {expected.__name__.lower()}s; model {built.spec!r} is a "
            f"{built.adapter.kind or type(built.adapter).__name__}"
        )
