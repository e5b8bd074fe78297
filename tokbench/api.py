"""The Python API: ``evaluate`` one model on one suite, or ``evaluate_sweep`` over model arguments."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokbench.adapters.base import Adapter
from tokbench.adapters.spec import parse_model_spec
from tokbench.errors import ConfigError
from tokbench.evaluator import run_request
from tokbench.files import check_output_paths
from tokbench.recording import RunResult
from tokbench.suites import load_suite, with_judge_options
from tokbench.tracks.base import RunOptions, TrackRequest

__all__ = ["RunResult", "evaluate", "evaluate_sweep", "sweep_specs", "with_arguments"]


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
    timeout: float | None = None,
    allow_nondeterministic: bool = False,
    num_workers: int | None = None,
    save_reconstructions: str | Path | None = None,
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
    ``store`` and ``work_dir`` are checked before any work (``ConfigError`` if a file is in the way).
    ``num_workers`` processes decode and preprocess items while the model runs (None: from the CPU
    count, 0: in this process); the numbers never depend on it.
    Reconstruction suites (``recon``, ``video-recon``): ``save_reconstructions`` is a folder where each
    reconstruction is also written losslessly (PNG images, FFV1 ``.mkv`` clips) under its item's stem,
    so ``reconstructions:<folder>`` gives the same numbers; it is not part of the protocol.
    """
    folders = {"--store": store, "--work-dir": work_dir, "--save-reconstructions": save_reconstructions}
    check_output_paths(folders=folders)  # before any work
    options = RunOptions(
        device=device,
        batch_size=batch_size,
        limit=limit,
        seed=seed,
        on_error=on_error,
        progress=progress,
        timeout=timeout,
        **({} if num_workers is None else {"num_workers": num_workers}),
    )
    suite_config = load_suite(suite)
    if judge_options:
        suite_config = with_judge_options(suite_config, judge_options)
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
        allow_nondeterministic=allow_nondeterministic,
        save_reconstructions=None if save_reconstructions is None else Path(save_reconstructions),
    )
    return run_request(request)


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
