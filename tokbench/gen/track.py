"""The ``gen`` track: class-conditional samples → judge features → gFID, IS, precision/recall.

Flow: settings, reference batch, generator and judge are all checked before the first sample. The
samples are split into shards of ``shard_size``; under ``torchrun`` rank r generates shards r, r + W, …
Each shard's samples are quantised to uint8 (as the ADM evaluator's ``.npz`` batches are), judged
once, and only their judge outputs are kept, in a shard file (``tokbench.gen.shards``); a killed run
resumes from its finished shards. Rank 0 then streams every shard, in shard order, into the metric
states, so the numbers are the same whether the shards were made in one run or several, by one
process or many. Metric keys follow the reported ``gen`` rows: ``gfid`` (and ``gfid_count``),
``inception_score`` (``_std``), ``precision``, ``recall``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tokbench import distributed
from tokbench.adapters.base import Generator
from tokbench.adapters.registry import BuiltModel, build_model
from tokbench.adapters.spec import canonical_spec
from tokbench.errors import AdapterOutputError, ConfigError, WeightsError
from tokbench.features import LOGITS_OUTPUT
from tokbench.gen.reference import ReferenceBatch, find_reference, load_reference, reference_activations
from tokbench.gen.settings import GenSettings, sample_seed
from tokbench.gen.shards import ShardStore, rank_shards, run_key
from tokbench.judges.base import Judge
from tokbench.judges.inception import FEATURE_DIM
from tokbench.judges.registry import JUDGES
from tokbench.judges.weights import cache_dir
from tokbench.metrics import METRICS
from tokbench.metrics.base import Metric
from tokbench.recording import (
    RunResult,
    build_record,
    claim_record,
    store_result,
)
from tokbench.runner import RunOutcome, build_metrics, check_images, exact_float32, resolve_device
from tokbench.tensors import quantize_uint8
from tokbench.tracks import TrackRequest

logger = logging.getLogger(__name__)

TRACK_VERSION = "1"
QUANTIZATION = "uint8-round-half-even"
#: Record keys of metric results, renamed to the ``gen`` names of reported rows.
RENAMES = {"fid": "gfid", "fid_count": "gfid_count"}
SFID = "sfid"


@dataclass
class _RankWork:
    """What one process did: shards generated or found, and its time."""

    generated: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    sample_seconds: float = 0.0
    judge_seconds: float = 0.0


def run(request: TrackRequest) -> RunResult:
    """Evaluate a class-conditional generator on a ``gen`` suite (see the module docstring)."""
    suite, options = request.suite, request.options
    if options.limit is not None:
        raise ConfigError("--limit does not apply to generator suites; use --num-samples N (N samples)")
    if request.data is not None:
        raise ConfigError(
            f"--data does not apply to generator suites (got {request.data!r}); the real side is the "
            "reference batch: --reference FILE.npz"
        )
    if suite.kind != "generator":
        raise ConfigError(
            f"suite {suite.name!r} has kind {suite.kind!r}; the gen track needs kind: generator"
        )
    settings = GenSettings.from_suite(suite.settings, request.num_samples)
    device = _rank_device(resolve_device(options.device))
    judge_alias, judge_options = _feature_judge(suite)
    judge, not_applicable = _build_judge(suite.judges[judge_alias].name, judge_options, device)
    reference = load_reference(find_reference(request.reference, settings.reference), _feature_dim(judge))
    built = _describe_model(build_model(request.model), settings)
    generator: Generator = built.adapter  # checked by _describe_model

    protocol = {
        "suite": suite.to_dict(),
        "track_version": TRACK_VERSION,
        "dataset": {
            "name": reference.path.name,
            "manifest_hash": reference.sha256,
            "items_requested": settings.num_samples,
        },
        "sampling": settings.describe(options.seed),
        "reference": reference.describe(),
        "quantization": QUANTIZATION,
        "judges": {judge_alias: judge.describe()},
        "metric_versions": {m.name: METRICS.get(m.name).implementation_version for m in suite.metrics},
    }
    slot = claim_record(suite.name, protocol, built.spec, request.store, request.force)
    if slot.existing is not None:
        return slot.existing
    digest, record_id, record_store = slot.digest, slot.record_id, slot.store

    metrics = build_metrics(suite, {judge_alias: judge}, {"reference": reference.statistics})
    not_applicable.update(_static_not_applicable(metrics, judge, reference))
    parts = {
        "sampling": settings.describe(options.seed),
        "model": built.spec,
        "settings": generator.settings(),
        "weights_sha256": generator.weights_sha256,
        "judge": judge.describe(),
        "quantization": QUANTIZATION,
        "device": device.type,
        "batch_size": options.batch_size,
    }
    key = run_key(parts)
    if generator.weights_sha256 is None:
        logger.warning(
            "gen: %s has no weights sha256; its shards are identified by its spec only", built.spec
        )
    shards = ShardStore(request.work_dir or cache_dir() / "gen", key, parts, judge.outputs)

    started = time.perf_counter()
    context = distributed.current(device)
    work = _generate(generator, judge, shards, settings, request, context, device, built.spec)
    gathered = context.gather(work)
    outcome = None
    if gathered is not None:
        outcome = _score(metrics, shards, settings, reference, judge, request, device, not_applicable)
        outcome.timings = _timings(gathered, time.perf_counter() - started, settings.num_samples)
    outcome = context.broadcast(outcome)
    extra = {
        "generation": _generation_section(built, generator, settings, options.seed, key, gathered or [work])
    }
    record = build_record(record_id, suite, digest, protocol, built, outcome, options, extra=extra)
    return store_result(record_store, record, request.force)


def _rank_device(device: torch.device) -> torch.device:
    """Under torchrun, ``cuda`` without an index means this process's GPU (``LOCAL_RANK``)."""
    local = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local is not None:
        return torch.device("cuda", int(local))
    return device


def _feature_judge(suite) -> tuple[str, dict[str, Any]]:
    aliases = sorted({m.judge for m in suite.metrics if m.judge})
    if len(aliases) != 1:
        raise ConfigError(
            f"suite {suite.name!r}: the gen track scores every metric with one judge, got {aliases or 'none'}"
        )
    return aliases[0], dict(suite.judges[aliases[0]].options)


def _build_judge(name: str, options: dict[str, Any], device: torch.device) -> tuple[Judge, dict[str, str]]:
    """The judge; if its logits (Inception Score) cannot be resolved, the judge without them and the
    reason, recorded as ``inception-score`` not applicable."""
    cls = JUDGES.get(name)
    try:
        return cls(**options).to(device).eval(), {}
    except WeightsError as error:
        outputs = list(options.get("outputs") or [])
        if LOGITS_OUTPUT not in outputs:
            raise
        reduced = {**options, "outputs": [o for o in outputs if o != LOGITS_OUTPUT]}
        logger.warning("gen: no Inception logits (%s); the Inception Score is not applicable", error)
        return cls(**reduced).to(device).eval(), {"inception-score": f"the judge has no logits: {error}"}
    except TypeError as error:
        raise ConfigError(f"bad options for judge {name!r}: {error}") from None


def _feature_dim(judge: Judge) -> int:
    """Width of the judge's feature output (the Inception pool3 width unless the judge says)."""
    return int(getattr(judge, "feature_dim", FEATURE_DIM))


def _describe_model(built: BuiltModel, settings: GenSettings) -> BuiltModel:
    """Check the generator against the suite; give an adapter instance a spec that names its settings
    and weights (a spec string already does)."""
    adapter = built.adapter
    if not isinstance(adapter, Generator):
        raise ConfigError(
            f"the gen suite evaluates generators; model {built.spec!r} is a "
            f"{adapter.kind or type(adapter).__name__}"
        )
    classes = adapter.num_classes
    if classes is None or classes < settings.num_classes:
        raise ConfigError(
            f"model {built.spec!r} accepts {classes or 'no'} class labels, the suite samples "
            f"{settings.num_classes} classes (settings.num_classes)"
        )
    if built.arguments:  # built from a spec string, which names every argument
        return built
    spec = canonical_spec(built.name, adapter.settings())
    if adapter.weights_sha256:
        spec += f"@{adapter.weights_sha256[:12]}"
    return BuiltModel(adapter=adapter, name=built.name, spec=spec, arguments=adapter.settings())


def _static_not_applicable(
    metrics: dict[str, Metric], judge: Judge, reference: ReferenceBatch
) -> dict[str, str]:
    """Metrics that cannot be computed with this judge and reference, with the reason."""
    reasons = {}
    if "precision-recall" in metrics and reference.activations is None:
        reasons["precision-recall"] = (
            f"reference {reference.path.name} has no activations ('arr_0' images or 'feats')"
        )
    reasons[SFID] = (
        f"judge {judge.describe()['name']} gives no spatial (mixed_6/conv) features for sFID"
        if reference.spatial
        else f"reference {reference.path.name} has no spatial statistics (mu_s, sigma_s)"
    )
    return reasons


def _generate(
    generator: Generator,
    judge: Judge,
    shards: ShardStore,
    settings: GenSettings,
    request: TrackRequest,
    context: distributed.Distributed,
    device: torch.device,
    spec: str,
) -> _RankWork:
    """Generate and judge this rank's unfinished shards; finished ones are only checked."""
    work = _RankWork()
    mine = rank_shards(settings.num_shards, context.rank, context.world_size)
    todo = []
    for shard in mine:
        (work.resumed if shards.load(shard, settings.shard_range(shard)) is not None else todo).append(shard)
    progress = tqdm(
        total=sum(len(settings.shard_range(s)) for s in todo),
        desc=f"gen · {spec}",
        unit="img",
        disable=not request.options.progress or not context.is_main,
        dynamic_ncols=True,
    )
    generator.to(device)
    with exact_float32(), torch.inference_mode(), progress:
        for shard in todo:
            _run_shard(generator, judge, shards, settings, request, shard, work, spec, progress)
            work.generated.append(shard)
    return work


def _run_shard(
    generator: Generator,
    judge: Judge,
    shards: ShardStore,
    settings: GenSettings,
    request: TrackRequest,
    shard: int,
    work: _RankWork,
    spec: str,
    progress: tqdm,
) -> None:
    indices = settings.shard_range(shard)
    labels = [settings.class_of(i) for i in indices]
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in judge.outputs}
    dumps = []
    step = request.options.batch_size
    for start in range(0, len(indices), step):
        batch = indices[start : start + step]
        batch_labels = labels[start : start + step]
        began = time.perf_counter()
        images = generator.sample(batch_labels, [sample_seed(request.options.seed, i) for i in batch])
        _check_samples(images, len(batch), spec, batch)
        sampled = time.perf_counter()
        quantized = quantize_uint8(images)
        judged = judge(quantized.to(getattr(judge, "device", quantized.device)))
        for name in judge.outputs:
            outputs[name].append(judged[name].detach().to("cpu", torch.float32).numpy())
        if request.save_samples:
            dumps.append(quantized.permute(0, 2, 3, 1).cpu().numpy())
        work.sample_seconds += sampled - began
        work.judge_seconds += time.perf_counter() - sampled
        progress.update(len(batch))
    shards.save(shard, indices, labels, {name: np.concatenate(rows) for name, rows in outputs.items()})
    if dumps:
        shards.save_samples(shard, np.concatenate(dumps), labels)


def _check_samples(images: Any, count: int, spec: str, indices: range) -> None:
    """The Generator contract: float32 N×3×H×W in [0, 1], finite, one image per condition."""
    ids = [f"sample {i}" for i in indices]
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[:2] != (count, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise AdapterOutputError(f"model {spec}: sample() returned {shape}, expected ({count}, 3, H, W)")
    check_images(images, images.shape, spec, ids)


def _score(
    metrics: dict[str, Metric],
    shards: ShardStore,
    settings: GenSettings,
    reference: ReferenceBatch,
    judge: Judge,
    request: TrackRequest,
    device: torch.device,
    not_applicable: dict[str, str],
) -> RunOutcome:
    """Stream every shard, in order, into the metric states and compute them (rank 0)."""
    width = _feature_dim(judge)
    empty = torch.empty(0, width)
    real = None
    if any("real_features" in m.inputs for n, m in metrics.items() if n not in not_applicable):
        real = reference_activations(
            reference, judge, device, request.options.batch_size, cache=request.cache_features
        )
    fields_real = {"real_features": real, "fake_features": empty}
    for name, metric in metrics.items():
        if name not in not_applicable and "real_features" in metric.inputs:
            metric.update(*(fields_real[key] for key in metric.inputs))
    for shard in range(settings.num_shards):
        arrays = shards.load(shard, settings.shard_range(shard))
        if arrays is None:
            raise ConfigError(
                f"gen: shard {shard} is missing from {shards.directory} after sampling (was it deleted?); "
                "run again to regenerate it"
            )
        fields = {"real_features": empty, "fake_features": torch.from_numpy(arrays[judge.outputs[0]])}
        if LOGITS_OUTPUT in arrays:
            fields["fake_logits"] = torch.from_numpy(arrays[LOGITS_OUTPUT])
        for name, metric in metrics.items():
            missing = [key for key in metric.inputs if key not in fields]
            if missing:
                not_applicable.setdefault(
                    name, f"judge {judge.describe()['name']} gives no {', '.join(missing)}"
                )
            if name not in not_applicable:
                metric.update(*(fields[key] for key in metric.inputs))
    values: dict[str, float] = {}
    for name, metric in metrics.items():
        if name not in not_applicable:
            values.update({RENAMES.get(k, k): v for k, v in metric.compute().items()})
    return RunOutcome(
        metrics=values,
        items_requested=settings.num_samples,
        items_used=settings.num_samples,
        skipped=[],
        not_applicable=not_applicable,
        timings={},
        metric_versions={name: type(m).implementation_version for name, m in metrics.items()},
    )


def _timings(works: list[_RankWork], total: float, count: int) -> dict[str, float]:
    generated = sum(len(w.generated) for w in works)
    return {
        "total_seconds": total,
        "sample_seconds": sum(w.sample_seconds for w in works),
        "judge_seconds": sum(w.judge_seconds for w in works),
        "samples_per_second": count / total if total > 0 and generated else 0.0,
        "processes": len(works),
    }


def _generation_section(
    built: BuiltModel,
    generator: Generator,
    settings: GenSettings,
    seed: int,
    key: str,
    works: list[_RankWork],
) -> dict[str, Any]:
    """What was sampled and how: the record's ``generation`` section."""
    describe = getattr(generator, "describe", None)
    return {
        "settings": generator.settings(),
        "weights_sha256": generator.weights_sha256,
        "tokenizer": getattr(generator, "tokenizer", None),
        "source": describe() if callable(describe) else None,
        "num_samples": settings.num_samples,
        "num_classes": settings.num_classes,
        "per_class": settings.per_class,
        "class_order": settings.class_order,
        "seed": seed,
        "run_key": key,
        "shards": {
            "count": settings.num_shards,
            "size": settings.shard_size,
            "generated": sorted(s for w in works for s in w.generated),
            "resumed": sorted(s for w in works for s in w.resumed),
        },
    }
