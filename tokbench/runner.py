"""Runs a tokenizer suite: dataset → preprocessing → batches → adapter → checks → metric states.

The runner owns batching, ordering, seeds, timing and the error policy. Under ``skip`` an unusable
item (unreadable image, bad model output for that image) is counted with its reason; under ``fail``
the first one stops the run before anything is stored.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from tokbench.adapters.base import Encoded, Tokenizer
from tokbench.adapters.registry import BuiltModel
from tokbench.data.base import Dataset, ImageItem, Preprocess
from tokbench.errors import AdapterOutputError, ConfigError, DataError, TokbenchError
from tokbench.metrics import METRICS, Metric
from tokbench.suites import SuiteConfig
from tokbench.tensors import quantize_uint8

ERROR_POLICIES = ("skip", "fail")


@dataclass(frozen=True)
class RunOptions:
    """How to run: device, batching, sample limit, seed, error policy, progress display."""

    device: str = "cpu"
    batch_size: int = 16
    limit: int | None = None
    seed: int = 0
    on_error: str = "skip"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.on_error not in ERROR_POLICIES:
            raise ConfigError(f"on_error must be one of {ERROR_POLICIES}, got {self.on_error!r}")


@dataclass
class RunOutcome:
    """What a run measured, before it becomes a record."""

    metrics: dict[str, float]
    items_requested: int
    items_used: int
    skipped: list[dict[str, str]]
    not_applicable: dict[str, str]
    timings: dict[str, float]
    metric_versions: dict[str, str] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """A torch device, checked to exist here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a valid torch device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} requested but MPS is not available on this machine")
    return device


def build_metrics(suite: SuiteConfig) -> dict[str, Metric]:
    """Instantiate the suite's metrics from the registry with their options."""
    metrics = {}
    for config in suite.metrics:
        cls = METRICS.get(config.name)
        try:
            metrics[config.name] = cls(**config.options)
        except TypeError as exc:
            raise ConfigError(
                f"suite {suite.name!r}: bad options for metric {config.name!r}: {exc}"
            ) from None
    return metrics


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Disable TF32 for the duration of a run (it shifts FID); restore the caller's settings."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class ReconstructionRunner:
    """Evaluates one tokenizer on one dataset under one suite."""

    def __init__(
        self,
        model: BuiltModel,
        suite: SuiteConfig,
        dataset: Dataset,
        preprocess: Preprocess,
        options: RunOptions,
    ):
        if not isinstance(model.adapter, Tokenizer):
            raise ConfigError(
                f"suite {suite.name!r} evaluates tokenizers; model {model.spec!r} is a "
                f"{model.adapter.kind or type(model.adapter).__name__}"
            )
        self.model = model
        self.tokenizer: Tokenizer = model.adapter
        self.suite = suite
        self.dataset = dataset
        self.preprocess = preprocess
        self.options = options
        self.device = resolve_device(options.device)
        self.metrics = build_metrics(suite)
        self.skipped: list[dict[str, str]] = []
        self.not_applicable: dict[str, str] = {}
        self.encode_seconds = 0.0
        self.decode_seconds = 0.0
        self.items_used = 0

    def run(self) -> RunOutcome:
        """Evaluate every item and compute the metrics."""
        items = self.dataset.items()
        if self.options.limit is not None:
            items = items[: self.options.limit]
        torch.manual_seed(self.options.seed)
        started = time.perf_counter()
        self.tokenizer.to(self.device)
        progress = tqdm(
            total=len(items),
            desc=f"{self.suite.name} · {self.model.spec}",
            unit="img",
            disable=not self.options.progress,
            dynamic_ncols=True,
        )
        with exact_float32(), torch.inference_mode(), progress:
            for start in range(0, len(items), self.options.batch_size):
                batch_items = items[start : start + self.options.batch_size]
                self._run_batch(batch_items)
                progress.update(len(batch_items))
                progress.set_postfix(skipped=len(self.skipped), refresh=False)
        if self.items_used == 0:
            reasons = "; ".join(s["reason"] for s in self.skipped[:3])
            raise TokbenchError(
                f"no item of {len(items)} could be evaluated with {self.model.spec}: {reasons}"
            )
        values: dict[str, float] = {}
        for name, metric in self.metrics.items():
            if name in self.not_applicable:
                continue
            result = metric.compute()
            if not result:
                self.not_applicable[name] = "no applicable images (see the metric's requirements)"
            values.update(result)
        values["encode_seconds_per_image"] = self.encode_seconds / self.items_used
        values["decode_seconds_per_image"] = self.decode_seconds / self.items_used
        total = time.perf_counter() - started
        return RunOutcome(
            metrics=values,
            items_requested=len(items),
            items_used=self.items_used,
            skipped=self.skipped,
            not_applicable=self.not_applicable,
            timings={
                "total_seconds": total,
                "encode_seconds": self.encode_seconds,
                "decode_seconds": self.decode_seconds,
                "images_per_second": self.items_used / total if total > 0 else 0.0,
            },
            metric_versions={name: type(m).implementation_version for name, m in self.metrics.items()},
        )

    def _skip_or_raise(self, item_id: str, error: TokbenchError) -> None:
        if self.options.on_error == "fail":
            raise error
        self.skipped.append({"item": item_id, "reason": str(error)})

    def _load(self, items: Sequence[ImageItem]) -> tuple[list[ImageItem], list[torch.Tensor]]:
        loaded_items, tensors = [], []
        for item in items:
            try:
                tensors.append(self.preprocess(item.load()).image)
            except DataError as error:
                self._skip_or_raise(item.id, error)
                continue
            loaded_items.append(item)
        return loaded_items, tensors

    def _run_batch(self, items: Sequence[ImageItem]) -> None:
        items, tensors = self._load(items)
        if not items:
            return
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ConfigError(
                f"preprocessing {self.preprocess.name!r} produced images of several sizes {sorted(shapes)}; "
                "a suite needs one size per batch"
            )
        images = torch.stack(tensors).to(self.device)
        try:
            reconstructions, bits = self._reconstruct(images, [i.id for i in items])
        except AdapterOutputError as error:
            if self.options.on_error == "fail":
                raise
            if len(items) == 1:
                self._skip_or_raise(items[0].id, error)
                return
            for index, item in enumerate(items):  # find the items the model fails on
                self._run_single(item, images[index : index + 1])
            return
        self._update_metrics(images, reconstructions, bits)

    def _run_single(self, item: ImageItem, image: torch.Tensor) -> None:
        try:
            reconstruction, bits = self._reconstruct(image, [item.id])
        except AdapterOutputError as error:
            self._skip_or_raise(item.id, error)
            return
        self._update_metrics(image, reconstruction, bits)

    def _reconstruct(self, images: torch.Tensor, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        started = self._synchronized_clock()
        encoded = self.tokenizer.encode(images.clone())
        encoded_at = self._synchronized_clock()
        if not isinstance(encoded, Encoded):
            raise AdapterOutputError(
                f"model {self.model.spec}: encode() returned {type(encoded).__name__}, expected "
                f"tokbench.Encoded (items {_short_ids(ids)})"
            )
        reconstructions = self.tokenizer.decode(encoded)
        decoded_at = self._synchronized_clock()
        check_images(reconstructions, images.shape, self.model.spec, ids)
        bits = check_bits(encoded.bits, len(ids), self.model.spec, ids)
        self.encode_seconds += encoded_at - started
        self.decode_seconds += decoded_at - encoded_at
        return reconstructions, bits

    def _synchronized_clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _update_metrics(
        self, images: torch.Tensor, reconstructions: torch.Tensor, bits: torch.Tensor | None
    ) -> None:
        batch: dict[str, Any] = {
            "originals": quantize_uint8(images),
            "reconstructions": quantize_uint8(reconstructions.to(self.device)),
            "bits": bits,
        }
        for name, metric in self.metrics.items():
            missing = [key for key in metric.inputs if batch[key] is None]
            if missing:
                self.not_applicable[name] = f"model {self.model.spec} provides no {', '.join(missing)}"
                continue
            metric.update(*(batch[key] for key in metric.inputs))
        self.items_used += images.shape[0]


def check_images(output: Any, expected_shape: torch.Size, model: str, ids: list[str]) -> None:
    """Enforce the adapter contract on decoded images: float32, expected shape, finite, in [0, 1]."""
    where = f"model {model}, items {_short_ids(ids)}"
    if not isinstance(output, torch.Tensor):
        raise AdapterOutputError(
            f"{where}: decode() returned {type(output).__name__}, expected a torch.Tensor"
        )
    if output.dtype != torch.float32:
        raise AdapterOutputError(f"{where}: decode() returned dtype {output.dtype}, expected torch.float32")
    if tuple(output.shape) != tuple(expected_shape):
        raise AdapterOutputError(
            f"{where}: decode() returned shape {tuple(output.shape)}, expected {tuple(expected_shape)}"
        )
    if not torch.isfinite(output).all():
        bad = int((~torch.isfinite(output)).sum())
        raise AdapterOutputError(f"{where}: decode() returned {bad} NaN/Inf values")
    low, high = float(output.min()), float(output.max())
    if low < 0.0 or high > 1.0:
        raise AdapterOutputError(
            f"{where}: decode() returned values in [{low:.4g}, {high:.4g}], expected [0, 1] "
            "(clamp inside the adapter if the model's range is wider)"
        )


def check_bits(bits: Any, count: int, model: str, ids: list[str]) -> torch.Tensor | None:
    """Enforce the contract on ``Encoded.bits``: None, or N finite non-negative sizes."""
    if bits is None:
        return None
    where = f"model {model}, items {_short_ids(ids)}"
    if not isinstance(bits, torch.Tensor) or tuple(bits.shape) != (count,):
        shape = tuple(bits.shape) if isinstance(bits, torch.Tensor) else type(bits).__name__
        raise AdapterOutputError(f"{where}: Encoded.bits must be a tensor of shape ({count},), got {shape}")
    bits = bits.detach().to("cpu", torch.float64)
    if not torch.isfinite(bits).all() or (bits < 0).any():
        raise AdapterOutputError(f"{where}: Encoded.bits must be finite and non-negative")
    return bits


def _short_ids(ids: list[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
