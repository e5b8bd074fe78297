"""The ``tokbench-video`` track: TokBench's video protocol (text sets ch3/ds, faces; short sides 256, 480).

For each annotated video and each short side S: decode every frame, resize (short side S, BILINEAR),
pad the long side to a multiple of 32, reconstruct the whole video with the video tokenizer (in chunks
of ``settings.chunk_frames`` frames, each padded by repeating its last frame to a length the tokenizer
accepts, then trimmed), quantise (round half to even), crop and BILINEAR-resize back, then optionally
pass the frames through the official writer (``settings.save``). Text: each annotation entry names a
frame ``...-frame<N>.<ext>``, scored on decoded frame N-1; a crop whose shorter side is <= 1 px is
dropped (as the official loader). Faces: decoded frame i is paired with ``frame_anns[i]``, up to the
shorter of the two. Metrics per S: ``t_acc_<S>_*``, ``t_ned_<S>_*``, ``f_sim_<S>_*`` (small, medium,
large, mean) with the video bucket edges; per-instance rows go to ``<record>.details.jsonl.gz``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokbench.adapters.base import VideoTokenizer
from tokbench.adapters.registry import build_model
from tokbench.data.registry import resolve_dataset
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.judges.face import FaceEmbedder
from tokbench.judges.ocr import TextRecognizer
from tokbench.metrics.text_face import FaceFidelity, TextFidelity, bucket_of, cosine_similarity
from tokbench.suites import SuiteConfig
from tokbench.tensors import quantize_uint8
from tokbench.textface.crops import crop_text
from tokbench.textface.details import details_path, with_resolution, write_details
from tokbench.textface.settings import OFFICIAL_OCR_BATCH, Resolution
from tokbench.textface.video_dataset import AnnotatedVideo, TokbenchVideoDataset
from tokbench.textface.video_frames import (
    accepted_length,
    chunk_bounds,
    frame_geometry,
    pad_with_last,
    process_frame,
    read_video,
    restore_frame,
    writer_round_trip,
)
from tokbench.textface.video_settings import VideoSettings, video_settings_from
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest, check_adapter
from tokbench.tracks.checks import check_encoded, check_images
from tokbench.tracks.scoring import build_judges, metric_versions, resolve_device
from tokbench.tracks.tokbench import _judge_of

GEOMETRY = (
    "short side S, long side int(round(L*S/short)), PIL BILINEAR; black padding of the long side to a "
    "multiple of 32 (pad//2 left/top); restore: crop, PIL BILINEAR to the original size"
)
CHUNKS = (
    "consecutive chunks of chunk_frames frames; each padded by repeating its last frame to the smallest "
    "length the tokenizer accepts, decoded, trimmed to the chunk"
)
QUANTIZATION = {"name": "round-half-even-01", "rule": "uint8(round_half_even(255 * clamp(x, 0, 1)))"}
SAVES = {
    "lossless": "the restored uint8 frames are scored as they are (no video file)",
    "imageio-libx264": (
        "the official writer (imageio-ffmpeg defaults): each frame scaled (bicubic) up to multiples of 16, "
        "libx264 crf 25 yuv420p in mp4 (PyAV, one thread), decoded to RGB; boxes and landmarks applied "
        "to the decoded frames as they are (stretched when scaled)"
    ),
}


@dataclass
class _State:
    suite: SuiteConfig
    settings: VideoSettings
    videos: list[AnnotatedVideo]
    units: list[list[int]]
    ocr: TextRecognizer | None
    face: FaceEmbedder | None
    details: list[dict[str, Any]] | None = None


@dataclass
class _Payload:
    text_states: dict[int, dict[str, Any]]
    face_states: dict[int, dict[str, Any]]
    rows: list[dict[str, Any]]
    errors: Counter[str]


class TokbenchVideoTrack(Track):
    """TokBench-Video text and face fidelity of video tokenizers at short sides 256 and 480."""

    name = "tokbench-video"
    kinds = ("video-tokenizer",)

    def plan(self, request: TrackRequest) -> Plan:
        """Settings, model, annotated videos, judges and the protocol."""
        suite, options = request.suite, request.options
        settings = video_settings_from(suite.settings, suite.name)
        built = build_model(request.model)
        check_adapter(built, VideoTokenizer, suite)
        spec = request.data or suite.dataset
        if spec is None:
            raise ConfigError(f"suite {suite.name!r} needs a dataset: --data tokbench-video:PATH")
        dataset = resolve_dataset(spec)
        if not isinstance(dataset, TokbenchVideoDataset):
            raise ConfigError(
                f"suite {suite.name!r} needs the annotated TokBench video set, {spec!r} is not one"
            )
        device = resolve_device(options.device)
        judges = build_judges(suite, device)
        ocr = _judge_of(suite, judges, TextFidelity, TextRecognizer)
        face = _judge_of(suite, judges, FaceFidelity, FaceEmbedder)
        if settings.ocr_batches == "official" and ocr is not None and not ocr.reads_with_targets:
            raise ConfigError(
                f"suite {suite.name!r}: ocr_batches: official needs a judge that reads with the ground "
                f"truths (doctr-parseq), {ocr.name!r} does not"
            )
        videos = dataset.videos()
        videos = videos[: options.limit] if options.limit is not None else videos
        if settings.ocr_batches == "official":  # a subset's OCR batches span its videos: one unit each
            subsets = list(dict.fromkeys(v.subset for v in videos))
            units = [[i for i, v in enumerate(videos) if v.subset == s] for s in subsets]
        else:
            units = [[i] for i in range(len(videos))]
        protocol = {
            "suite": suite.to_dict(),
            "dataset": {
                "name": spec,
                "manifest_hash": dataset.manifest_hash(),
                "items_requested": len(videos),
            },
            "preprocess": {"geometry": GEOMETRY, "chunks": CHUNKS, "chunk_frames": settings.chunk_frames},
            "quantization": QUANTIZATION,
            "save": {"mode": settings.save, "rule": SAVES[settings.save]},
            "ocr_batches": {
                "mode": settings.ocr_batches,
                "size": OFFICIAL_OCR_BATCH if settings.ocr_batches == "official" else 1,
            },
            "judges": {alias: judge.describe() for alias, judge in judges.items()},
            "metric_versions": metric_versions(suite),
        }
        state = _State(suite, settings, videos, units, ocr, face)
        return Plan(model=built, protocol=protocol, device=device, items_requested=len(videos), state=state)

    def measure(self, plan: Plan, run: RunContext) -> _Payload:
        """Reconstruct and score this process's videos at every short side."""
        state: _State = plan.state
        evaluation = _Evaluation(plan.model.adapter, plan.model.spec, state, plan.device, run)
        shared = [(i, state.videos[i]) for _, unit in run.share(state.units) for i in unit]
        return evaluation.evaluate(shared)

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Bucket metrics per short side from every process's instance records; the summary section."""
        state: _State = plan.state
        payloads: list[_Payload] = [shard.payload for shard in shards]
        metrics: dict[str, float] = {}
        info: dict[str, dict[str, Any]] = {}
        counts: dict[str, dict[str, Any]] = {}
        for resolution in state.settings.resolutions:
            side = resolution.side
            counts[str(side)] = {}
            for name, cls, edges, states, judge in (
                (
                    "text-fidelity",
                    TextFidelity,
                    resolution.text,
                    [p.text_states[side] for p in payloads],
                    state.ocr,
                ),
                (
                    "face-fidelity",
                    FaceFidelity,
                    resolution.face,
                    [p.face_states[side] for p in payloads],
                    state.face,
                ),
            ):
                if judge is None:
                    continue
                metric = cls(edges)
                for metric_state in states:
                    metric.merge_state(metric_state)
                if metric.ratios:
                    values = with_resolution(metric.compute(), side)
                    metrics.update(values)
                    info.update({k: {"metric": name, **asdict(cls.output_info(k))} for k in values})
                    counts[str(side)][name.split("-")[0]] = metric.bucket_counts()
        state.details = [row for p in payloads for row in p.rows]
        errors: Counter[str] = Counter()
        for payload in payloads:
            errors.update(payload.errors)
        summary = {
            "resolutions": [r.side for r in state.settings.resolutions],
            "scored_per_bucket": counts,
            "not_scored": dict(sorted(errors.items())),
            "details": None,
        }
        return Measurement(metrics=metrics, extra={"tokbench_video": summary}, metric_info=info)

    def write_artifacts(
        self, plan: Plan, record: dict[str, Any], record_path: Path | None, force: bool
    ) -> None:
        """The per-instance rows, in ``<record>.details.jsonl.gz`` beside the stored record."""
        rows = plan.state.details
        if record_path is None or rows is None:
            return
        target = details_path(record_path)
        record["tokbench_video"]["details"] = {"file": target.name, "rows": len(rows)}
        if not target.exists() or force:
            write_details(target, rows)


@dataclass
class _Slot:
    """One text instance waiting for the OCR judge."""

    video: AnnotatedVideo
    entry: int
    index: int
    crop: np.ndarray


class _Evaluation:
    """One process's measuring loop."""

    def __init__(
        self, model: VideoTokenizer, spec: str, state: _State, device: torch.device, run: RunContext
    ):
        self.model, self.spec, self.settings, self.device, self.run = model, spec, state.settings, device, run
        self.ocr, self.face = state.ocr, state.face
        self.official = state.settings.ocr_batches == "official"
        self.text = {r.side: TextFidelity(r.text) for r in self.settings.resolutions}
        self.faces = {r.side: FaceFidelity(r.face) for r in self.settings.resolutions}
        self.pending: dict[int, list[_Slot]] = {r.side: [] for r in self.settings.resolutions}
        self.rows: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()

    def evaluate(self, videos: list[tuple[int, AnnotatedVideo]]) -> _Payload:
        """Evaluate ``(position, video)`` pairs in order; return the mergeable result."""
        self.model.to(self.device)
        with self.run.progress(len(videos), f"tokbench-video · {self.spec}", unit="video") as progress:
            for number, (position, video) in enumerate(videos):
                self._video(position, video)
                last_of_subset = number + 1 == len(videos) or videos[number + 1][1].subset != video.subset
                if last_of_subset:
                    for resolution in self.settings.resolutions:
                        self._read(self.pending[resolution.side], resolution)
                        self.pending[resolution.side] = []
                progress.update(1)
        return _Payload(
            text_states={side: m.state_dict() for side, m in self.text.items()},
            face_states={side: m.state_dict() for side, m in self.faces.items()},
            rows=self.rows,
            errors=self.errors,
        )

    def _fail(self, position: int, video: AnnotatedVideo, category: str, reason: str, count: int = 1) -> None:
        if self.run.options.on_error == "fail":
            raise DataError(f"{video.id}: {reason}")
        self.errors[category] += count
        self.rows.append({"video": video.id, "kind": category, "error": reason, "instances": count})
        self.run.shard.skipped.append((position, {"item": video.id, "reason": reason}))

    def _instances(self, video: AnnotatedVideo) -> int:
        texts = sum(len(f.texts) for f in video.text_frames) if self.ocr is not None else 0
        faces = sum(len(f) for f in video.face_frames) if self.face is not None else 0
        return texts + faces

    def _video(self, position: int, video: AnnotatedVideo) -> None:
        for reason in video.bad_entries:
            self._fail(position, video, "text_annotation", reason)
        if not self._instances(video):
            return
        try:
            frames, fps = read_video(video.path, video.id)
        except DataError as error:
            self._fail(position, video, "video", str(error), self._instances(video))
            return
        self.run.shard.items_used += 1
        originals = self._original_faces(video, frames) if self.face is not None else {}
        for resolution in self.settings.resolutions:
            try:
                rebuilt = self._reconstruct(video, frames, fps, resolution.side)
            except (AdapterOutputError, DataError) as error:
                if self.run.options.on_error == "fail":
                    raise
                self._fail(
                    position, video, "model", f"{error} (at {resolution.side})", self._instances(video)
                )
                continue
            if self.ocr is not None:
                self._crop_texts(position, video, rebuilt, resolution)
            if originals:
                self._score_faces(video, rebuilt, resolution, originals)

    def _reconstruct(
        self, video: AnnotatedVideo, frames: list[np.ndarray], fps: Any, side: int
    ) -> list[np.ndarray]:
        """Every frame processed, reconstructed chunk by chunk, restored (and written, if the suite says)."""
        geometry = frame_geometry(*frames[0].shape[:2], side)
        canvases = torch.from_numpy(np.stack([process_frame(f, geometry) for f in frames])).permute(
            0, 3, 1, 2
        )
        restored: list[np.ndarray] = []
        clock = time.perf_counter()
        for start, stop in chunk_bounds(len(frames), self.settings.chunk_frames):
            length = accepted_length(stop - start, self.model.frame_multiple, self.model.frame_offset)
            clip = pad_with_last(canvases[start:stop].float().div(255.0), length)[None].to(self.device)
            ids = [f"{video.id}@{side}[{start}:{stop}]"]
            encoded = check_encoded(
                self.run.call_model("encode", ids, self.model.encode, clip.clone()), self.spec, ids
            )
            output = self.run.call_model("decode", ids, self.model.decode, encoded)
            check_images(output, clip.shape, self.spec, ids)
            levels = quantize_uint8(output[0, : stop - start].cpu()).permute(0, 2, 3, 1).numpy()
            restored += [restore_frame(frame, geometry) for frame in levels]
        self.run.shard.seconds["model_seconds"] += time.perf_counter() - clock
        if self.settings.save == "imageio-libx264":
            restored = writer_round_trip(restored, fps)
            if len(restored) != len(frames):
                raise DataError(f"the written video decodes to {len(restored)} frames, not {len(frames)}")
        return restored

    def _row(self, video, kind, frame, index, side, instance, prediction, score, error) -> dict[str, Any]:
        resolution = next(r for r in self.settings.resolutions if r.side == side)
        edges = resolution.text if kind == "text" else resolution.face
        return {
            "resolution": side,
            "kind": kind,
            "video": video.id,
            "frame": frame,
            "index": index,
            "gt": instance.text if kind == "text" else None,
            "prediction": prediction,
            "ratio": instance.ratio,
            "bucket": bucket_of(instance.ratio, edges) if instance.ratio is not None else None,
            "score": score,
            "error": error,
        }

    def _crop_texts(
        self, position: int, video: AnnotatedVideo, rebuilt: list[np.ndarray], resolution: Resolution
    ) -> None:
        pending = self.pending[resolution.side]
        for entry, annotated in enumerate(video.text_frames):
            if annotated.frame >= len(rebuilt):
                reason = (
                    f"{annotated.entry}: frame {annotated.frame + 1} beyond the video's {len(rebuilt)} frames"
                )
                self._fail(position, video, "text_frame", reason, len(annotated.texts))
                continue
            for index, text in enumerate(annotated.texts):
                if text.error is not None:
                    self._fail(
                        position, video, "text_annotation", f"{annotated.entry} #{index}: {text.error}"
                    )
                    continue
                try:
                    crop = crop_text(rebuilt[annotated.frame], text.geometry)
                except DataError:
                    crop = None
                if crop is None or min(crop.shape[:2]) <= 1:
                    self.errors["text_tiny_crop"] += 1  # the official loader drops these before batching
                    continue
                if not self.official and (missing := self.ocr.unreadable(text.text)):
                    self._fail(
                        position,
                        video,
                        "text_vocabulary",
                        f"{missing!r} outside the {self.ocr.name} vocabulary",
                    )
                    continue
                pending.append(_Slot(video, entry, index, crop))
        if not self.official:
            self._read(pending, resolution)
            pending.clear()
            return
        while len(pending) >= OFFICIAL_OCR_BATCH:
            self._read(pending[:OFFICIAL_OCR_BATCH], resolution)
            del pending[:OFFICIAL_OCR_BATCH]

    def _read(self, slots: list[_Slot], resolution: Resolution) -> None:
        if not slots:
            return
        clock = time.perf_counter()
        targets = [s.video.text_frames[s.entry].texts[s.index].text for s in slots]
        if self.official:
            missing = "".join(dict.fromkeys(c for t in targets for c in self.ocr.unreadable(t)))
            if missing:
                self.errors["text_batch_dropped"] += len(slots)
                return
            predictions = self.ocr.read([s.crop for s in slots], targets)
        else:
            predictions = self.ocr.read([s.crop for s in slots])
        ratios = [s.video.text_frames[s.entry].texts[s.index].ratio for s in slots]
        self.text[resolution.side].update(targets, predictions, ratios)
        for slot, target, prediction in zip(slots, targets, predictions, strict=True):
            instance = slot.video.text_frames[slot.entry].texts[slot.index]
            score = {"acc": float(target == prediction)}
            frame = slot.video.text_frames[slot.entry].frame
            self.rows.append(
                self._row(
                    slot.video, "text", frame, slot.index, resolution.side, instance, prediction, score, None
                )
            )
        self.run.shard.seconds["ocr_seconds"] += time.perf_counter() - clock

    def _original_faces(
        self, video: AnnotatedVideo, frames: list[np.ndarray]
    ) -> dict[tuple[int, int], torch.Tensor]:
        """Embeddings of the original's faces, by (frame, face), for frames paired with ``frame_anns``."""
        embeddings = {}
        for number, (frame, faces) in enumerate(zip(frames, video.face_frames, strict=False)):
            for index, face in enumerate(faces):
                if face.error is not None:
                    self.errors["face_annotation"] += 1
                    continue
                try:
                    embeddings[number, index] = self.face.embed(frame, [np.array(face.landmarks)])
                except DataError:
                    self.errors["face_crop"] += 1
        return embeddings

    def _score_faces(
        self, video: AnnotatedVideo, rebuilt: list[np.ndarray], resolution: Resolution, originals
    ) -> None:
        clock = time.perf_counter()
        for number, index in sorted(originals):
            if number >= len(rebuilt):
                continue
            face = video.face_frames[number][index]
            embedding = self.face.embed(rebuilt[number], [np.array(face.landmarks)])
            self.faces[resolution.side].update(originals[number, index], embedding, [face.ratio])
            value = float(cosine_similarity(originals[number, index].double(), embedding.double())[0])
            self.rows.append(
                self._row(video, "face", number, index, resolution.side, face, None, {"sim": value}, None)
            )
        self.run.shard.seconds["face_seconds"] += time.perf_counter() - clock
