"""Runs a tokenizer suite: dataset → preprocessing → batches → adapter → checks → metric states.

The runner owns batching, ordering, seeds, timing and the error policy. Under ``skip`` an unusable
item (unreadable image, bad model output for that image) is counted with its reason; under ``fail``
the first one stops the run before anything is stored.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from tokbench import distributed
from tokbench.adapters.base import Encoded, Tokenizer
from tokbench.adapters.registry import BuiltModel
from tokbench.data.base import Dataset, ImageItem, Preprocess
from tokbench.errors import AdapterOutputError, ConfigError, DataError, TokbenchError
from tokbench.features import JudgeFeatures
from tokbench.judges.base import Judge
from tokbench.judges.registry import JUDGES
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


def build_judges(suite: SuiteConfig, device: torch.device) -> dict[str, Judge]:
    """Construct every judge the suite declares (resolving and hash-checking their weights)."""
    judges = {}
    for alias, config in suite.judges.items():
        cls = JUDGES.get(config.name)
        try:
            judge = cls(**config.options)
        except TypeError as exc:
            raise ConfigError(f"suite {suite.name!r}: bad options for judge {alias!r}: {exc}") from None
        judges[alias] = judge.to(device).eval()
    return judges


FEATURE_INPUTS = ("real_features", "fake_features", "fake_logits")


def feature_judges(suite: SuiteConfig, judges: dict[str, Judge]) -> dict[str, Judge]:
    """The judges whose features some metric consumes (others, like LPIPS, are called by metrics)."""
    aliases = {
        m.judge
        for m in suite.metrics
        if m.judge and set(METRICS.get(m.name).inputs) & set(FEATURE_INPUTS)  # class inputs: the widest
    }
    return {alias: judge for alias, judge in judges.items() if alias in aliases}


def build_metrics(
    suite: SuiteConfig,
    judges: dict[str, Judge],
    injected: dict[str, Any] | None = None,
    inject_judges: set[str] | None = None,
) -> dict[str, Metric]:
    """Instantiate the suite's metrics with their options, their judge and any injected arguments.

    ``injected`` maps constructor argument names (e.g. ``reference`` statistics) to values given to
    every metric whose constructor accepts them; with ``inject_judges``, only to the metrics scored by
    those judges (reference statistics belong to one feature space).
    """
    metrics = {}
    for config in suite.metrics:
        cls = METRICS.get(config.name)
        accepted = inspect.signature(cls.__init__).parameters
        kwargs = dict(config.options)
        if config.judge is not None and "judge" in accepted:
            kwargs["judge"] = judges[config.judge]
        width = getattr(judges.get(config.judge or ""), "feature_dim", None)  # judges that declare it
        if width is not None and "feature_dim" in accepted:
            kwargs.setdefault("feature_dim", width)  # a suite's explicit feature_dim still wins
        if inject_judges is None or config.judge in inject_judges:
            kwargs.update({k: v for k, v in (injected or {}).items() if k in accepted and v is not None})
        try:
            metrics[config.name] = cls(**kwargs)
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


@dataclass
class _ShardState:
    """What one process measured: mergeable metric states and counts."""

    metric_states: dict[str, dict[str, Any]]
    skipped: list[tuple[int, dict[str, str]]]
    not_applicable: dict[str, str]
    items_used: int
    encode_seconds: float
    decode_seconds: float
    #: Sum of ``Encoded.num_tokens`` over the images whose batch reported it, and their count.
    token_sum: int = 0
    token_images: int = 0


class ReconstructionRunner:
    """Evaluates one tokenizer on one dataset under one suite, sharded under ``torchrun``."""

    def __init__(
        self,
        model: BuiltModel,
        suite: SuiteConfig,
        dataset: Dataset,
        preprocess: Preprocess,
        options: RunOptions,
        judges: dict[str, Judge] | None = None,
        features: JudgeFeatures | None = None,
        injected: dict[str, Any] | None = None,
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
        self.judges = judges or {}
        self.features = features or JudgeFeatures(feature_judges(suite, self.judges))
        # class names of a labelled dataset (classfolder:PATH) for metrics that take them (zero-shot)
        self.injected = {**(injected or {}), "class_names": dataset.class_names()}
        self.metrics = build_metrics(suite, self.judges, self.injected)
        self.metric_judges = {m.name: m.judge for m in suite.metrics}
        self.shard = _ShardState({}, [], {}, 0, 0.0, 0.0)

    def run(self) -> RunOutcome:
        """Evaluate this process's share of the items, then merge every share on rank 0."""
        items = self.dataset.items()
        if self.options.limit is not None:
            items = items[: self.options.limit]
        context = distributed.current(self.device)
        indexed = context.shard(list(enumerate(items)))
        torch.manual_seed(self.options.seed + context.rank)
        started = time.perf_counter()
        self.tokenizer.to(self.device)
        progress = tqdm(
            total=len(indexed),
            desc=f"{self.suite.name} · {self.model.spec}",
            unit="img",
            disable=not self.options.progress or not context.is_main,
            dynamic_ncols=True,
        )
        with exact_float32(), torch.inference_mode(), progress:
            for start in range(0, len(indexed), self.options.batch_size):
                batch = indexed[start : start + self.options.batch_size]
                self._run_batch(batch)
                progress.update(len(batch))
                progress.set_postfix(skipped=len(self.shard.skipped), refresh=False)
        if context.world_size == 1:
            self.features.save()
        self.shard.metric_states = {name: m.state_dict() for name, m in self.metrics.items()}
        shards = context.gather(self.shard)
        outcome = self._merge(shards, len(items), time.perf_counter() - started) if shards else None
        return context.broadcast(outcome)

    def _merge(self, shards: list[_ShardState], requested: int, total_seconds: float) -> RunOutcome:
        merged = build_metrics(self.suite, self.judges, self.injected)
        for shard in shards:
            for name, states in shard.metric_states.items():
                merged[name].merge_state(states)
        used = sum(s.items_used for s in shards)
        skipped = [entry for _, entry in sorted((e for s in shards for e in s.skipped), key=lambda e: e[0])]
        not_applicable = {k: v for s in shards for k, v in s.not_applicable.items()}
        if used == 0:
            reasons = "; ".join(s["reason"] for s in skipped[:3])
            raise TokbenchError(
                f"no item of {requested} could be evaluated with {self.model.spec}: {reasons}"
            )
        values: dict[str, float] = {}
        for name, metric in merged.items():
            if name in not_applicable:
                continue
            result = metric.compute()
            if not result:
                not_applicable[name] = "no applicable images (see the metric's requirements)"
            values.update(result)
        encode_seconds = sum(s.encode_seconds for s in shards)
        decode_seconds = sum(s.decode_seconds for s in shards)
        values["encode_seconds_per_image"] = encode_seconds / used
        values["decode_seconds_per_image"] = decode_seconds / used
        token_images = sum(s.token_images for s in shards)
        if token_images:  # the model's token count, so rate curves can use tokens as well as bits
            values["num_tokens"] = sum(s.token_sum for s in shards) / token_images
        return RunOutcome(
            metrics=values,
            items_requested=requested,
            items_used=used,
            skipped=skipped,
            not_applicable=not_applicable,
            timings={
                "total_seconds": total_seconds,
                "encode_seconds": encode_seconds,
                "decode_seconds": decode_seconds,
                "images_per_second": used / total_seconds if total_seconds > 0 else 0.0,
                "processes": len(shards),
            },
            metric_versions={name: type(m).implementation_version for name, m in merged.items()},
        )

    def _skip_or_raise(self, index: int, item_id: str, error: TokbenchError) -> None:
        if self.options.on_error == "fail":
            raise error
        self.shard.skipped.append((index, {"item": item_id, "reason": str(error)}))

    def _load(
        self, batch: Sequence[tuple[int, ImageItem]]
    ) -> tuple[list[tuple[int, ImageItem]], list[torch.Tensor]]:
        loaded, tensors = [], []
        for index, item in batch:
            try:
                tensors.append(self.preprocess(item.load()).image)
            except DataError as error:
                self._skip_or_raise(index, item.id, error)
                continue
            loaded.append((index, item))
        return loaded, tensors

    def _run_batch(self, batch: Sequence[tuple[int, ImageItem]]) -> None:
        batch, tensors = self._load(batch)
        if not batch:
            return
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ConfigError(
                f"preprocessing {self.preprocess.name!r} produced images of several sizes {sorted(shapes)}; "
                "a suite needs one size per batch"
            )
        images = torch.stack(tensors).to(self.device)
        ids = [item.id for _, item in batch]
        try:
            reconstructions, bits = self._reconstruct(images, ids)
        except AdapterOutputError as error:
            if self.options.on_error == "fail":
                raise
            if len(batch) == 1:
                self._skip_or_raise(batch[0][0], ids[0], error)
                return
            for position, entry in enumerate(batch):  # find the items the model fails on
                self._run_single(entry, images[position : position + 1])
            return
        self._update_metrics(ids, images, reconstructions, bits, batch_labels(batch))

    def _run_single(self, entry: tuple[int, ImageItem], image: torch.Tensor) -> None:
        index, item = entry
        try:
            reconstruction, bits = self._reconstruct(image, [item.id])
        except AdapterOutputError as error:
            self._skip_or_raise(index, item.id, error)
            return
        self._update_metrics([item.id], image, reconstruction, bits, batch_labels([entry]))

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
        if encoded.num_tokens is not None:
            count = encoded.num_tokens
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise AdapterOutputError(
                    f"model {self.model.spec}: Encoded.num_tokens must be an int >= 0 or None, got "
                    f"{encoded.num_tokens!r} (items {_short_ids(ids)})"
                )
            self.shard.token_sum += encoded.num_tokens * len(ids)
            self.shard.token_images += len(ids)
        self.shard.encode_seconds += encoded_at - started
        self.shard.decode_seconds += decoded_at - encoded_at
        return reconstructions, bits

    def _synchronized_clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _update_metrics(
        self,
        ids: list[str],
        images: torch.Tensor,
        reconstructions: torch.Tensor,
        bits: torch.Tensor | None,
        labels: torch.Tensor | None = None,
    ) -> None:
        originals = quantize_uint8(images)
        reconstructed = quantize_uint8(reconstructions.to(self.device))
        batch: dict[str, Any] = {
            "originals": originals,
            "reconstructions": reconstructed,
            "bits": bits,
            "labels": labels,
        }
        judged = self.features.batch_fields(ids, originals, reconstructed)
        for name, metric in self.metrics.items():
            fields = {**batch, **judged.get(self.metric_judges[name], {})}
            missing = [key for key in metric.inputs if fields.get(key) is None]
            if missing == ["labels"]:
                self.shard.not_applicable[name] = (
                    f"dataset {self.dataset.name!r} has no class labels (use a labelled dataset such as "
                    "classfolder:PATH)"
                )
                continue
            if missing:
                self.shard.not_applicable[name] = f"model {self.model.spec} provides no {', '.join(missing)}"
                continue
            metric.update(*(fields[key] for key in metric.inputs))
        self.shard.items_used += images.shape[0]


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


def batch_labels(batch: Sequence[tuple[int, ImageItem]]) -> torch.Tensor | None:
    """The items' class labels as an int64 tensor, or None unless every item has one."""
    labels = [item.label for _, item in batch]
    if any(label is None for label in labels):
        return None
    return torch.tensor(labels, dtype=torch.int64)


def _short_ids(ids: list[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
