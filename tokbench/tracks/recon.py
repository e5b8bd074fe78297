"""The ``recon`` track: dataset → preprocessing → batches → tokenizer → checks → metric states.

Every image is preprocessed, encoded and decoded; the uint8-quantised reconstruction is compared
with the uint8 preprocessed original by the suite's metrics, the judges (Inception, LPIPS, CLIP) run
once per batch and stream, and the originals' judge features are cached on disk. An unusable item
(unreadable image, bad model output for that image) is counted with its reason under ``skip``.

Settings: ``perturbation: {alpha, beta, delta, seed[, rule]}`` (pFID, ``tokbench.perturb``) runs the same
flow with the token indices perturbed before decoding; continuous tokenizers are not applicable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tokbench.adapters.base import Tokenizer
from tokbench.adapters.registry import BuiltModel, build_model
from tokbench.data.base import ImageItem, Preprocess
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.features import FeatureCache, JudgeFeatures
from tokbench.hashing import file_sha256
from tokbench.judges.base import Judge
from tokbench.models.files import FileReconstructions, item_stem, save_image
from tokbench.suites import SuiteConfig
from tokbench.tensors import quantize_uint8
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest, check_adapter
from tokbench.tracks.checks import batch_labels, check_bits, check_encoded, check_images, short_ids
from tokbench.tracks.chunks import Chunks, chunk_items
from tokbench.tracks.images import SuiteImages, suite_images
from tokbench.tracks.loading import Loaded
from tokbench.tracks.scoring import (
    SuiteMetrics,
    build_judges,
    feature_judges,
    metric_versions,
    resolve_device,
)

QUANTIZATION = "uint8-round-half-even"
SETTINGS = ("perturbation",)
#: Keys of ``settings.perturbation`` → whether required (``rule`` defaults in ``CodebookPerturbation``).
PERTURBATION_KEYS = {"alpha": True, "beta": True, "delta": True, "seed": True, "rule": False}


@dataclass
class _State:
    """What ``plan`` resolved for ``measure`` and ``merge``."""

    suite: SuiteConfig
    tokenizer: Tokenizer
    images: SuiteImages
    judges: dict[str, Judge]
    features: JudgeFeatures
    injected: dict[str, Any]
    #: Where each uint8 reconstruction is also written (``--save-reconstructions``), or None.
    save_to: Path | None = None


@dataclass
class _Payload:
    """One process's mergeable result: metric states, metrics it could not update and token counts."""

    metric_states: dict[str, dict[str, Any]]
    not_applicable: dict[str, str] = field(default_factory=dict)
    #: Sum of ``Encoded.num_tokens`` over the images whose batch reported it, and their count.
    token_sum: int = 0
    token_images: int = 0


class ReconTrack(Track):
    """Reconstruction fidelity (and pFID with a ``perturbation`` setting) of tokenizers."""

    name = "recon"
    kinds = ("tokenizer",)
    saves_reconstructions = True

    def plan(self, request: TrackRequest) -> Plan:
        """Model (wrapped for pFID), dataset, preprocessing, judges, feature caches and protocol."""
        suite, options = request.suite, request.options
        if request.num_samples is not None or request.work_dir is not None or request.save_samples:
            raise ConfigError(
                f"num_samples, work_dir and save_samples apply to generator suites, not to {suite.name!r}"
            )
        perturbation = _perturbation(suite)
        built = build_model(request.model)
        check_adapter(built, Tokenizer, suite)
        if perturbation is not None and isinstance(built.adapter, FileReconstructions):
            raise ConfigError(
                f"suite {suite.name!r} perturbs token indices inside the tokenizer before decoding; "
                f"{built.spec} holds reconstructions made elsewhere, so it cannot be applied (run pFID "
                "with the tokenizer itself)"
            )
        tokenizer = _perturbed(built, perturbation)
        images = suite_images(request)
        device = resolve_device(options.device)
        judges = build_judges(suite, device)
        protocol = {
            "suite": suite.to_dict(),
            "dataset": images.describe(),
            "preprocess": images.preprocess.describe(),
            "quantization": QUANTIZATION,
            "judges": {alias: judge.describe() for alias, judge in judges.items()},
            "metric_versions": metric_versions(suite),
        }
        if tokenizer is not built.adapter:
            protocol["perturbation"] = tokenizer.describe()
        statistics = None
        if request.reference is not None:
            from tokbench.stats_io import load_statistics

            statistics = load_statistics(Path(request.reference))
            reference = Path(request.reference)
            protocol["reference"] = {"name": reference.name, "sha256": file_sha256(reference)}
        featurising = feature_judges(suite, judges)
        caches = _feature_caches(featurising, protocol, device.type) if request.cache_features else {}
        state = _State(
            suite=suite,
            tokenizer=tokenizer,
            images=images,
            judges=judges,
            features=JudgeFeatures(featurising, caches),
            # class names of a labelled dataset (classfolder:PATH) for metrics that take them (zero-shot)
            injected={"reference": statistics, "class_names": images.dataset.class_names()},
            save_to=request.save_reconstructions,
        )
        return Plan(
            model=built, protocol=protocol, device=device, items_requested=len(images.items), state=state
        )

    def measure(self, plan: Plan, run: RunContext) -> _Payload:
        """Reconstruct and score this process's images, batch by batch."""
        state: _State = plan.state
        work = _Reconstruction(plan, run, SuiteMetrics(state.suite, state.judges, state.injected))
        indexed = run.share(state.images.items)
        state.tokenizer.to(plan.device)
        if isinstance(state.tokenizer, FileReconstructions) and run.distributed.is_main:
            _count_extra_files(state.tokenizer, state.images, run)
        files = state.tokenizer if isinstance(state.tokenizer, FileReconstructions) else None
        with run.progress(len(indexed), f"{state.suite.name} · {plan.model.spec}") as progress:
            for batch in run.load(indexed, _Prepare(state.images.preprocess, files)):
                work.batch(batch)
                progress.update(len(batch))
                progress.set_postfix(skipped=len(run.shard.skipped), refresh=False)
        work.finish()
        if run.distributed.world_size == 1:
            state.features.save()
        return work.payload()

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Merge the metric states exactly, compute them; per-image seconds and token counts."""
        state: _State = plan.state
        payloads: list[_Payload] = [shard.payload for shard in shards]
        metrics = SuiteMetrics(state.suite, state.judges, state.injected).merged(
            [p.metric_states for p in payloads]
        )
        not_applicable = {k: v for p in payloads for k, v in p.not_applicable.items()}
        values, info = metrics.compute(not_applicable)
        used = sum(shard.items_used for shard in shards)
        files = state.tokenizer if isinstance(state.tokenizer, FileReconstructions) else None
        for phase in ("encode", "decode") if files is None else ():
            values[f"{phase}_seconds_per_image"] = sum(s.seconds[f"{phase}_seconds"] for s in shards) / used
        token_images = sum(p.token_images for p in payloads)
        if token_images:  # the model's token count, so rate curves can use tokens as well as bits
            values["num_tokens"] = sum(p.token_sum for p in payloads) / token_images
        extra = {"outputs": files.describe()} if files is not None else {}
        return Measurement(metrics=values, not_applicable=not_applicable, metric_info=info, extra=extra)


class _Reconstruction:
    """One process's batch loop: load, reconstruct (retrying item by item), check, update metrics."""

    def __init__(self, plan: Plan, run: RunContext, metrics: SuiteMetrics) -> None:
        self.state: _State = plan.state
        self.spec = plan.model.spec
        self.run = run
        self.device = plan.device
        self.metrics = metrics
        self.not_applicable: dict[str, str] = {}
        self.token_sum = 0
        self.token_images = 0
        #: Reconstructions read from files (``reconstructions:DIR``) by item id, until scored.
        self.read: dict[str, torch.Tensor] = {}
        #: Reconstructed batches queued for the judges and metrics (made at the first batch's size).
        self.chunks: Chunks | None = None

    def payload(self) -> _Payload:
        """The mergeable result of this process."""
        return _Payload(self.metrics.state_dicts(), self.not_applicable, self.token_sum, self.token_images)

    def batch(self, batch: Sequence[Loaded[ImageItem, tuple[torch.Tensor, torch.Tensor | None]]]) -> None:
        """Count the items that did not load (decoded and preprocessed by ``_Prepare``), then
        reconstruct and score the rest."""
        loaded = []
        for entry in self.run.usable(batch):
            image, read = entry.value
            if read is not None:
                self.read[entry.item.id] = read
            loaded.append((entry.index, entry.item, image))
        if not loaded:
            return
        shapes = {tuple(entry[2].shape) for entry in loaded}
        if len(shapes) > 1:
            raise ConfigError(
                f"preprocessing {self.state.images.preprocess.name!r} produced images of several sizes "
                f"{sorted(shapes)}; a suite needs one size per batch"
            )
        self.run.attempt(
            loaded, self._score, lambda entry, error: self.run.skip(entry[0], entry[1].id, error)
        )
        self.read.clear()

    def _score(self, entries: Sequence[tuple[int, ImageItem, torch.Tensor]]) -> None:
        images = self.run.to_device([entry[2] for entry in entries])
        ids = [entry[1].id for entry in entries]
        reconstructions, bits = self._reconstruct(images, ids)
        self._update_metrics(ids, images, reconstructions, bits, batch_labels([e[:2] for e in entries]))

    def _reconstruct(self, images: torch.Tensor, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokenizer = self.state.tokenizer
        if isinstance(tokenizer, FileReconstructions):
            return self._read(tokenizer, ids)
        started = self._clock()
        returned = self.run.call_model("encode", ids, tokenizer.encode, images.clone())
        encoded_at = self._clock()
        encoded = check_encoded(returned, self.spec, ids)
        reconstructions = self.run.call_model("decode", ids, tokenizer.decode, encoded)
        decoded_at = self._clock()
        check_images(reconstructions, images.shape, self.spec, ids)
        bits = check_bits(encoded.bits, len(ids), self.spec, ids)
        if encoded.num_tokens is not None:
            count = encoded.num_tokens
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise AdapterOutputError(
                    f"model {self.spec}: Encoded.num_tokens must be an int >= 0 or None, got "
                    f"{encoded.num_tokens!r} (items {short_ids(ids)})"
                )
            self.token_sum += encoded.num_tokens * len(ids)
            self.token_images += len(ids)
        self.run.shard.seconds["encode_seconds"] += encoded_at - started
        self.run.shard.seconds["decode_seconds"] += decoded_at - encoded_at
        return reconstructions, bits

    def _read(self, files: FileReconstructions, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The files read for ``ids`` (as float32 in [0, 1]) and the sidecar's bits, if any."""
        reconstructions = torch.stack([self.read[i] for i in ids]).to(self.device).float().div(255.0)
        bits = [files.bits(i) for i in ids]
        if files.rate is not None and files.rate["num_tokens"] is not None:
            self.token_sum += files.rate["num_tokens"] * len(ids)
            self.token_images += len(ids)
        return reconstructions, None if None in bits else torch.tensor(bits, dtype=torch.float64)

    def _clock(self) -> float:
        self.run.synchronize()
        return time.perf_counter()

    def _update_metrics(
        self,
        ids: list[str],
        images: torch.Tensor,
        reconstructions: torch.Tensor,
        bits: torch.Tensor | None,
        labels: torch.Tensor | None,
    ) -> None:
        """Queue the batch's uint8 pairs; judges and metrics see them in fixed chunks (``chunks``)."""
        if self.chunks is None or self.chunks.shape != tuple(images.shape[1:]):
            self.finish()  # a new image size (batches of one image at native sizes) starts a new queue
            self.chunks = Chunks(chunk_items(*images.shape[2:]), self._score_chunk, tuple(images.shape[1:]))
        reconstructed = quantize_uint8(reconstructions.to(self.device))
        if self.state.save_to is not None:
            for item_id, image in zip(ids, reconstructed, strict=True):
                save_image(self.state.save_to, item_id, image)
        batch: dict[str, Any] = {
            "ids": ids,
            "originals": quantize_uint8(images),
            "reconstructions": reconstructed,
            "bits": bits,
            "labels": labels,
        }
        self.chunks.add(batch, len(ids))
        self.run.shard.items_used += images.shape[0]

    def finish(self) -> None:
        """Score the last, shorter chunk."""
        if self.chunks is not None:
            self.chunks.flush()

    def _score_chunk(self, chunk: dict[str, Any]) -> None:
        """Judge features of a chunk and every metric's update on it."""
        ids = chunk.pop("ids")
        judged = self.state.features.batch_fields(ids, chunk["originals"], chunk["reconstructions"])
        for key, config, metric in self.metrics:
            fields = {**chunk, **judged.get(config.judge or "", {})}
            missing = [name for name in metric.inputs if fields.get(name) is None]
            if missing == ["labels"]:
                self.not_applicable[key] = (
                    f"dataset {self.state.images.dataset.name!r} has no class labels (use a labelled dataset "
                    "such as classfolder:PATH)"
                )
                continue
            if missing:
                self.not_applicable[key] = f"model {self.spec} provides no {', '.join(missing)}"
                continue
            metric.update(*(fields[name] for name in metric.inputs))


@dataclass(frozen=True)
class _Prepare:
    """Per item, in a loader worker: the preprocessed image and, for ``reconstructions:DIR``, the
    file made elsewhere at the item's path and the image's size (uint8), else None."""

    preprocess: Preprocess
    files: FileReconstructions | None

    def __call__(self, item: ImageItem) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pair; a ``DataError`` names the item."""
        image = self.preprocess(item.load()).image
        if self.files is None:
            return image, None
        return image, self.files.read(item_stem(item.id), item.id, tuple(image.shape[1:]))


def _perturbation(suite: SuiteConfig) -> dict[str, Any] | None:
    """``settings.perturbation`` (the required keys and any optional ones, validated by
    ``CodebookPerturbation``), or None."""
    unknown = sorted(set(suite.settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"suite {suite.name!r}: unknown setting(s) {unknown}; the recon track takes {SETTINGS}"
        )
    entry = suite.settings.get("perturbation")
    if entry is None:
        return None
    required = [key for key, needed in PERTURBATION_KEYS.items() if needed]
    optional = [key for key, needed in PERTURBATION_KEYS.items() if not needed]
    if not isinstance(entry, dict) or not set(required) <= set(entry) <= set(PERTURBATION_KEYS):
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ConfigError(
            f"suite {suite.name!r}: settings.perturbation must be a mapping with the keys "
            f"{', '.join(required)} and optionally {', '.join(optional)}; got {got}"
        )
    return dict(entry)


def _perturbed(built: BuiltModel, perturbation: dict[str, Any] | None) -> Tokenizer:
    """The model's tokenizer, or with a perturbation (pFID) the same tokenizer wrapped in
    ``PerturbedTokenizer`` (a continuous tokenizer raises "not applicable: continuous tokenizer")."""
    if perturbation is None:
        return built.adapter
    from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer

    return PerturbedTokenizer(built.adapter, CodebookPerturbation(**perturbation))


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


def _count_extra_files(files: FileReconstructions, images: SuiteImages, run: RunContext) -> None:
    """Files under the reconstructions folder that belong to no item of the dataset: each counted
    with its reason (after the items, in the skipped list), or an error under ``--on-error fail``."""
    expected = {item_stem(item.id) for item in images.dataset.items()}
    for position, stem in enumerate(sorted(files.stems() - expected), start=len(images.items)):
        error = DataError(f"{stem}.*: matches no item of dataset {images.spec!r}")
        run.skip(position, f"extra file {stem}", error)
