"""The ``prune`` track: one pruner at one budget on the suite's benchmarks, with measured cost.

Every item is answered greedily by the host VLM with the pruner applied; each benchmark is scored
with its official rule. Unless the pruner is ``none``, the unpruned model is run (or its stored
record reused) on the same items so every score also appears as % of the unpruned model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from tokbench.adapters.base import Pruner, resolve_budget
from tokbench.adapters.registry import build_model
from tokbench.errors import ConfigError, DataError
from tokbench.pruning import cost
from tokbench.pruning.benchmarks import GROUPS, READERS, Item, read_benchmark, score_benchmark
from tokbench.pruning.host import LlavaHost
from tokbench.pruning.pruners import NoPruning
from tokbench.pruning.vlms import load_host
from tokbench.recording import (
    RunResult,
    build_record,
    claim_record,
    store_result,
)
from tokbench.runner import RunOptions, RunOutcome, resolve_device
from tokbench.tracks import TrackRequest

SETTINGS = {"vlm", "budgets", "benchmarks", "max_new_tokens", "mmbench_circular", "relative_to_unpruned"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class PruneSettings:
    """The suite's ``settings:`` for the prune track, validated."""

    vlm: str
    budgets: tuple[int, ...]
    benchmarks: tuple[str, ...]
    max_new_tokens: int
    mmbench_circular: bool
    relative_to_unpruned: bool

    @classmethod
    def from_suite(cls, settings: dict[str, Any], suite: str) -> PruneSettings:
        """Check keys and values; a typo or an unknown benchmark raises naming the suite."""
        unknown = sorted(set(settings) - SETTINGS)
        missing = sorted(SETTINGS - set(settings))
        if unknown or missing:
            raise ConfigError(
                f"suite {suite!r}: settings unknown {unknown}, missing {missing}; allowed {sorted(SETTINGS)}"
            )
        bad = sorted(set(settings["benchmarks"]) - set(READERS))
        if bad:
            raise ConfigError(f"suite {suite!r}: unknown benchmark(s) {bad}; known {sorted(READERS)}")
        if int(settings["max_new_tokens"]) < 1:
            raise ConfigError(f"suite {suite!r}: max_new_tokens must be >= 1")
        return cls(
            vlm=str(settings["vlm"]),
            budgets=tuple(int(b) for b in settings["budgets"]),
            benchmarks=tuple(settings["benchmarks"]),
            max_new_tokens=int(settings["max_new_tokens"]),
            mmbench_circular=bool(settings["mmbench_circular"]),
            relative_to_unpruned=bool(settings["relative_to_unpruned"]),
        )


def data_root(data: str | None) -> Path:
    """The benchmark directory given with ``--data`` (``DIR`` or ``folder:DIR``)."""
    if data is None:
        raise ConfigError(
            "the prune suite needs --data DIR: a directory with pope/, gqa/, mme/, textvqa/, scienceqa/ "
            "or mmbench/ in the official formats (see tokbench.pruning.benchmarks)"
        )
    root = Path(data.removeprefix("folder:"))
    if not root.is_dir():
        raise DataError(f"--data {data!r}: {root} is not a directory")
    return root


def manifest_hash(root: Path, names: list[str]) -> str:
    """sha256 over the benchmark annotation files (path + content) and the image file names/sizes."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() in IMAGE_SUFFIXES:
            entries.append([relative, path.stat().st_size])
        else:
            entries.append([relative, hashlib.sha256(path.read_bytes()).hexdigest()])
    return hashlib.sha256(json.dumps([names, entries]).encode()).hexdigest()


def run(request: TrackRequest) -> RunResult:
    """Run the pruner of ``request.model`` on the benchmarks under ``request.data``."""
    settings = PruneSettings.from_suite(request.suite.settings, request.suite.name)
    built = build_model(request.model)
    pruner = built.adapter
    if not isinstance(pruner, Pruner):
        raise ConfigError(
            f"suite {request.suite.name!r} evaluates pruners; {built.name!r} is a {pruner.kind}"
        )
    root = data_root(request.data)
    vlm = pruner.vlm or settings.vlm
    items = _load_items(root, settings, request.options.limit)
    protocol = {
        "suite": request.suite.to_dict(),
        "vlm": vlm,
        "dataset": {"name": root.name, "manifest_hash": manifest_hash(root, sorted(items))},
        "items": {name: len(found) for name, found in items.items()},
        "decoding": {"greedy": True, "max_new_tokens": settings.max_new_tokens, "batch_size": 1},
    }
    slot = claim_record(request.suite.name, protocol, built.spec, request.store, request.force)
    if slot.existing is not None:
        return slot.existing
    digest, record_id, record_store = slot.digest, slot.record_id, slot.store
    device = resolve_device(request.options.device)
    host = load_host(vlm, device, request.options.seed)
    attention = host.configure_for(pruner)
    keep = resolve_budget(pruner.budget, host.num_visual_tokens)
    start = time.perf_counter()
    measured = _evaluate(host, pruner, keep, items, settings.max_new_tokens, request.options)
    metrics, not_applicable = _metrics(settings, items, measured, keep, host)
    if settings.relative_to_unpruned and not isinstance(pruner, NoPruning):
        baseline_spec = "none" if pruner.vlm is None else f"none:vlm={pruner.vlm}"
        baseline = run(dataclasses.replace(request, model=baseline_spec))
        metrics.update(_relative(metrics, baseline.metrics))
    outcome = RunOutcome(
        metrics=metrics,
        items_requested=sum(len(found) for found in items.values()),
        items_used=len(measured["predictions"]),
        skipped=measured["skipped"],
        not_applicable=not_applicable,
        timings={"total_seconds": time.perf_counter() - start},
    )
    extra = {
        "pruning": {
            "vlm": host.name,
            "random_weights": host.random_weights,
            "attention_implementation": attention,
            "dtype": str(host.model.dtype).removeprefix("torch."),
            "device": str(device),
            "visual_tokens": host.num_visual_tokens,
            "tokens_kept": keep,
            "budget": str(pruner.budget),
            "stage": pruner.stage,
            "capabilities": {
                "training_free": pruner.training_free,
                "needs_attention": pruner.needs_attention,
                "needs_text_query": pruner.needs_text_query,
                "merges_tokens": pruner.merges_tokens,
            },
            "schedule": [list(s) for s in pruner.schedule(host.num_layers, keep)]
            if pruner.stage == "intra-llm"
            else [],
            "protocol_budget": keep in settings.budgets,
            "groups": {name: GROUPS[name] for name in settings.benchmarks},
            "predictions": measured["predictions"],
        }
    }
    record = build_record(record_id, request.suite, digest, protocol, built, outcome, request.options, extra)
    return store_result(record_store, record, request.force)


def _load_items(root: Path, settings: PruneSettings, limit: int | None) -> dict[str, list[Item]]:
    items = {}
    for name in settings.benchmarks:
        found = read_benchmark(name, root, settings.mmbench_circular)
        if found is not None:
            items[name] = found[:limit] if limit is not None else found
    if not items:
        raise DataError(f"--data {root}: none of the benchmark directories {list(settings.benchmarks)} exist")
    return items


def _evaluate(
    host: LlavaHost,
    pruner: Pruner,
    keep: int,
    items: dict[str, list[Item]],
    max_new_tokens: int,
    options: RunOptions,
) -> dict[str, list[dict[str, Any]]]:
    """Answer every item; collect predictions, per-item cost, and skips (per the error policy)."""
    predictions: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for name, found in items.items():
        for index, item in enumerate(found):
            generator = torch.Generator().manual_seed(options.seed * 1_000_003 + index)
            try:
                pixels = host.codec.pixels(item.image())
                with cost.PeakMemory(host.device) as memory:
                    answer = host.generate(pixels, item.prompt, pruner, keep, max_new_tokens, generator)
            except DataError as exc:
                if options.on_error == "fail":
                    raise
                skipped.append({"id": f"{name}/{item.qid}", "reason": str(exc)})
                continue
            flops = cost.prefill_flops(host.model.config, answer.sequence_per_layer)
            predictions.append(
                {
                    "benchmark": name,
                    "id": item.qid,
                    "prediction": answer.text,
                    "prefill_flops": flops.total,
                    "prefill_seconds": answer.prefill_seconds,
                    "decode_seconds": answer.decode_seconds,
                    "visual_tokens_per_layer": answer.visual_tokens_per_layer,
                    "kv_cache_bytes": cost.kv_cache_bytes(
                        host.model.config, answer.sequence_per_layer, host.model.dtype
                    ),
                    "peak_memory_bytes": memory.peak_bytes,
                }
            )
    return {"predictions": predictions, "skipped": skipped}


def _metrics(
    settings: PruneSettings, items: dict[str, list[Item]], measured: dict, keep: int, host: LlavaHost
) -> tuple[dict[str, float], dict[str, str]]:
    """Benchmark scores, token counts and mean cost per item; what could not be measured and why."""
    metrics: dict[str, float] = {}
    not_applicable: dict[str, str] = {}
    predictions = measured["predictions"]
    for name in settings.benchmarks:
        if name not in items:
            not_applicable[name] = "no data for this benchmark under --data"
            continue
        answered = {p["id"]: p["prediction"] for p in predictions if p["benchmark"] == name}
        scored = [item for item in items[name] if item.qid in answered]
        if scored:
            metrics.update(score_benchmark(name, scored, [answered[i.qid] for i in scored]))
    if not predictions:
        return metrics, not_applicable
    decode = [s for p in predictions for s in p["decode_seconds"]]
    layers = [count for p in predictions for count in p["visual_tokens_per_layer"]]
    metrics.update(
        {
            "tokens_kept": float(keep),
            "tokens_retained_pct": 100.0 * keep / host.num_visual_tokens,
            "avg_visual_tokens": sum(layers) / len(layers),
            "prefill_gflops": sum(p["prefill_flops"] for p in predictions) / len(predictions) / 1e9,
            "prefill_ms": 1e3 * sum(p["prefill_seconds"] for p in predictions) / len(predictions),
            "kv_cache_mb": sum(p["kv_cache_bytes"] for p in predictions) / len(predictions) / 2**20,
        }
    )
    if decode:
        metrics["decode_ms_per_token"] = 1e3 * sum(decode) / len(decode)
    peaks = [p["peak_memory_bytes"] for p in predictions if p["peak_memory_bytes"] is not None]
    if peaks:
        metrics["peak_memory_mb"] = max(peaks) / 2**20
    else:
        not_applicable["peak_memory_mb"] = (
            f"no allocator peak statistics on {host.device.type}; see kv_cache_mb"
        )
    return metrics, not_applicable


def _relative(metrics: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """Each benchmark score as % of the unpruned model's, and the mean per result group."""
    relative = {}
    for name in GROUPS:
        if name in metrics and baseline.get(name):
            relative[f"{name}_pct_of_unpruned"] = 100.0 * metrics[name] / baseline[name]
    for group in sorted(set(GROUPS.values())):
        values = [
            relative[f"{n}_pct_of_unpruned"]
            for n, g in GROUPS.items()
            if g == group and f"{n}_pct_of_unpruned" in relative
        ]
        if values:
            relative[f"{group}_pct_of_unpruned"] = sum(values) / len(values)
    return relative
