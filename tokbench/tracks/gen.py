"""The ``gen`` track: class-conditional samples → judge features → gFID, IS, precision/recall.

Flow: settings, reference batch, generator and judge are all checked before the first sample. The
samples are split into shards of ``shard_size``; under ``torchrun`` rank r generates shards r, r + W, …
Each shard's samples are quantised to uint8 (as the ADM evaluator's ``.npz`` batches are), judged
once, and only their judge outputs are kept, in a shard file (``tokbench.gen.shards``); a killed run
resumes from its finished shards. Rank 0 then streams every shard, in shard order, into the metric
states, so the numbers are the same whether the shards were made in one run or several, by one
process or many. The suite names the record keys (``fid`` is recorded as ``gfid``, as reported
``gen`` rows name it).

A suite may score with several judges (e.g. FD-CLIP beside gFID). The reference file's statistics
(``mu``/``sigma``, and ``feats``) belong to the *primary* judge, the one that scores ``fid`` (or the
only judge); every other judge featurises the reference's ``arr_0`` images itself (cached).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tokbench.adapters.base import Generator
from tokbench.adapters.registry import BuiltModel, build_model
from tokbench.adapters.spec import canonical_spec
from tokbench.errors import AdapterOutputError, ConfigError, WeightsError
from tokbench.features import LOGITS_OUTPUT
from tokbench.gen.reference import ReferenceBatch, find_reference, load_reference, reference_activations
from tokbench.gen.settings import GenSettings, sample_seed
from tokbench.gen.shards import (
    PROBE_SAMPLES,
    DeterminismProbe,
    ShardStore,
    probe_determinism,
    rank_shards,
    run_key,
)
from tokbench.judges.base import Judge
from tokbench.judges.inception import FEATURE_DIM
from tokbench.judges.registry import JUDGES
from tokbench.judges.weights import cache_dir
from tokbench.metrics import METRICS
from tokbench.models.files import FileSamples, check_class_balance, class_balance
from tokbench.tensors import quantize_uint8
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest
from tokbench.tracks.checks import check_images
from tokbench.tracks.heap import TRIMMER
from tokbench.tracks.sample_files import shard_samples
from tokbench.tracks.scoring import SuiteMetrics, metric_versions, resolve_device

logger = logging.getLogger(__name__)

TRACK_VERSION = "1"
QUANTIZATION = "uint8-round-half-even"
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
    """What one process did: shards generated, and shards found finished."""

    generated: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    probe: DeterminismProbe | None = None


@dataclass
class _State:
    """What ``plan`` resolved: settings, judges, reference batch, generator, metrics and shard key."""

    request: TrackRequest
    settings: GenSettings
    judges: _Judges
    reference: ReferenceBatch
    generator: Generator
    metrics: SuiteMetrics
    not_applicable: dict[str, str]
    key: str
    parts: dict[str, Any]


class GenTrack(Track):
    """Class-conditional generators: gFID, Inception Score and precision/recall from resumable shards."""

    name = "gen"
    kinds = ("generator",)

    def plan(self, request: TrackRequest) -> Plan:
        """Settings, judges, reference batch and generator are all checked before the first sample."""
        suite, options = request.suite, request.options
        if options.limit is not None:
            raise ConfigError("--limit does not apply to generator suites; use --num-samples N (N samples)")
        if request.data is not None:
            raise ConfigError(
                f"--data does not apply to generator suites (got {request.data!r}); the real side is the "
                "reference batch: --reference FILE.npz"
            )
        built = build_model(request.model)
        files = built.adapter if isinstance(built.adapter, FileSamples) else None
        settings = GenSettings.from_suite(suite.settings, _sample_count(files, request.num_samples))
        if files is not None:
            check_class_balance(files, settings)
        device = resolve_device(options.device)
        judges, not_applicable = _build_judges(suite, device)
        primary = judges.by_alias[judges.primary]
        reference = load_reference(
            find_reference(request.reference, settings.reference), _feature_dim(primary)
        )
        built = _describe_model(built, settings)
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
            "metric_versions": metric_versions(suite),
        }
        metrics = SuiteMetrics(
            suite, judges.by_alias, {"reference": reference.statistics}, inject_judges={judges.primary}
        )
        not_applicable.update(_static_not_applicable(metrics, judges, reference))
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
        state = _State(
            request, settings, judges, reference, generator, metrics, not_applicable, run_key(parts), parts
        )
        return Plan(
            model=built, protocol=protocol, device=device, items_requested=settings.num_samples, state=state
        )

    def measure(self, plan: Plan, run: RunContext) -> _RankWork:
        """Generate and judge this process's unfinished shards (finished ones are only checked)."""
        state: _State = plan.state
        if state.generator.weights_sha256 is None:
            logger.warning(
                "gen: %s has no weights sha256; its shards are identified by its spec only", plan.model.spec
            )
        work = _generate(state, _shard_store(state), run, plan.model.spec)
        run.shard.items_used = sum(
            len(state.settings.shard_range(s)) for s in (*work.generated, *work.resumed)
        )
        return work

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Stream every shard file, in order, into the metric states and compute them."""
        state: _State = plan.state
        works = [shard.payload for shard in shards]
        values, info, not_applicable = _score(state, _shard_store(state), plan.device)
        extra = {
            "generation": _generation_section(
                plan.model, state.generator, state.settings, state.request.options.seed, state.key, works
            )
        }
        return Measurement(metrics=values, not_applicable=not_applicable, extra=extra, metric_info=info)


def _shard_store(state: _State) -> ShardStore:
    """The run's shard files (in ``--work-dir``, default the tokbench cache)."""
    root = state.request.work_dir or cache_dir() / "gen"
    return ShardStore(root, state.key, state.parts, state.judges.shard_outputs())


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
        if missing is not None:
            for metric in suite.metrics:
                if metric.judge == alias and "fake_logits" in METRICS.get(metric.name).inputs:
                    not_applicable[metric.record_key()] = missing
    return _Judges(built, primary), not_applicable


def _build_judge(name: str, options: dict[str, Any], device: torch.device) -> tuple[Judge, str | None]:
    """The judge; if its logits (Inception Score) cannot be resolved, the judge without them and the
    reason, recorded for the metrics that need logits (``inception-score``) as not applicable."""
    cls = JUDGES.get(name)
    try:
        return cls(**options).to(device).eval(), None
    except WeightsError as error:
        outputs = list(options.get("outputs") or [])
        if LOGITS_OUTPUT not in outputs:
            raise
        reduced = {**options, "outputs": [o for o in outputs if o != LOGITS_OUTPUT]}
        logger.warning("gen: no Inception logits (%s); the Inception Score is not applicable", error)
        return cls(**reduced).to(device).eval(), f"the judge has no logits: {error}"
    except TypeError as error:
        raise ConfigError(f"bad options for judge {name!r}: {error}") from None


def _feature_dim(judge: Judge) -> int:
    """Width of the judge's feature output (the Inception pool3 width unless the judge says)."""
    width = getattr(judge, "feature_dim", None)
    return FEATURE_DIM if width is None else int(width)


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
    if isinstance(adapter, FileSamples):  # labels checked by check_class_balance
        return built
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
    metrics: SuiteMetrics, judges: _Judges, reference: ReferenceBatch
) -> dict[str, str]:
    """Metrics that cannot be computed with these judges and this reference, with the reason."""
    reasons = {}
    for key, config, metric in metrics:
        if "real_features" not in metric.inputs:
            continue
        if config.judge == judges.primary and reference.activations is None:
            reasons[key] = f"reference {reference.path.name} has no activations ('arr_0' images or 'feats')"
        elif config.judge != judges.primary and reference.activations != "arr_0":
            reasons[key] = (
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


def _generate(state: _State, shards: ShardStore, run: RunContext, spec: str) -> _RankWork:
    """Generate and judge this rank's unfinished shards; finished ones are only checked."""
    work = _RankWork()
    settings = state.settings
    context = run.distributed
    todo = []
    for shard in rank_shards(settings.num_shards, context.rank, context.world_size):
        (work.resumed if shards.load(shard, settings.shard_range(shard)) is not None else todo).append(shard)
    state.generator.to(run.device)
    if not isinstance(state.generator, FileSamples):  # samples read from a file are fixed: no probe
        work.probe = _probe(state, shards, run, spec, mixing=bool(work.resumed and todo))
    with run.progress(sum(len(settings.shard_range(s)) for s in todo), f"gen · {spec}") as progress:
        for shard in todo:
            _run_shard(state, shards, run, shard, spec, progress)
            work.generated.append(shard)
    return work


def _run_shard(
    state: _State, shards: ShardStore, run: RunContext, shard: int, spec: str, progress: tqdm
) -> None:
    settings, judges = state.settings, state.judges
    indices = settings.shard_range(shard)
    labels = [settings.class_of(i) for i in indices]
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in judges.shard_outputs()}
    dumps = []
    step = run.options.batch_size
    if isinstance(state.generator, FileSamples) and state.generator.images.labels is not None:
        labels = [int(state.generator.images.labels[i]) for i in indices]
    samples = shard_samples(
        state.generator, run, indices, step, lambda batch: quantize_uint8(_draw(state, run, spec, batch))
    )
    while True:
        with run.timed("sample_seconds"):
            batch, quantized = next(samples, (None, None))
        if batch is None:
            break
        with run.timed("judge_seconds"):
            for alias, judge in judges.by_alias.items():
                judged = judge(quantized.to(getattr(judge, "device", quantized.device)))
                for name in judge.outputs:
                    rows = judged[name].detach().to("cpu", torch.float32).numpy()
                    outputs[judges.key(alias, name)].append(rows)
        if state.request.save_samples:
            dumps.append(quantized.permute(0, 2, 3, 1).cpu().numpy())
        progress.update(len(batch))
        TRIMMER.trim()
    shards.save(shard, indices, labels, {name: np.concatenate(rows) for name, rows in outputs.items()})
    if dumps:
        shards.save_samples(shard, np.concatenate(dumps), labels)


def _draw(state: _State, run: RunContext, spec: str, indices: range) -> torch.Tensor:
    """The samples ``indices`` (their classes and seeds), drawn through the model-call door and checked."""
    labels = [state.settings.class_of(i) for i in indices]
    seeds = [sample_seed(run.options.seed, i) for i in indices]
    images = run.call_model("sample", [f"sample {i}" for i in indices], state.generator.sample, labels, seeds)
    _check_samples(images, len(indices), spec, indices)
    return images


def _probe(state: _State, shards: ShardStore, run: RunContext, spec: str, mixing: bool) -> DeterminismProbe:
    """Draw the first samples of shard 0 again (``probe_determinism``); refuse to add new shards to
    finished ones of an earlier run when the generator fails it, unless --allow-nondeterministic."""
    indices = state.settings.shard_range(0)[:PROBE_SAMPLES]
    with run.timed("probe_seconds"):
        probe = probe_determinism(
            shards,
            indices,
            lambda: quantize_uint8(_draw(state, run, spec, indices)).permute(0, 2, 3, 1).cpu().numpy(),
        )
    if probe.deterministic:
        return probe
    found = (
        f"samples {indices.start}-{indices.stop - 1} drawn again differ by up to {probe.max_difference} "
        f"levels from {probe.compared_with}"
    )
    if mixing and not state.request.allow_nondeterministic:
        raise ConfigError(
            f"gen: model {spec} is not deterministic ({found}); {shards.directory} holds finished shards "
            "of an earlier run and new shards would mix other draws with them: delete that folder to start "
            "over, or pass --allow-nondeterministic to mix them anyway"
        )
    logger.warning(
        "gen: model %s is not deterministic (%s); the record says deterministic: false", spec, found
    )
    return probe


def _check_samples(images: Any, count: int, spec: str, indices: range) -> None:
    """The Generator contract: float32 N×3×H×W in [0, 1], finite, one image per condition."""
    ids = [f"sample {i}" for i in indices]
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[:2] != (count, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise AdapterOutputError(f"model {spec}: sample() returned {shape}, expected ({count}, 3, H, W)")
    check_images(images, images.shape, spec, ids, call="sample()")


def _score(
    state: _State, shards: ShardStore, device: torch.device
) -> tuple[dict[str, float], dict[str, dict[str, Any]], dict[str, str]]:
    """Stream every shard, in order, into the metric states and compute them (rank 0)."""
    settings, judges, metrics = state.settings, state.judges, state.metrics
    not_applicable = dict(state.not_applicable)
    live = [(key, config, metric) for key, config, metric in metrics if key not in not_applicable]
    for alias in sorted({config.judge for _, config, metric in live if "real_features" in metric.inputs}):
        judge = judges.by_alias[alias]
        real = reference_activations(
            state.reference,
            judge,
            device,
            state.request.options.batch_size,
            cache=state.request.cache_features,
        )
        fields_real = {"real_features": real, "fake_features": torch.empty(0, _feature_dim(judge))}
        for _, config, metric in live:
            if config.judge == alias and "real_features" in metric.inputs:
                metric.update(*(fields_real[name] for name in metric.inputs))
    for shard in range(settings.num_shards):
        arrays = shards.load(shard, settings.shard_range(shard))
        if arrays is None:
            raise ConfigError(
                f"gen: shard {shard} is missing from {shards.directory} after sampling (was it deleted?); "
                "run again to regenerate it"
            )
        fields_of = {alias: _shard_fields(arrays, judges, alias) for alias in judges.by_alias}
        for key, config, metric in metrics:
            fields = fields_of[config.judge]
            missing = [name for name in metric.inputs if name not in fields]
            if missing:
                judge_name = judges.by_alias[config.judge].describe()["name"]
                not_applicable.setdefault(key, f"judge {judge_name} gives no {', '.join(missing)}")
            if key not in not_applicable:
                metric.update(*(fields[name] for name in metric.inputs))
    values, info = metrics.compute(not_applicable)
    return values, info, not_applicable


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
        **({"class_balance": class_balance(generator)} if isinstance(generator, FileSamples) else {}),
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
        # every process drew the probe again; deterministic only if each drew the same pixels
        "deterministic": all(w.probe is None or w.probe.deterministic for w in works),
        "determinism_probe": next((w.probe.describe() for w in works if w.probe is not None), None),
    }


def _sample_count(files: FileSamples | None, requested: int | None) -> int | None:
    """``--num-samples`` for a generator; for samples drawn elsewhere, their count (which a different
    ``--num-samples`` contradicts)."""
    if files is None:
        return requested
    if requested is not None and requested != files.images.count:
        raise ConfigError(
            f"--num-samples {requested}, but {files.images.path} holds {files.images.count} samples "
            "(drop --num-samples: every sample of the file is scored)"
        )
    return files.images.count
