"""The ``prune`` track: one pruner at one budget on the suite's benchmarks, with measured cost.

Every item is answered greedily by the host VLM with the pruner applied; each benchmark is scored
with its official rule. Unless the pruner is ``none``, the unpruned model is run (or its stored
record reused) on the same items so every score also appears as % of the unpruned model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from tokbench.adapters.base import Pruner, resolve_budget
from tokbench.adapters.registry import build_model
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.metrics import METRICS
from tokbench.pruning import cost
from tokbench.pruning.benchmark_metrics import BenchmarkScore
from tokbench.pruning.benchmarks import GROUPS, READERS, Item, read_benchmark
from tokbench.pruning.host import LlavaHost, attention_for
from tokbench.pruning.pruners import NoPruning
from tokbench.pruning.vlms import load_host
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest, check_adapter
from tokbench.tracks.scoring import SuiteMetrics, resolve_device

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


class PruneTrack(Track):
    """One pruner at one budget inside a LLaVA-family VLM, on the suite's benchmarks."""

    name = "prune"
    kinds = ("pruner",)

    def plan(self, request: TrackRequest) -> Plan:
        """Settings, pruner, benchmark items and protocol; the unpruned baseline run it needs."""
        suite = request.suite
        settings = PruneSettings.from_suite(suite.settings, suite.name)
        _check_metrics(suite, settings)
        built = build_model(request.model)
        check_adapter(built, Pruner, suite)
        pruner = built.adapter
        root = data_root(request.data)
        vlm = pruner.vlm or settings.vlm
        items = _load_items(root, settings, request.options.limit)
        protocol = {
            "suite": suite.to_dict(),
            "vlm": vlm,
            "dataset": {"name": root.name, "manifest_hash": manifest_hash(root, sorted(items))},
            "items": {name: len(found) for name, found in items.items()},
            "decoding": {"greedy": True, "max_new_tokens": settings.max_new_tokens, "batch_size": 1},
            "attention_implementation": attention_for(pruner),
        }
        requires = {}
        if settings.relative_to_unpruned and not isinstance(pruner, NoPruning):
            requires["unpruned"] = dataclasses.replace(request, model=_baseline_spec(pruner))
        return Plan(
            model=built,
            protocol=protocol,
            device=resolve_device(request.options.device),
            items_requested=sum(len(found) for found in items.values()),
            state=_State(suite, settings, vlm, items),
            requires=requires,
        )

    def measure(self, plan: Plan, run: RunContext) -> dict[str, Any]:
        """Load the VLM, answer this process's items with the pruner applied, measure their cost."""
        state: _State = plan.state
        pruner: Pruner = plan.model.adapter
        host = load_host(state.vlm, plan.device, run.options.seed)
        attention = host.configure_for(pruner)
        keep = resolve_budget(pruner.budget, host.num_visual_tokens)
        flat = [
            (name, index, item) for name, found in state.items.items() for index, item in enumerate(found)
        ]
        shared = run.share(flat)
        warmup = _warm_up(run, host, pruner, keep, [item for _, (_, _, item) in shared])
        predictions = []
        with run.progress(len(shared), f"prune · {plan.model.spec}", unit="item") as progress:
            for loaded in run.load(shared, _Pixels(host.codec)):  # images decoded in loader workers
                for entry in loaded:
                    name, index, item = entry.item
                    generator = torch.Generator().manual_seed(run.options.seed * 1_000_003 + index)
                    try:
                        if entry.error is not None:
                            raise entry.error
                        answered = run.call_model(  # the VLM answering with the pruner inside: the model
                            "answer",
                            [f"{name}/{item.qid}"],
                            _answer,
                            host,
                            pruner,
                            keep,
                            entry.value,
                            item,
                            state.settings.max_new_tokens,
                            generator,
                        )
                    except (DataError, AdapterOutputError) as error:
                        run.skip(entry.index, f"{name}/{item.qid}", error)
                    else:
                        predictions.append((entry.index, {"benchmark": name, "id": item.qid, **answered}))
                        run.shard.items_used += 1
                    progress.update(1)
        return {
            "predictions": predictions,
            "keep": keep,
            "host": _describe_host(host, attention, pruner, keep, state.settings, plan.device, warmup),
        }

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Official benchmark scores, cost per item, % of the unpruned model, the pruning section."""
        state: _State = plan.state
        predictions = [
            p for _, p in sorted((e for s in shards for e in s.payload["predictions"]), key=_first)
        ]
        host = shards[0].payload["host"]
        metrics, info, not_applicable = _scores(state, predictions)
        cost, missing = _cost(predictions, shards[0].payload["keep"], host)
        metrics.update(cost)
        not_applicable.update(missing)
        if "unpruned" in plan.results:
            baseline = plan.results["unpruned"]
            _check_same_attention(host["attention_implementation"], baseline.record)
            metrics.update(_relative(metrics, baseline.metrics))
        section = {**host, "predictions": predictions}
        return Measurement(
            metrics=metrics, not_applicable=not_applicable, extra={"pruning": section}, metric_info=info
        )


@dataclasses.dataclass
class _State:
    """What ``plan`` resolved: the suite, its settings, the VLM and the items per benchmark."""

    suite: Any
    settings: PruneSettings
    vlm: str
    items: dict[str, list[Item]]


def _first(entry: tuple[int, Any]) -> int:
    return entry[0]


def _baseline_spec(pruner: Pruner) -> str:
    """The unpruned model on the pruner's VLM with the pruner's attention implementation per tower."""
    args = [] if pruner.vlm is None else [f"vlm={pruner.vlm}"]
    args += [f"{tower}_attention={impl}" for tower, impl in attention_for(pruner).items() if impl != "sdpa"]
    return "none:" + ",".join(args) if args else "none"


def _check_same_attention(attention: dict[str, str], baseline: dict[str, Any]) -> None:
    """Scores are relative only to an unpruned run with the same attention implementation."""
    found = baseline.get("pruning", {}).get("attention_implementation")
    if found != attention:
        raise ConfigError(
            f"the unpruned baseline {baseline.get('record_id', '?')!r} ran attention {found}, this run "
            f"{attention}: % of unpruned needs the same attention implementation in both runs"
        )


def _check_metrics(suite: Any, settings: PruneSettings) -> None:
    """Every metric the suite lists is a benchmark score of a benchmark the settings run."""
    for config in suite.metrics:
        cls = METRICS.get(config.name)
        if not issubclass(cls, BenchmarkScore) or cls.key not in settings.benchmarks:
            raise ConfigError(
                f"suite {suite.name!r}: metric {config.name!r} is not the score of one of the benchmarks "
                f"in settings.benchmarks {list(settings.benchmarks)}"
            )


def _load_items(root: Path, settings: PruneSettings, limit: int | None) -> dict[str, list[Item]]:
    items = {}
    for name in settings.benchmarks:
        found = read_benchmark(name, root, settings.mmbench_circular)
        if found is not None:
            items[name] = found[:limit] if limit is not None else found
    if not items:
        raise DataError(f"--data {root}: none of the benchmark directories {list(settings.benchmarks)} exist")
    return items


def _warm_up(run: RunContext, host: LlavaHost, pruner: Pruner, keep: int, items: list[Item]) -> int:
    """One untimed prefill and decode step on the first usable item before timing; runs made (0 or 1)."""
    for item in items:
        try:
            pixels = host.codec.pixels(item.image())
            generator = torch.Generator().manual_seed(run.options.seed)
            run.call_model("warm-up", [item.qid], host.warm_up, pixels, item.prompt, pruner, keep, generator)
        except (DataError, AdapterOutputError):  # that item is counted when it is answered
            continue
        return 1
    return 0


@dataclasses.dataclass(frozen=True)
class _Pixels:
    """Per ``(benchmark, index, item)``, in a loader worker: the item's image as the VLM's pixels."""

    codec: Any

    def __call__(self, entry: tuple[str, int, Item]) -> torch.Tensor:
        """``codec.pixels(item.image())``; a ``DataError`` names the image."""
        return self.codec.pixels(entry[2].image())


def _answer(
    host: LlavaHost,
    pruner: Pruner,
    keep: int,
    pixels: torch.Tensor,
    item: Item,
    max_new_tokens: int,
    generator: torch.Generator,
) -> dict[str, Any]:
    """The greedy answer to one item (its prepared ``pixels``) with the pruner applied, and its cost."""
    with cost.PeakMemory(host.device) as memory:
        answer = host.generate(pixels, item.prompt, pruner, keep, max_new_tokens, generator)
    flops = cost.prefill_flops(host.model.config, answer.sequence_per_layer)
    return {
        "prediction": answer.text,
        "prefill_flops": flops.total,
        "prefill_flops_paper": cost.prefill_flops_paper(host.model.config, answer.sequence_per_layer),
        "prefill_seconds": answer.prefill_seconds,
        "decode_seconds": answer.decode_seconds,
        "visual_tokens_per_layer": answer.visual_tokens_per_layer,
        "kv_cache_bytes": cost.kv_cache_bytes(host.model.config, answer.sequence_per_layer, host.model.dtype),
        "peak_memory_bytes": memory.peak_bytes,
    }


def _describe_host(
    host: LlavaHost,
    attention: Any,
    pruner: Pruner,
    keep: int,
    settings: PruneSettings,
    device: torch.device,
    warmup: int,
) -> dict[str, Any]:
    """The record's ``pruning`` section (without the predictions): host, warm-up, budget, schedule, groups."""
    return {
        "vlm": host.name,
        "random_weights": host.random_weights,
        "attention_implementation": attention,
        "warmup": warmup,
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
    }


def _scores(
    state: _State, predictions: list[dict[str, Any]]
) -> tuple[dict[str, float], dict[str, dict[str, Any]], dict[str, str]]:
    """The suite's benchmark scores from the answers, their metric info, and what had no data."""
    metrics = SuiteMetrics(state.suite, {})
    not_applicable: dict[str, str] = {}
    for key, _, metric in metrics:
        name = type(metric).key
        if name not in state.items:
            not_applicable[key] = "no data for this benchmark under --data"
            continue
        answered = {p["id"]: p["prediction"] for p in predictions if p["benchmark"] == name}
        scored = [item for item in state.items[name] if item.qid in answered]
        metric.update(scored, [answered[item.qid] for item in scored])
    values, info = metrics.compute(not_applicable)
    return values, info, not_applicable


def _cost(
    predictions: list[dict[str, Any]], keep: int, host: dict[str, Any]
) -> tuple[dict[str, float], dict[str, str]]:
    """Token counts and mean cost per answered item; what could not be measured and why."""
    decode = [s for p in predictions for s in p["decode_seconds"]]
    layers = [count for p in predictions for count in p["visual_tokens_per_layer"]]
    metrics = {
        "tokens_kept": float(keep),
        "tokens_retained_pct": 100.0 * keep / host["visual_tokens"],
        "avg_visual_tokens": sum(layers) / len(layers),
        "prefill_gflops": sum(p["prefill_flops"] for p in predictions) / len(predictions) / 1e9,
        "prefill_tflops_paper": sum(p["prefill_flops_paper"] for p in predictions) / len(predictions) / 1e12,
        "prefill_ms": 1e3 * sum(p["prefill_seconds"] for p in predictions) / len(predictions),
        "kv_cache_mb": sum(p["kv_cache_bytes"] for p in predictions) / len(predictions) / 2**20,
    }
    if decode:
        metrics["decode_ms_per_token"] = 1e3 * sum(decode) / len(decode)
    peaks = [p["peak_memory_bytes"] for p in predictions if p["peak_memory_bytes"] is not None]
    if peaks:
        metrics["peak_memory_mb"] = max(peaks) / 2**20
        return metrics, {}
    device = torch.device(host["device"]).type
    return metrics, {"peak_memory_mb": f"no allocator peak statistics on {device}; see kv_cache_mb"}


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
