"""The Python API: ``evaluate`` one model on one suite, or ``evaluate_sweep`` over model arguments."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokbench.adapters.base import Adapter
from tokbench.adapters.registry import BuiltModel, build_model
from tokbench.adapters.spec import parse_model_spec
from tokbench.data.base import Dataset, Preprocess
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError
from tokbench.features import FeatureCache, JudgeFeatures
from tokbench.judges.base import Judge
from tokbench.judges.weights import file_sha256
from tokbench.metrics import METRICS
from tokbench.recording import (
    RunResult,
    build_record,
    claim_record,
    store_result,
)
from tokbench.runner import (
    ReconstructionRunner,
    RunOptions,
    build_judges,
    feature_judges,
    resolve_device,
)
from tokbench.suites import RECON_TRACK, SuiteConfig, load_suite, with_judge_options
from tokbench.tracks import TRACKS, TrackRequest

__all__ = ["RunResult", "evaluate", "evaluate_sweep", "sweep_specs", "with_arguments"]

QUANTIZATION = "uint8-round-half-even"


def evaluate(
    model: str | Adapter,
    suite: str = "recon",
    data: str | None = None,
    *,
    limit: int | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    seed: int = 0,
    on_error: str = "skip",
    store: str | Path | None = None,
    force: bool = False,
    progress: bool = False,
    reference: str | Path | None = None,
    cache_features: bool = True,
    judge_options: dict[str, dict[str, Any]] | None = None,
    num_samples: int | None = None,
    work_dir: str | Path | None = None,
    save_samples: bool = False,
) -> RunResult:
    """Evaluate ``model`` (a spec such as ``"jpeg:quality=30"`` or an adapter instance) on ``suite``.

    ``data`` overrides the suite's dataset (``"embedded"``, ``"folder:PATH"``). With ``store`` the
    record is added to that leaderboard store; an identical protocol and model already there is
    not re-run (its record is returned) unless ``force`` is set. ``reference`` is a statistics
    file (``.npz`` with ``mu``/``sigma``) that replaces the originals as FID's real side.
    ``cache_features`` keeps judge features of the originals on disk for later runs.
    ``judge_options`` overrides options of the suite's judges by alias (``{"clip": {"weights":
    "random"}}``); they enter the protocol hash.
    Generator suites (``gen``): ``num_samples`` overrides the suite's sample count, ``work_dir`` holds
    the resumable shard files (default: the tokbench cache), ``save_samples`` also dumps the samples.
    """
    options = RunOptions(
        device=device, batch_size=batch_size, limit=limit, seed=seed, on_error=on_error, progress=progress
    )
    suite_config = load_suite(suite)
    if judge_options:
        suite_config = with_judge_options(suite_config, judge_options)
    if suite_config.track != RECON_TRACK:
        request = TrackRequest(
            model=model,
            suite=suite_config,
            data=data,
            options=options,
            store=None if store is None else Path(store),
            force=force,
            reference=None if reference is None else Path(reference),
            cache_features=cache_features,
            num_samples=num_samples,
            work_dir=None if work_dir is None else Path(work_dir),
            save_samples=save_samples,
        )
        return TRACKS.get(suite_config.track)(request)
    if num_samples is not None or work_dir is not None or save_samples:
        raise ConfigError(
            f"num_samples, work_dir and save_samples apply to generator suites, not to {suite_config.name!r}"
        )
    built = build_model(model)
    run_model = _with_perturbation(built, suite_config)
    dataset = resolve_dataset(data or suite_config.dataset)
    preprocess = _build_suite_preprocess(suite_config)
    judges = build_judges(suite_config, resolve_device(device))
    statistics = _load_reference(Path(reference)) if reference is not None else None
    protocol = _protocol(suite_config, data or suite_config.dataset, dataset, preprocess, judges, options)
    if run_model is not built:
        protocol["perturbation"] = run_model.adapter.describe()
    if reference is not None:
        protocol["reference"] = {"name": Path(reference).name, "sha256": file_sha256(Path(reference))}
    slot = claim_record(suite_config.name, protocol, built.spec, store, force)
    if slot.existing is not None:
        return slot.existing
    digest, record_id, record_store = slot.digest, slot.record_id, slot.store
    featurising = feature_judges(suite_config, judges)
    caches = _feature_caches(featurising, protocol, resolve_device(device).type) if cache_features else {}
    features = JudgeFeatures(featurising, caches)
    runner = ReconstructionRunner(
        run_model, suite_config, dataset, preprocess, options, judges, features, {"reference": statistics}
    )
    outcome = runner.run()
    record = build_record(record_id, suite_config, digest, protocol, built, outcome, options)
    return store_result(record_store, record, force)


def _with_perturbation(built: BuiltModel, suite: SuiteConfig) -> BuiltModel:
    """``built`` itself, or, for a suite with a ``perturbation`` (pFID), the same model with its
    tokenizer wrapped in ``PerturbedTokenizer`` (a continuous tokenizer raises ConfigError
    "not applicable: continuous tokenizer"). The record keeps describing ``built``."""
    if suite.perturbation is None:
        return built
    from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer

    wrapper = PerturbedTokenizer(built.adapter, CodebookPerturbation(**suite.perturbation))
    return BuiltModel(adapter=wrapper, name=built.name, spec=built.spec, arguments=built.arguments)


def _load_reference(path: Path) -> Any:
    from tokbench.stats_io import load_statistics

    return load_statistics(path)


def _feature_caches(
    judges: dict[str, Judge], protocol: dict[str, Any], device_type: str
) -> dict[str, FeatureCache]:
    """One cache of original-image features per judge, keyed by everything that changes them.

    The device type is part of the key: CPU and GPU kernels round differently.
    """
    shared = {
        "dataset_manifest": protocol["dataset"]["manifest_hash"],
        "preprocess": protocol["preprocess"],
        "quantization": protocol["quantization"],
        "device": device_type,
    }
    return {
        alias: FeatureCache.for_protocol({**shared, "judge": j.describe()}) for alias, j in judges.items()
    }


def evaluate_sweep(model: str, sweep: dict[str, Sequence[str]], **kwargs: Any) -> list[RunResult]:
    """Evaluate ``model`` at every combination of the swept arguments (one record per point)."""
    return [evaluate(spec, **kwargs) for spec in sweep_specs(model, sweep)]


def with_arguments(model: str, arguments: dict[str, str]) -> str:
    """``model`` with extra ``key=value`` arguments appended (e.g. ``weights`` from ``--weights``)."""
    return sweep_specs(model, {key: [value] for key, value in arguments.items()})[0]


def sweep_specs(model: str, sweep: dict[str, Sequence[str]]) -> list[str]:
    """Model specs for the cartesian product of ``sweep``, e.g. ``jpeg`` × quality=10,30."""
    parsed = parse_model_spec(model)
    clashes = sorted(set(sweep) & set(parsed.raw_args))
    if clashes:
        raise ConfigError(f"--sweep {', '.join(clashes)} is also fixed in model spec {model!r}")
    if not sweep or any(len(values) == 0 for values in sweep.values()):
        raise ConfigError("a sweep needs at least one value per swept argument")
    keys = list(sweep)
    specs = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        arguments = {**parsed.raw_args, **dict(zip(keys, values, strict=True))}
        specs.append(parsed.target + ":" + ",".join(f"{k}={v}" for k, v in arguments.items()))
    return specs


def _build_suite_preprocess(suite: SuiteConfig) -> Preprocess:
    options = {k: v for k, v in suite.preprocess.items() if k != "name"}
    return build_preprocess(suite.preprocess["name"], **options)


def _protocol(
    suite: SuiteConfig,
    data: str,
    dataset: Dataset,
    preprocess: Preprocess,
    judges: dict[str, Judge],
    options: RunOptions,
) -> dict[str, Any]:
    total = len(dataset.items())
    requested = min(total, options.limit) if options.limit is not None else total
    return {
        "suite": suite.to_dict(),
        "dataset": {"name": data, "manifest_hash": dataset.manifest_hash(), "items_requested": requested},
        "preprocess": preprocess.describe(),
        "quantization": QUANTIZATION,
        "judges": {alias: judge.describe() for alias, judge in judges.items()},
        "metric_versions": {m.name: METRICS.get(m.name).implementation_version for m in suite.metrics},
    }
