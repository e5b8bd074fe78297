"""The ``video-recon`` track: video dataset → clip sampler → per-frame preprocessing → video tokenizer.

Each clip (``settings.clips``: a ``ClipSampler``) is decoded, every frame preprocessed by the suite's
image preprocessing, then encoded and decoded by a ``VideoTokenizer``; the uint8-quantised
reconstruction is compared with the uint8 preprocessed original by the suite's video metrics (frame
metrics averaged over frames then clips, rate per frame, temporal consistency) and FVD on the I3D
judge's logits of the clips' first ``settings.fvd_frames`` frames (16, as FVD defines it). Only one
batch of clips is held at a time. A clip length the tokenizer does not accept, or one too short for
the I3D, is refused before anything runs; an unusable clip (bad file, bad model output for that clip)
is counted with its reason under ``skip``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tokbench.adapters.base import VideoTokenizer
from tokbench.adapters.registry import build_model
from tokbench.data.base import Preprocess
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.data.video import ClipItem, ClipSampler, VideoDataset
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.features import FeatureCache, JudgeFeatures
from tokbench.judges.base import Judge
from tokbench.models.video_files import VideoFileReconstructions, save_clip
from tokbench.suites import SuiteConfig
from tokbench.tensors import quantize_uint8
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest, check_adapter
from tokbench.tracks.checks import check_bits, check_encoded, check_images, short_ids
from tokbench.tracks.scoring import (
    SuiteMetrics,
    build_judges,
    feature_judges,
    metric_versions,
    resolve_device,
)

QUANTIZATION = "uint8-round-half-even"
SETTINGS = ("clips", "fvd_frames")
#: Frames of each clip the FVD judge sees (the FVD reference's clip length).
FVD_FRAMES = 16


@dataclass
class _State:
    """What ``plan`` resolved for ``measure`` and ``merge``."""

    suite: SuiteConfig
    tokenizer: VideoTokenizer
    dataset: VideoDataset
    sampler: ClipSampler
    preprocess: Preprocess
    items: list[ClipItem]
    judges: dict[str, Judge]
    features: JudgeFeatures
    fvd_frames: int
    #: Where each uint8 reconstruction is also written (``--save-reconstructions``), or None.
    save_to: Path | None = None


@dataclass
class _Payload:
    """One process's mergeable result: metric states, metrics it could not update and token counts."""

    metric_states: dict[str, dict[str, Any]]
    not_applicable: dict[str, str] = field(default_factory=dict)
    token_sum: int = 0
    token_clips: int = 0


class VideoReconTrack(Track):
    """Reconstruction fidelity, rate and rFVD of video tokenizers on clips."""

    name = "video-recon"
    kinds = ("video-tokenizer",)
    saves_reconstructions = True

    def plan(self, request: TrackRequest) -> Plan:
        """Model, dataset, clip sampler, preprocessing, judges, feature caches and protocol."""
        suite, options = request.suite, request.options
        if request.num_samples is not None or request.work_dir is not None or request.save_samples:
            raise ConfigError(
                f"num_samples, work_dir and save_samples apply to generator suites, not to {suite.name!r}"
            )
        unknown = sorted(set(suite.settings) - set(SETTINGS))
        if unknown:
            raise ConfigError(
                f"suite {suite.name!r}: unknown setting(s) {unknown}; the track takes {SETTINGS}"
            )
        sampler = ClipSampler.from_settings(suite.settings.get("clips"), f"suite {suite.name!r}")
        built = build_model(request.model, kind=suite.kind)
        check_adapter(built, VideoTokenizer, suite)
        tokenizer: VideoTokenizer = built.adapter
        if not tokenizer.accepts_frames(sampler.frames):
            raise ConfigError(
                f"model {built.spec} does not accept clips of {sampler.frames} frames (it takes T with "
                f"(T - {tokenizer.frame_offset}) % {tokenizer.frame_multiple} == 0); suite {suite.name!r} "
                "samples that many (settings.clips.frames)"
            )
        spec = request.data or suite.dataset
        if spec is None or suite.preprocess is None:
            raise ConfigError(f"suite {suite.name!r} needs a dataset and a preprocess (or --data)")
        dataset = resolve_dataset(spec)
        if not isinstance(dataset, VideoDataset):
            raise ConfigError(
                f"suite {suite.name!r} evaluates videos; dataset {spec!r} holds images (use videofolder:PATH "
                "or video-embedded)"
            )
        preprocess = build_preprocess(
            suite.preprocess["name"], **{k: v for k, v in suite.preprocess.items() if k != "name"}
        )
        device = resolve_device(options.device)
        judges = build_judges(suite, device)
        featurising = feature_judges(suite, judges)
        fvd_frames = _fvd_frames(suite, sampler, featurising, preprocess)
        items = dataset.clips(sampler)
        items = items[: options.limit] if options.limit is not None else items
        protocol = {
            "suite": suite.to_dict(),
            "dataset": {
                "name": spec,
                "manifest_hash": dataset.manifest_hash(),
                "items_requested": len(items),
            },
            "clips": sampler.describe(),
            "preprocess": preprocess.describe(),
            "quantization": QUANTIZATION,
            "fvd_frames": fvd_frames,
            "judges": {alias: judge.describe() for alias, judge in judges.items()},
            "metric_versions": metric_versions(suite),
        }
        caches = {}
        if request.cache_features:
            shared = {k: protocol[k] for k in ("clips", "preprocess", "quantization", "fvd_frames")}
            shared |= {"dataset_manifest": protocol["dataset"]["manifest_hash"], "device": device.type}
            caches = {
                alias: FeatureCache.for_protocol({**shared, "judge": judge.describe()})
                for alias, judge in featurising.items()
            }
        state = _State(
            suite,
            tokenizer,
            dataset,
            sampler,
            preprocess,
            items,
            judges,
            JudgeFeatures(featurising, caches),
            fvd_frames,
            request.save_reconstructions,
        )
        return Plan(model=built, protocol=protocol, device=device, items_requested=len(items), state=state)

    def measure(self, plan: Plan, run: RunContext) -> _Payload:
        """Reconstruct and score this process's clips, one batch of clips at a time."""
        state: _State = plan.state
        work = _Clips(plan, run, SuiteMetrics(state.suite, state.judges))
        indexed = run.share(state.items)
        state.tokenizer.to(plan.device)
        with run.progress(len(indexed), f"{state.suite.name} · {plan.model.spec}", unit="clip") as progress:
            for start in range(0, len(indexed), run.options.batch_size):
                batch = indexed[start : start + run.options.batch_size]
                work.batch(batch)
                progress.update(len(batch))
                progress.set_postfix(skipped=len(run.shard.skipped), refresh=False)
        if run.distributed.world_size == 1:
            state.features.save()
        return work.payload()

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Merge the metric states exactly, compute them; seconds per frame and tokens per clip."""
        state: _State = plan.state
        payloads: list[_Payload] = [shard.payload for shard in shards]
        metrics = SuiteMetrics(state.suite, state.judges).merged([p.metric_states for p in payloads])
        not_applicable = {k: v for p in payloads for k, v in p.not_applicable.items()}
        values, info = metrics.compute(not_applicable)
        frames = sum(shard.items_used for shard in shards) * state.sampler.frames
        files = state.tokenizer if isinstance(state.tokenizer, VideoFileReconstructions) else None
        for phase in ("encode", "decode") if files is None else ():
            values[f"{phase}_seconds_per_frame"] = sum(s.seconds[f"{phase}_seconds"] for s in shards) / frames
        token_clips = sum(p.token_clips for p in payloads)
        if token_clips:
            values["num_tokens"] = sum(p.token_sum for p in payloads) / token_clips
        extra = {"outputs": files.describe()} if files is not None else {}
        return Measurement(metrics=values, not_applicable=not_applicable, metric_info=info, extra=extra)


class _Clips:
    """One process's batch loop: decode, reconstruct (retrying clip by clip), check, update metrics."""

    def __init__(self, plan: Plan, run: RunContext, metrics: SuiteMetrics) -> None:
        self.state: _State = plan.state
        self.spec = plan.model.spec
        self.run = run
        self.device = plan.device
        self.metrics = metrics
        self.not_applicable: dict[str, str] = {}
        self.token_sum = 0
        self.token_clips = 0
        #: Reconstructions read from files (``reconstructions:DIR``) by clip id, until scored.
        self.read: dict[str, torch.Tensor] = {}

    def payload(self) -> _Payload:
        """The mergeable result of this process."""
        return _Payload(self.metrics.state_dicts(), self.not_applicable, self.token_sum, self.token_clips)

    def batch(self, batch: Sequence[tuple[int, ClipItem]]) -> None:
        """Decode and preprocess a batch of clips, then reconstruct and score what decoded."""
        loaded = []
        files = self.state.tokenizer if isinstance(self.state.tokenizer, VideoFileReconstructions) else None
        for index, item in batch:
            try:
                clip = self._load(item)
                if files is not None:  # made elsewhere: the file of the clip, at the clip's shape
                    self.read[item.id] = files.read(item.id, (clip.shape[0], *clip.shape[2:]))
                loaded.append((index, item, clip))
            except DataError as error:
                self.run.skip(index, item.id, error)
        if not loaded:
            return
        shapes = {tuple(entry[2].shape) for entry in loaded}
        if len(shapes) > 1:
            raise ConfigError(
                f"preprocessing {self.state.preprocess.name!r} produced clips of several sizes "
                f"{sorted(shapes)}; a suite needs one size per batch"
            )
        self.run.attempt(
            loaded, self._score, lambda entry, error: self.run.skip(entry[0], entry[1].id, error)
        )
        self.read.clear()

    def _load(self, item: ClipItem) -> torch.Tensor:
        """The clip as float32 T×3×H×W: every decoded frame through the suite's preprocessing."""
        frames = item.load()
        if len(frames) != self.state.sampler.frames:
            raise DataError(
                f"{item.id}: decoded {len(frames)} frames, the sampler asks {self.state.sampler.frames}"
            )
        return torch.stack([self.state.preprocess(frame).image for frame in frames])

    def _score(self, entries: Sequence[tuple[int, ClipItem, torch.Tensor]]) -> None:
        clips = torch.stack([entry[2] for entry in entries]).to(self.device)
        ids = [entry[1].id for entry in entries]
        reconstructions, bits = self._reconstruct(clips, ids)
        self._update_metrics(ids, clips, reconstructions, bits)

    def _reconstruct(self, clips: torch.Tensor, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokenizer = self.state.tokenizer
        if isinstance(tokenizer, VideoFileReconstructions):
            return torch.stack([self.read[i] for i in ids]).to(self.device).float().div(255.0), None
        started = self._clock()
        returned = self.run.call_model("encode", ids, tokenizer.encode, clips.clone())
        encoded_at = self._clock()
        encoded = check_encoded(returned, self.spec, ids)
        reconstructions = self.run.call_model("decode", ids, tokenizer.decode, encoded)
        decoded_at = self._clock()
        check_images(reconstructions, clips.shape, self.spec, ids)
        bits = check_bits(encoded.bits, len(ids), self.spec, ids)
        if encoded.num_tokens is not None:
            count = encoded.num_tokens
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise AdapterOutputError(
                    f"model {self.spec}: Encoded.num_tokens must be an int >= 0 or None, got {count!r} "
                    f"(clips {short_ids(ids)})"
                )
            self.token_sum += count * len(ids)
            self.token_clips += len(ids)
        self.run.shard.seconds["encode_seconds"] += encoded_at - started
        self.run.shard.seconds["decode_seconds"] += decoded_at - encoded_at
        return reconstructions, bits

    def _clock(self) -> float:
        self.run.synchronize()
        return time.perf_counter()

    def _update_metrics(
        self, ids: list[str], clips: torch.Tensor, reconstructions: torch.Tensor, bits: torch.Tensor | None
    ) -> None:
        originals = quantize_uint8(clips)
        # contiguous: the judges' float32 sums must not depend on the memory layout of the model's
        # output (PyAV codecs return channels-last frames; their saved files read back contiguous)
        reconstructed = quantize_uint8(reconstructions.to(self.device)).contiguous()
        if self.state.save_to is not None:
            for clip_id, clip in zip(ids, reconstructed, strict=True):
                save_clip(self.state.save_to, clip_id, clip)
        batch: dict[str, Any] = {"originals": originals, "reconstructions": reconstructed, "bits": bits}
        count = self.state.fvd_frames
        judged = (
            self.state.features.batch_fields(ids, originals[:, :count], reconstructed[:, :count])
            if count
            else {}
        )
        for key, config, metric in self.metrics:
            fields = {**batch, **judged.get(config.judge or "", {})}
            missing = [name for name in metric.inputs if fields.get(name) is None]
            if missing:
                self.not_applicable[key] = f"model {self.spec} provides no {', '.join(missing)}"
                continue
            metric.update(*(fields[name] for name in metric.inputs))
        self.run.shard.items_used += clips.shape[0]


def _fvd_frames(
    suite: SuiteConfig, sampler: ClipSampler, judges: dict[str, Judge], preprocess: Preprocess
) -> int:
    """Frames of each clip the feature judges see (0 without one), checked against the I3D's domain."""
    count = suite.settings.get("fvd_frames", FVD_FRAMES)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"suite {suite.name!r}: settings.fvd_frames must be an integer >= 1, got {count!r}")
    if not judges:
        return 0
    if count > sampler.frames:
        raise ConfigError(
            f"suite {suite.name!r}: FVD needs the first {count} frames of each clip, but the sampler cuts "
            f"clips of {sampler.frames} frames (settings.clips.frames)"
        )
    from tokbench.judges.i3d import check_clip_shape

    side = getattr(preprocess, "resolution", None)
    for alias, judge in judges.items():
        if side is None or not hasattr(judge, "resize"):
            continue
        try:
            check_clip_shape((count, 3, side, side), judge.resize, clip=f"every {count}-frame clip")
        except DataError as error:
            raise ConfigError(f"suite {suite.name!r}, judge {alias!r}: {error}") from None
    return count
