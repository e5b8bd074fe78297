"""The ``gen`` track: class-conditional samples → judge features → gFID, IS, precision/recall.

Flow: settings, reference batch, generator and judge are all checked before the first sample. The
samples are split into shards of ``shard_size``; under ``torchrun`` rank r generates shards r, r + W, …
Each shard's samples are quantised to uint8 (as the ADM evaluator's ``.npz`` batches are), judged
once, and only their judge outputs are kept, in a shard file (``tokbench.gen.shards``); a killed run
resumes from its finished shards. Rank 0 then streams every shard, in shard order, into the metric
states, so the numbers are the same whether the shards were made in one run or several, by one
process or many. Metric keys follow the reported ``gen`` rows: ``gfid`` (and ``gfid_count``),
``inception_score`` (``_std``), ``precision``, ``recall``.

A suite may score with several judges (e.g. FD-CLIP beside gFID). The reference file's statistics
(``mu``/``sigma``, and ``feats``) belong to the *primary* judge, the one that scores ``fid`` (or the
only judge); every other judge featurises the reference's ``arr_0`` images itself (cached).
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


@dataclass(frozen=True)
class _Judges:
    """The run's judges by alias; ``primary`` owns the reference file's statistics."""

    by_alias: dict[str, Judge]
    primary: str

    def key(self, alias: str, output: str) -> str:
        """A judge output's name in shard files: plain for the primary judge, ``alias.output`` else."""
        return output if alias == self.primary else f"{alias}.{output}"

    def shard_outputs(self) -> tuple[str, ...]:
        """Every judge output a shard file holds."""
        return tuple(self.key(a, o) for a, judge in self.by_alias.items() for o in judge.outputs)

    def describe(self) -> dict[str, Any]:
        return {alias: judge.describe() for alias, judge in self.by_alias.items()}


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
    judges, not_applicable = _build_judges(suite, device)
    primary = judges.by_alias[judges.primary]
    reference = load_reference(find_reference(request.reference, settings.reference), _feature_dim(primary))
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
        "judges": judges.describe(),
        "metric_versions": {m.name: METRICS.get(m.name).implementation_version for m in suite.metrics},
    }
    slot = claim_record(suite.name, protocol, built.spec, request.store, request.force)
    if slot.existing is not None:
        return slot.existing
    digest, record_id, record_store = slot.digest, slot.record_id, slot.store

    metrics = build_metrics(
        suite, judges.by_alias, {"reference": reference.statistics}, inject_judges={judges.primary}
    )
    not_applicable.update(_static_not_applicable(suite, metrics, judges, reference))
    parts = {
        "sampling": settings.describe(options.seed),
        "model": built.spec,
        "settings": generator.settings(),
        "weights_sha256": generator.weights_sha256,
        "judge": primary.describe(),
        **({"other_judges": judges.describe()} if len(judges.by_alias) > 1 else {}),
        "quantization": QUANTIZATION,
        "device": device.type,
        "batch_size": options.batch_size,
    }
    key = run_key(parts)
    if generator.weights_sha256 is None:
        logger.warning(
            "gen: %s has no weights sha256; its shards are identified by its spec only", built.spec
        )
    shards = ShardStore(request.work_dir or cache_dir() / "gen", key, parts, judges.shard_outputs())

    started = time.perf_counter()
    context = distributed.current(device)
    work = _generate(generator, judges, shards, settings, request, context, device, built.spec)
    gathered = context.gather(work)
    outcome = None
    if gathered is not None:
        outcome = _score(suite, metrics, shards, settings, reference, judges, request, device, not_applicable)
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


def _build_judges(suite, device: torch.device) -> tuple[_Judges, dict[str, str]]:
    """Every judge the suite's metrics use, and the metrics made not applicable by a missing part."""
    aliases = sorted({m.judge for m in suite.metrics if m.judge})
    if not aliases:
        raise ConfigError(f"suite {suite.name!r}: the gen track needs metrics with a judge")
    fid_judges = [m.judge for m in suite.metrics if m.name == "fid" and m.judge]
    primary = fid_judges[0] if fid_judges else aliases[0] if len(aliases) == 1 else None
    if primary is None:
        raise ConfigError(
            f"suite {suite.name!r} scores with judges {aliases} but has no 'fid' metric: the reference "
            "file's statistics belong to the judge of 'fid', so a multi-judge gen suite needs one"
        )
    built, not_applicable = {}, {}
    for alias in aliases:
        config = suite.judges[alias]
        built[alias], missing = _build_judge(config.name, dict(config.options), device)
        not_applicable.update(missing)
    return _Judges(built, primary), not_applicable


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
    suite, metrics: dict[str, Metric], judges: _Judges, reference: ReferenceBatch
) -> dict[str, str]:
    """Metrics that cannot be computed with these judges and this reference, with the reason."""
    reasons = {}
    for config in suite.metrics:
        if "real_features" not in metrics[config.name].inputs:
            continue
        if config.judge == judges.primary and reference.activations is None:
            reasons[config.name] = (
                f"reference {reference.path.name} has no activations ('arr_0' images or 'feats')"
            )
        elif config.judge != judges.primary and reference.activations != "arr_0":
            reasons[config.name] = (
                f"reference {reference.path.name} has no 'arr_0' images for judge {config.judge!r} "
                "to featurise"
            )
    primary = judges.by_alias[judges.primary]
    reasons[SFID] = (
        f"judge {primary.describe()['name']} gives no spatial (mixed_6/conv) features for sFID"
        if reference.spatial
        else f"reference {reference.path.name} has no spatial statistics (mu_s, sigma_s)"
    )
    return reasons


def _generate(
    generator: Generator,
    judges: _Judges,
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
            _run_shard(generator, judges, shards, settings, request, shard, work, spec, progress)
            work.generated.append(shard)
    return work


def _run_shard(
    generator: Generator,
    judges: _Judges,
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
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in judges.shard_outputs()}
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
        for alias, judge in judges.by_alias.items():
            judged = judge(quantized.to(getattr(judge, "device", quantized.device)))
            for name in judge.outputs:
                rows = judged[name].detach().to("cpu", torch.float32).numpy()
                outputs[judges.key(alias, name)].append(rows)
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
    suite,
    metrics: dict[str, Metric],
    shards: ShardStore,
    settings: GenSettings,
    reference: ReferenceBatch,
    judges: _Judges,
    request: TrackRequest,
    device: torch.device,
    not_applicable: dict[str, str],
) -> RunOutcome:
    """Stream every shard, in order, into the metric states and compute them (rank 0)."""
    judge_of = {config.name: config.judge for config in suite.metrics}
    live = {name: metric for name, metric in metrics.items() if name not in not_applicable}
    for alias in sorted(
        {judge_of[name] for name, metric in live.items() if "real_features" in metric.inputs}
    ):
        judge = judges.by_alias[alias]
        real = reference_activations(
            reference, judge, device, request.options.batch_size, cache=request.cache_features
        )
        fields_real = {"real_features": real, "fake_features": torch.empty(0, _feature_dim(judge))}
        for name, metric in live.items():
            if judge_of[name] == alias and "real_features" in metric.inputs:
                metric.update(*(fields_real[key] for key in metric.inputs))
    for shard in range(settings.num_shards):
        arrays = shards.load(shard, settings.shard_range(shard))
        if arrays is None:
            raise ConfigError(
                f"gen: shard {shard} is missing from {shards.directory} after sampling (was it deleted?); "
                "run again to regenerate it"
            )
        fields_of = {alias: _shard_fields(arrays, judges, alias) for alias in judges.by_alias}
        for name, metric in metrics.items():
            fields = fields_of[judge_of[name]]
            missing = [key for key in metric.inputs if key not in fields]
            if missing:
                judge_name = judges.by_alias[judge_of[name]].describe()["name"]
                not_applicable.setdefault(name, f"judge {judge_name} gives no {', '.join(missing)}")
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


def _shard_fields(arrays: dict[str, np.ndarray], judges: _Judges, alias: str) -> dict[str, torch.Tensor]:
    """A shard's generated-side metric inputs from judge ``alias``."""
    judge = judges.by_alias[alias]
    fields = {
        "real_features": torch.empty(0, _feature_dim(judge)),
        "fake_features": torch.from_numpy(arrays[judges.key(alias, judge.outputs[0])]),
    }
    logits = judges.key(alias, LOGITS_OUTPUT)
    if logits in arrays:
        fields["fake_logits"] = torch.from_numpy(arrays[logits])
    return fields


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
