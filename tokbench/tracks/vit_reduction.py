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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tokbench.adapters.base import Pruner, resolve_budget
from tokbench.adapters.registry import build_model
from tokbench.data.base import ImageItem
from tokbench.errors import ConfigError
from tokbench.flops import measured_flops
from tokbench.semantic.vit_reduction import check_visual, encode_image_reduced, num_patches
from tokbench.suites import SuiteConfig
from tokbench.tensors import quantize_uint8
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest
from tokbench.tracks.checks import batch_labels
from tokbench.tracks.images import LoadPreprocessed, SuiteImages, suite_images
from tokbench.tracks.loading import Loaded
from tokbench.tracks.scoring import SuiteMetrics, build_judges, metric_versions, resolve_device

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


@dataclass
class _State:
    """What ``plan`` resolved for ``measure`` and ``merge``."""

    suite: SuiteConfig
    settings: VitReductionSettings
    images: SuiteImages
    judges: dict[str, Any]
    injected: dict[str, Any]
    pruner: Pruner
    keep: int
    patches: int


class VitReductionTrack(Track):
    """A pre-LLM pruner inside CLIP's ViT at one budget: embedding fidelity, zero-shot accuracy, cost."""

    name = "vit-reduction"
    kinds = ("pruner",)

    def plan(self, request: TrackRequest) -> Plan:
        """Settings, pruner, dataset, CLIP judge (checked to be a ViT deep enough), budget, protocol."""
        suite, options = request.suite, request.options
        settings = VitReductionSettings.from_suite(suite)
        built = build_model(request.model)
        pruner = built.adapter
        if not isinstance(pruner, Pruner) or pruner.stage != "pre-llm":
            kind = "an intra-LLM pruner" if isinstance(pruner, Pruner) else "a " + pruner.kind
            raise ConfigError(
                f"suite {suite.name!r} evaluates pre-LLM pruners (random, cls-attn, tome, ...); "
                f"{built.spec!r} is {kind}"
            )
        images = suite_images(request)
        device = resolve_device(options.device)
        judges = build_judges(suite, device)
        visual = getattr(getattr(judges[settings.judge], "model", None), "visual", None)
        check_visual(visual)
        if not settings.layer < len(visual.transformer.resblocks):
            raise ConfigError(
                f"suite {suite.name!r}: settings.layer={settings.layer} must be below the ViT's "
                f"{len(visual.transformer.resblocks)} blocks"
            )
        patches = num_patches(visual)
        keep = resolve_budget(pruner.budget, patches)
        protocol = {
            "suite": suite.to_dict(),
            "dataset": images.describe(),
            "preprocess": images.preprocess.describe(),
            "judges": {alias: j.describe() for alias, j in judges.items()},
            "metric_versions": metric_versions(suite),
            "reduction": {"layer": settings.layer, "patches": patches, "keep": keep},
        }
        injected = {"class_names": images.dataset.class_names()}
        state = _State(suite, settings, images, judges, injected, pruner, keep, patches)
        return Plan(
            model=built, protocol=protocol, device=device, items_requested=len(images.items), state=state
        )

    def measure(self, plan: Plan, run: RunContext) -> dict[str, Any]:
        """Full and reduced embeddings of this process's images; metric states, FLOPs, lengths."""
        state: _State = plan.state
        measure = _Measure(state, run)
        shared = run.share(state.images.items)
        with run.progress(len(shared), f"{state.suite.name} · {plan.model.spec}") as progress:
            for batch in run.load(shared, LoadPreprocessed(state.images.preprocess)):
                measure.batch(batch)
                progress.update(len(batch))
        return {
            "metric_states": measure.metrics.state_dicts(),
            "not_applicable": measure.not_applicable,
            "flops": measure.flops,
            "lengths": measure.lengths,
        }

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Merged metrics, tokens kept, FLOPs and seconds per image, the ``vit_reduction`` section."""
        state: _State = plan.state
        payloads = [shard.payload for shard in shards if shard.payload["lengths"]]
        metrics = SuiteMetrics(state.suite, state.judges, state.injected).merged(
            [shard.payload["metric_states"] for shard in shards]
        )
        not_applicable = {k: v for shard in shards for k, v in shard.payload["not_applicable"].items()}
        values, info = metrics.compute(not_applicable)
        used = sum(shard.items_used for shard in shards)
        flops = payloads[0]["flops"]
        values.update(
            {
                "tokens_kept": float(state.keep),
                "tokens_total": float(state.patches),
                "encoder_gflops": flops["reduced"] / 1e9,
                "encoder_gflops_full": flops["full"] / 1e9,
                "flops_ratio": flops["reduced"] / flops["full"],
                "seconds_per_image": sum(s.seconds["reduced_seconds"] for s in shards) / used,
                "seconds_per_image_full": sum(s.seconds["full_seconds"] for s in shards) / used,
            }
        )
        extra = {
            "vit_reduction": {
                "pruner": plan.model.name,
                "layer": state.settings.layer,
                "patches": state.patches,
                "keep": state.keep,
                "sequence_lengths": payloads[0]["lengths"],
                "flops_counter": "torch.utils.flop_counter (multiply-add = 2)",
            }
        }
        return Measurement(metrics=values, not_applicable=not_applicable, extra=extra, metric_info=info)


class _Measure:
    """One process's batch loop: full and reduced embeddings, metric updates, FLOPs."""

    def __init__(self, state: _State, run: RunContext) -> None:
        self.state, self.run = state, run
        self.judge = state.judges[state.settings.judge]
        self.visual = self.judge.model.visual
        self.metrics = SuiteMetrics(state.suite, state.judges, state.injected)
        self.generator = torch.Generator().manual_seed(run.options.seed)  # CPU: the rules draw on the CPU
        self.not_applicable: dict[str, str] = {}
        self.lengths: list[int] = []
        self.flops = {"full": 0, "reduced": 0}

    def batch(self, batch: Sequence[Loaded[ImageItem, torch.Tensor]]) -> None:
        """Count what did not load (``LoadPreprocessed``), then score the rest (item by item when the
        pruner raises on the batch)."""
        loaded = [(entry.index, entry.item, entry.value) for entry in self.run.usable(batch)]
        if loaded:
            self.run.attempt(
                loaded, self._score, lambda entry, error: self.run.skip(entry[0], entry[1].id, error)
            )

    def _score(self, entries: Sequence[tuple[int, ImageItem, torch.Tensor]]) -> None:
        """Embed with all tokens and with the pruner (a model call), update the metrics."""
        ids = [entry[1].id for entry in entries]
        pixels = self.judge.prepare(quantize_uint8(torch.stack([entry[2] for entry in entries])))
        if not self.lengths:  # the first batch: count FLOPs (this also warms up before any timing)
            self._count_flops(pixels[:1], ids[:1])
        state = self.state
        with self.run.timed("full_seconds"):
            full = encode_image_reduced(self.visual, pixels)
        with self.run.timed("reduced_seconds"):
            reduced = self.run.call_model(
                "reduce",
                ids,
                encode_image_reduced,
                self.visual,
                pixels,
                state.pruner,
                state.keep,
                state.settings.layer,
                self.generator,
            )
        self.lengths = reduced[1]
        fields = {
            "real_features": full[0].float(),
            "fake_features": reduced[0].float(),
            "labels": batch_labels([entry[:2] for entry in entries]),
        }
        for key, _, metric in self.metrics:
            missing = [name for name in metric.inputs if fields.get(name) is None]
            if missing:
                self.not_applicable[key] = (
                    "the dataset has no class labels (use classfolder:PATH)"
                    if missing == ["labels"]
                    else f"no {', '.join(missing)} in the ViT reduction track"
                )
                continue
            metric.update(*(fields[name] for name in metric.inputs))
        self.run.shard.items_used += len(entries)

    def _count_flops(self, pixel: torch.Tensor, ids: list[str]) -> None:
        """FLOPs of one image, full and reduced (a fresh generator: the run's draws stay unchanged)."""
        state = self.state
        generator = torch.Generator().manual_seed(self.run.options.seed)
        self.flops["full"] = measured_flops(lambda: encode_image_reduced(self.visual, pixel))
        self.flops["reduced"] = measured_flops(
            lambda: self.run.call_model(
                "reduce",
                ids,
                encode_image_reduced,
                self.visual,
                pixel,
                state.pruner,
                state.keep,
                state.settings.layer,
                generator,
            )
        )
