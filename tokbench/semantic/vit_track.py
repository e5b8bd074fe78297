"""The ``vit-reduction`` track: a pre-LLM pruner inside CLIP's vision transformer, one record per budget.

``tokbench run --model tome --suite vit-reduction --sweep budget=7,13,25,49`` runs the suite's CLIP
judge on every image twice, with all patch tokens (the reference) and with the pruner reducing them to
the budget after block ``layer`` (see ``tokbench.semantic.vit_reduction``). The suite's metrics compare
the two embeddings ("real" = unreduced, "fake" = reduced): ``clip-cosine`` always, ``zero-shot`` on
labelled data (``classfolder:PATH``; its ``zs_top1_reference`` is the unreduced model). Each record also
holds the tokens kept, the image encoder's FLOPs per image (counted by ``torch.utils.flop_counter`` on
the forward that ran, pruner arithmetic included) and the measured seconds per image, reduced and full.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tokbench.adapters.base import Pruner, resolve_budget
from tokbench.adapters.registry import build_model
from tokbench.data.base import ImageItem, Preprocess
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError, DataError
from tokbench.metrics import METRICS
from tokbench.pruning.cost import measured_flops
from tokbench.recording import (
    RunResult,
    build_record,
    claim_record,
    store_result,
)
from tokbench.runner import RunOptions, RunOutcome, batch_labels, build_judges, build_metrics, resolve_device
from tokbench.semantic.vit_reduction import check_visual, encode_image_reduced, num_patches
from tokbench.suites import SuiteConfig
from tokbench.tensors import quantize_uint8
from tokbench.tracks import TrackRequest

SETTINGS = ("judge", "layer")


@dataclass(frozen=True)
class VitReductionSettings:
    """The suite's ``settings:``: the CLIP judge alias and the block after which tokens are reduced."""

    judge: str
    layer: int

    @classmethod
    def from_suite(cls, suite: SuiteConfig) -> VitReductionSettings:
        """Check keys and values; a typo raises naming the suite."""
        settings = suite.settings
        unknown = sorted(set(settings) - set(SETTINGS))
        missing = sorted(set(SETTINGS) - set(settings))
        if unknown or missing:
            raise ConfigError(
                f"suite {suite.name!r}: settings unknown {unknown}, missing {missing}; "
                f"allowed {list(SETTINGS)}"
            )
        layer = settings["layer"]
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 1:
            raise ConfigError(f"suite {suite.name!r}: settings.layer must be an int >= 1, got {layer!r}")
        if settings["judge"] not in suite.judges:
            raise ConfigError(
                f"suite {suite.name!r}: settings.judge {settings['judge']!r} is not one of the suite's "
                f"judges {sorted(suite.judges)}"
            )
        return cls(judge=str(settings["judge"]), layer=layer)


def run(request: TrackRequest) -> RunResult:
    """Evaluate the pruner of ``request.model`` at its budget inside the suite's CLIP ViT."""
    suite, options = request.suite, request.options
    settings = VitReductionSettings.from_suite(suite)
    built = build_model(request.model)
    pruner = built.adapter
    if not isinstance(pruner, Pruner) or pruner.stage != "pre-llm":
        raise ConfigError(
            f"suite {suite.name!r} evaluates pre-LLM pruners (random, cls-attn, tome, ...); "
            f"{built.spec!r} is {'an intra-LLM pruner' if isinstance(pruner, Pruner) else 'a ' + pruner.kind}"
        )
    data = request.data or suite.dataset
    if data is None or suite.preprocess is None:
        raise ConfigError(f"suite {suite.name!r} needs a dataset and a preprocess (or --data)")
    dataset = resolve_dataset(data)
    preprocess = build_preprocess(
        suite.preprocess["name"], **{k: v for k, v in suite.preprocess.items() if k != "name"}
    )
    device = resolve_device(options.device)
    judges = build_judges(suite, device)
    judge = judges[settings.judge]
    visual = getattr(getattr(judge, "model", None), "visual", None)
    check_visual(visual)
    if not settings.layer < len(visual.transformer.resblocks):
        raise ConfigError(
            f"suite {suite.name!r}: settings.layer={settings.layer} must be below the ViT's "
            f"{len(visual.transformer.resblocks)} blocks"
        )
    patches = num_patches(visual)
    keep = resolve_budget(pruner.budget, patches)
    items = dataset.items()[: options.limit] if options.limit is not None else dataset.items()
    protocol = {
        "suite": suite.to_dict(),
        "dataset": {"name": data, "manifest_hash": dataset.manifest_hash(), "items_requested": len(items)},
        "preprocess": preprocess.describe(),
        "judges": {alias: j.describe() for alias, j in judges.items()},
        "metric_versions": {m.name: METRICS.get(m.name).implementation_version for m in suite.metrics},
        "reduction": {"layer": settings.layer, "patches": patches, "keep": keep},
    }
    slot = claim_record(suite.name, protocol, built.spec, request.store, request.force)
    if slot.existing is not None:
        return slot.existing
    digest, record_id, record_store = slot.digest, slot.record_id, slot.store
    measure = _Measure(suite, judges, dataset.class_names(), settings, pruner, keep, options, device)
    outcome = measure.run(items, preprocess)
    record = build_record(
        record_id,
        suite,
        digest,
        protocol,
        built,
        outcome,
        options,
        extra={
            "vit_reduction": {
                "pruner": built.name,
                "layer": settings.layer,
                "patches": patches,
                "keep": keep,
                "sequence_lengths": measure.lengths,
                "flops_counter": "torch.utils.flop_counter (multiply-add = 2)",
            }
        },
    )
    return store_result(record_store, record, request.force)


class _Measure:
    """The batch loop: full and reduced embeddings, metric updates, timings and FLOPs."""

    def __init__(
        self,
        suite: SuiteConfig,
        judges: dict[str, Any],
        class_names: tuple[str, ...] | None,
        settings: VitReductionSettings,
        pruner: Pruner,
        keep: int,
        options: RunOptions,
        device: torch.device,
    ) -> None:
        self.judge = judges[settings.judge]
        self.visual = self.judge.model.visual
        self.metrics = build_metrics(suite, judges, {"class_names": class_names})
        self.pruner, self.keep, self.layer = pruner, keep, settings.layer
        self.options, self.device = options, device
        self.generator = torch.Generator().manual_seed(options.seed)  # CPU: the rules draw on the CPU
        self.skipped: list[dict[str, str]] = []
        self.not_applicable: dict[str, str] = {}
        self.seconds = {"full": 0.0, "reduced": 0.0}
        self.used = 0
        self.lengths: list[int] = []
        self.flops = {"full": 0, "reduced": 0}

    def run(self, items: list[ImageItem], preprocess: Preprocess) -> RunOutcome:
        started = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(items), self.options.batch_size):
                self._batch(items[start : start + self.options.batch_size], preprocess)
        if self.used == 0:
            reasons = "; ".join(s["reason"] for s in self.skipped[:3])
            raise DataError(f"no item of {len(items)} could be evaluated: {reasons}")
        values: dict[str, float] = {}
        for name, metric in self.metrics.items():
            if name not in self.not_applicable:
                values.update(metric.compute())
        values.update(
            {
                "tokens_kept": float(self.keep),
                "tokens_total": float(num_patches(self.visual)),
                "encoder_gflops": self.flops["reduced"] / 1e9,
                "encoder_gflops_full": self.flops["full"] / 1e9,
                "flops_ratio": self.flops["reduced"] / self.flops["full"],
                "seconds_per_image": self.seconds["reduced"] / self.used,
                "seconds_per_image_full": self.seconds["full"] / self.used,
            }
        )
        total = time.perf_counter() - started
        return RunOutcome(
            metrics=values,
            items_requested=len(items),
            items_used=self.used,
            skipped=self.skipped,
            not_applicable=self.not_applicable,
            timings={
                "total_seconds": total,
                "images_per_second": self.used / total if total > 0 else 0.0,
                "processes": 1,
            },
            metric_versions={name: type(m).implementation_version for name, m in self.metrics.items()},
        )

    def _batch(self, batch: Sequence[ImageItem], preprocess: Preprocess) -> None:
        loaded, tensors = [], []
        for item in batch:
            try:
                tensors.append(preprocess(item.load()).image)
            except DataError as error:
                if self.options.on_error == "fail":
                    raise
                self.skipped.append({"item": item.id, "reason": str(error)})
                continue
            loaded.append(item)
        if not loaded:
            return
        pixels = self.judge.prepare(quantize_uint8(torch.stack(tensors)))
        if not self.lengths:  # the first batch: count FLOPs (this also warms up before any timing)
            self._count_flops(pixels[:1])
        full = self._timed("full", lambda: encode_image_reduced(self.visual, pixels))
        reduced = self._timed(
            "reduced",
            lambda: encode_image_reduced(
                self.visual, pixels, self.pruner, self.keep, self.layer, self.generator
            ),
        )
        self.lengths = reduced[1]
        fields = {
            "real_features": full[0].float(),
            "fake_features": reduced[0].float(),
            "labels": batch_labels([(0, item) for item in loaded]),
        }
        for name, metric in self.metrics.items():
            missing = [key for key in metric.inputs if fields.get(key) is None]
            if missing:
                self.not_applicable[name] = (
                    "the dataset has no class labels (use classfolder:PATH)"
                    if missing == ["labels"]
                    else f"no {', '.join(missing)} in the ViT reduction track"
                )
                continue
            metric.update(*(fields[key] for key in metric.inputs))
        self.used += len(loaded)

    def _timed(self, which: str, forward: Any) -> tuple[torch.Tensor, list[int]]:
        self._sync()
        started = time.perf_counter()
        result = forward()
        self._sync()
        self.seconds[which] += time.perf_counter() - started
        return result

    def _count_flops(self, pixel: torch.Tensor) -> None:
        """FLOPs of one image, full and reduced (a fresh generator: the run's draws stay unchanged)."""
        generator = torch.Generator().manual_seed(self.options.seed)
        self.flops["full"] = measured_flops(lambda: encode_image_reduced(self.visual, pixel))
        self.flops["reduced"] = measured_flops(
            lambda: encode_image_reduced(self.visual, pixel, self.pruner, self.keep, self.layer, generator)
        )

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
