"""The ``tokbench`` track: TokBench's text and face fidelity protocol at several resolutions in one run.

For each image and each resolution R of the suite: letterbox the original to R×R (LANCZOS, black
padding), reconstruct with the tokenizer, crop the padding and resize back to the original size
(LANCZOS, uint8), then score on ground truth at the original resolution: the OCR judge reads every
text crop of the reconstruction (T-ACC, T-NED against the annotation), the face judge embeds every
face of the original and of the reconstruction aligned on the same landmarks (F-Sim). Instances that
cannot be scored (bad annotation, character outside the judge's vocabulary, missing image, failed
reconstruction) are counted per reason and listed. Record metrics are
``t_acc_<R>_small|medium|large|mean``, ``t_ned_<R>_*`` and ``f_sim_<R>_*``; per-instance rows go to
``<record>.details.jsonl.gz`` next to the stored record.

Settings (all required): see ``tokbench.textface.settings``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokbench.adapters.base import Tokenizer
from tokbench.adapters.registry import build_model
from tokbench.data.base import Preprocessed
from tokbench.data.preprocess import LetterboxLanczos, undo_letterbox
from tokbench.data.registry import resolve_dataset
from tokbench.errors import AdapterOutputError, ConfigError, DataError
from tokbench.judges.face import FaceEmbedder
from tokbench.judges.ocr import TextRecognizer
from tokbench.metrics import METRICS, Metric
from tokbench.metrics.text_face import (
    FaceFidelity,
    TextFidelity,
    bucket_of,
    cosine_similarity,
    normalized_edit_similarity,
)
from tokbench.models.files import FileReconstructions
from tokbench.suites import SuiteConfig
from tokbench.textface.annotations import AnnotatedImage
from tokbench.textface.crops import crop_text
from tokbench.textface.details import details_path, summary_section, with_resolution, write_details
from tokbench.textface.embedded import TextFaceDataset
from tokbench.textface.prepare import PreparedImage, PrepareImage
from tokbench.textface.saving import describe_save, saved_pixels
from tokbench.textface.settings import (
    BLANK_CROP,
    OFFICIAL_OCR_BATCH,
    OcrSlot,
    Resolution,
    Settings,
    ocr_units,
    settings_from,
    subset_ends,
)
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest, check_adapter
from tokbench.tracks.checks import check_encoded, check_images
from tokbench.tracks.loading import Loaded
from tokbench.tracks.scoring import build_judges, metric_versions, resolve_device

RESTORE = "crop the letterbox content, LANCZOS back to the original size, uint8"
#: How a model's float output becomes the uint8 canvas (the official sdxl_vae_rec.py rule; the resize
#: baseline has no float step and is lossless under it).
QUANTIZATION = {"name": "round-half-even-01", "rule": "uint8(round_half_even(255 * clamp(x, 0, 1)))"}
#: Letterbox canvases per model call are capped at this many pixels (4 at 1024², 64 at 256²) so memory
#: stays flat in ``--batch-size``; batching never changes a result.
CANVAS_PIXELS_PER_CALL = 4 * 1024 * 1024


@dataclass
class _State:
    """What ``plan`` resolved: resolutions, the annotated images and the judges of the listed metrics."""

    suite: SuiteConfig
    settings: Settings
    images: list[AnnotatedImage]
    units: list[list[int]]
    ocr: TextRecognizer | None
    face: FaceEmbedder | None
    #: Per-instance rows of every process, in rank order (set by ``merge``, written beside the record).
    details: list[dict[str, Any]] | None = None
    #: ``reconstructions:DIR`` only: files that belong to no image and resolution of the dataset.
    extra_files: list[str] = field(default_factory=list)


@dataclass
class _Payload:
    """One process's result: per-resolution metric states, details rows, error counts."""

    text_states: dict[int, dict[str, Any]]
    face_states: dict[int, dict[str, Any]]
    rows: list[dict[str, Any]]
    errors: Counter[str]
    mismatches: int
    ocr_batches: Counter[str]


class TokbenchTrack(Track):
    """TokBench text and face fidelity of tokenizers at several resolutions in one run."""

    name = "tokbench"
    kinds = ("tokenizer",)

    def plan(self, request: TrackRequest) -> Plan:
        """Resolutions, model, annotated dataset, the judges of the listed metrics, and the protocol."""
        suite, options = request.suite, request.options
        settings = settings_from(suite.settings, suite.name)
        built = build_model(request.model)
        check_adapter(built, Tokenizer, suite)
        spec = request.data or suite.dataset or "tokbench-embedded"
        dataset = resolve_dataset(spec)
        if not isinstance(dataset, TextFaceDataset):
            raise ConfigError(
                f"suite {suite.name!r} needs an annotated TokBench dataset, {spec!r} has no annotations"
            )
        device = resolve_device(options.device)
        judges = build_judges(suite, device)
        images = dataset.annotated_images()
        files = built.adapter if isinstance(built.adapter, FileReconstructions) else None
        sides = [r.side for r in settings.resolutions]
        extra_files = files.tokbench_extras([a.file_name for a in images], sides) if files else []
        images = images[: options.limit] if options.limit is not None else images
        protocol = {
            "suite": suite.to_dict(),
            "dataset": {
                "name": spec,
                "manifest_hash": dataset.manifest_hash(),
                "items_requested": len(images),
            },
            "preprocess": {
                "letterbox": [LetterboxLanczos(r.side).describe() for r in settings.resolutions],
                "restore": RESTORE,
            },
            "quantization": QUANTIZATION,
            "save": describe_save(settings.save),
            "ocr_batches": {
                "mode": settings.ocr_batches,
                "size": OFFICIAL_OCR_BATCH if settings.ocr_batches == "official" else 1,
            },
            "judges": {alias: judge.describe() for alias, judge in judges.items()},
            "metric_versions": metric_versions(suite),
        }
        ocr = _judge_of(suite, judges, TextFidelity, TextRecognizer)
        face = _judge_of(suite, judges, FaceFidelity, FaceEmbedder)
        if settings.ocr_batches == "official" and ocr is not None and not ocr.reads_with_targets:
            raise ConfigError(
                f"suite {suite.name!r}: ocr_batches: official reads each batch with its ground truths; "
                f"judge {ocr.name!r} decodes without them (use doctr-parseq, or ocr_batches: per-instance)"
            )
        units = ocr_units(images, settings.ocr_batches)
        state = _State(suite, settings, images, units, ocr, face, extra_files=extra_files)
        return Plan(model=built, protocol=protocol, device=device, items_requested=len(images), state=state)

    def measure(self, plan: Plan, run: RunContext) -> _Payload:
        """Letterbox, reconstruct, restore and score this process's images at every resolution."""
        state: _State = plan.state
        evaluation = _Evaluation(plan.model.adapter, plan.model.spec, state, plan.device, run)
        if run.distributed.is_main:
            for position, stem in enumerate(state.extra_files, start=len(state.images)):
                error = DataError(f"{stem}.*: matches no image and resolution of the dataset")
                run.skip(position, f"extra file {stem}", error)
        return evaluation.evaluate([(i, state.images[i]) for _, unit in run.share(state.units) for i in unit])

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Merge bucket records exactly; T-ACC/T-NED/F-Sim per resolution and bucket; the summary."""
        state: _State = plan.state
        payloads: list[_Payload] = [shard.payload for shard in shards]
        text = _merged(state, TextFidelity, [p.text_states for p in payloads]) if state.ocr else {}
        face = _merged(state, FaceFidelity, [p.face_states for p in payloads]) if state.face else {}
        metrics: dict[str, float] = {}
        info: dict[str, dict[str, Any]] = {}
        for resolution in state.settings.resolutions:
            for name, metric in (
                ("text-fidelity", text.get(resolution.side)),
                ("face-fidelity", face.get(resolution.side)),
            ):
                if metric is not None and metric.ratios:
                    values = with_resolution(metric.compute(), resolution.side)
                    metrics.update(values)
                    info.update({k: {"metric": name, **asdict(type(metric).output_info(k))} for k in values})
        state.details = [row for p in payloads for row in p.rows]
        errors: Counter[str] = Counter()
        batches: Counter[str] = Counter()
        for payload in payloads:
            errors.update(payload.errors)
            batches.update(payload.ocr_batches)
        summary = summary_section(
            state.settings.resolutions, text, face, state.details, errors, sum(p.mismatches for p in payloads)
        )
        summary["ocr_batches"] = {"mode": state.settings.ocr_batches, "read": batches["read"]}
        summary["ocr_batches"]["dropped"] = batches["dropped"]
        extra: dict[str, Any] = {"tokbench": summary}
        if isinstance(plan.model.adapter, FileReconstructions):
            extra["outputs"] = plan.model.adapter.describe()
        return Measurement(metrics=metrics, extra=extra, metric_info=info)

    def write_artifacts(
        self, plan: Plan, record: dict[str, Any], record_path: Path | None, force: bool
    ) -> None:
        """The per-instance rows, in ``<record>.details.jsonl.gz`` beside the stored record."""
        rows = plan.state.details
        if record_path is None or rows is None:
            return
        target = details_path(record_path)
        record["tokbench"]["details"] = {"file": target.name, "rows": len(rows)}
        if not target.exists() or force:
            write_details(target, rows)


def _judge_of(suite: SuiteConfig, judges: dict[str, Any], metric: type[Metric], kind: type) -> Any:
    """The judge of the suite's ``metric`` entry (checked to be a ``kind``), or None if not listed."""
    entries = [m for m in suite.metrics if issubclass(METRICS.get(m.name), metric)]
    if not entries:
        return None
    if len(entries) > 1 or entries[0].key is not None:
        raise ConfigError(
            f"suite {suite.name!r}: the tokbench track scores one {metric.__name__} entry, under its "
            "per-resolution keys (no 'key:')"
        )
    judge = judges.get(entries[0].judge or "")
    if not isinstance(judge, kind):
        raise ConfigError(
            f"suite {suite.name!r}: the judge of {entries[0].name!r} must be a {kind.__name__}, got "
            f"{type(judge).__name__}"
        )
    return judge


def _merged(
    state: _State, metric: type[Metric], shards: list[dict[int, dict[str, Any]]]
) -> dict[int, Metric]:
    """Per resolution, one metric holding every process's bucket records."""
    merged = {}
    for resolution in state.settings.resolutions:
        edges = resolution.text if metric is TextFidelity else resolution.face
        merged[resolution.side] = metric(edges)
        for states in shards:
            merged[resolution.side].merge_state(states[resolution.side])
    return merged


class _Evaluation:
    """The measuring loop of one process: per-resolution metrics, details rows, error counts."""

    def __init__(self, model: Tokenizer, spec: str, state: _State, device: torch.device, run: RunContext):
        self.model, self.spec, self.settings = model, spec, state.settings
        self.resolutions = state.settings.resolutions
        self.official = state.settings.ocr_batches == "official"
        self.subset_ends = subset_ends(state.images)
        self.ocr, self.face, self.device, self.run = state.ocr, state.face, device, run
        self.text_metrics = {r.side: TextFidelity(r.text) for r in self.resolutions}
        self.face_metrics = {r.side: FaceFidelity(r.face) for r in self.resolutions}
        self.pending: dict[int, list[OcrSlot]] = {r.side: [] for r in self.resolutions}
        self.rows: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()
        self.batches: Counter[str] = Counter()
        self.mismatches = 0
        self.positions: dict[str, int] = {}
        #: The letterboxed canvases of the current batch's images, by id and side (from ``PrepareImage``).
        self.letterboxes: dict[str, dict[int, Preprocessed]] = {}

    def evaluate(self, images: list[tuple[int, AnnotatedImage]]) -> _Payload:
        """Evaluate ``(position, image)`` pairs batch by batch; return the mergeable result."""
        self.positions = {annotated.id: position for position, annotated in images}
        self.model.to(self.device)
        sides = () if isinstance(self.model, FileReconstructions) else tuple(r.side for r in self.resolutions)
        with self.run.progress(len(images), f"tokbench · {self.spec}") as progress:
            for batch in self.run.load(images, PrepareImage(self.settings.save, sides)):
                self._batch(batch)
                progress.update(len(batch))
        return _Payload(
            text_states={side: m.state_dict() for side, m in self.text_metrics.items()},
            face_states={side: m.state_dict() for side, m in self.face_metrics.items()},
            rows=self.rows,
            errors=self.errors,
            mismatches=self.mismatches,
            ocr_batches=self.batches,
        )

    def _batch(self, entries: list[Loaded[AnnotatedImage, PreparedImage]]) -> None:
        batch = [entry.item for entry in entries]
        loaded = [(e.item, pixels) for e in entries if (pixels := self._load(e)) is not None]
        self.run.shard.items_used += len(loaded)
        originals = {a.id: self._original_faces(a, pixels) for a, pixels in loaded}
        for resolution in self.resolutions:
            rebuilt: dict[str, np.ndarray] = {}
            per_call = max(1, CANVAS_PIXELS_PER_CALL // resolution.side**2)
            for first in range(0, len(loaded), per_call):
                part = loaded[first : first + per_call]
                for (annotated, _), pixels in zip(part, self._reconstruct(part, resolution), strict=True):
                    if pixels is not None:
                        rebuilt[annotated.id] = pixels
            for annotated in batch:  # every image, in order: official OCR slots follow the annotation
                self._score_texts(annotated, rebuilt.get(annotated.id), resolution)
                if annotated.id in rebuilt:
                    self._score_faces(annotated, rebuilt[annotated.id], resolution, originals[annotated.id])
        self.letterboxes.clear()

    def _fail(
        self, annotated: AnnotatedImage, kind: str, index: int | None, category: str, reason: str
    ) -> None:
        """Count an instance (or, with ``index`` None, every instance of the image) as not scored."""
        if self.run.options.on_error == "fail":
            raise DataError(f"{annotated.id}: {reason}")
        instances = [
            (k, i)
            for k in ("text", "face")
            for i in range(len(annotated.texts if k == "text" else annotated.faces))
        ]
        targets = instances if index is None else [(kind, index)]
        for target_kind, target_index in targets:
            self.errors[f"{target_kind}_{category}"] += 1
            self.rows.append(
                self._row(annotated, target_kind, target_index, None, None, None, f"{category}: {reason}")
            )
        item = annotated.id if index is None else f"{annotated.id}#{kind}{index}"
        self.run.shard.skipped.append((self.positions[annotated.id], {"item": item, "reason": reason}))

    def _row(self, annotated, kind, index, resolution, prediction, score, error) -> dict[str, Any]:
        instance = annotated.texts[index] if kind == "text" else annotated.faces[index]
        edges = None
        if resolution is not None:
            edges = resolution.text if kind == "text" else resolution.face
        return {
            "resolution": None if resolution is None else resolution.side,
            "kind": kind,
            "image": annotated.id,
            "index": index,
            "gt": instance.text if kind == "text" else None,
            "prediction": prediction,
            "ratio": instance.ratio,
            "bucket": bucket_of(instance.ratio, edges)
            if edges is not None and instance.ratio is not None
            else None,
            "score": score,
            "error": error,
        }

    def _load(self, entry: Loaded[AnnotatedImage, PreparedImage]) -> np.ndarray | None:
        """The image's pixels (letterboxes kept), or None when it failed; unscorable instances counted."""
        annotated = entry.item
        if entry.error is not None:
            self._fail(annotated, "", None, "image", str(entry.error))
            return None
        pixels, mismatch, self.letterboxes[annotated.id] = entry.value
        if mismatch:
            self.mismatches += 1
        for index, text in enumerate(annotated.texts if self.ocr is not None else ()):
            if text.error is not None:
                self._fail(annotated, "text", index, "annotation", text.error)
            elif not self.official and (missing := self.ocr.unreadable(text.text)):
                reason = f"{missing!r} outside the {self.ocr.name} vocabulary"
                self._fail(annotated, "text", index, "vocabulary", reason)
        for index, face in enumerate(annotated.faces if self.face is not None else ()):
            if face.error is not None:
                self._fail(annotated, "face", index, "annotation", face.error)
        return pixels

    def _original_faces(self, annotated: AnnotatedImage, pixels: np.ndarray) -> dict[int, torch.Tensor]:
        """Embeddings of the original's faces (computed once per run), by instance index."""
        embeddings: dict[int, torch.Tensor] = {}
        for index, face in enumerate(annotated.faces if self.face is not None else ()):
            if face.error is None:
                try:
                    embeddings[index] = self.face.embed(pixels, [np.array(face.landmarks)])
                except DataError as error:
                    self._fail(annotated, "face", index, "crop", str(error))
        return embeddings

    def _reconstruct(self, loaded, resolution: Resolution) -> list[np.ndarray | None]:
        """Each loaded image letterboxed, reconstructed, restored and saved as the suite says, or None."""
        if isinstance(self.model, FileReconstructions):
            return [self._read_file(annotated, pixels, resolution.side) for annotated, pixels in loaded]
        prepared = {a.id: self.letterboxes[a.id][resolution.side] for a, _ in loaded}
        names = {a.id: a.file_name for a, _ in loaded}
        restored: dict[str, np.ndarray] = {}

        def reconstruct(part: list[tuple[AnnotatedImage, np.ndarray]]) -> None:
            ids = [a.id for a, _ in part]
            batch = self.run.to_device([prepared[i].image for i in ids])
            for item_id, out in zip(ids, self._model(batch, ids).cpu(), strict=True):
                image = undo_letterbox(out, prepared[item_id].geometry)
                restored[item_id] = saved_pixels(image, names[item_id], self.settings.save)

        def failed(entry: tuple[AnnotatedImage, np.ndarray], error: AdapterOutputError) -> None:
            self._fail(entry[0], "", None, "model", f"{error} (at {resolution.side}px)")

        if loaded:
            self.run.attempt(loaded, reconstruct, failed)
        return [restored.get(a.id) for a, _ in loaded]

    def _read_file(self, annotated: AnnotatedImage, pixels: np.ndarray, side: int) -> np.ndarray | None:
        """A reconstruction made elsewhere (``FileReconstructions.read_tokbench``), or None with the
        image counted as failed."""
        try:
            return self.model.read_tokbench(annotated.file_name, annotated.id, side, pixels.shape[:2])
        except DataError as error:
            self._fail(annotated, "", None, "model", str(error))
            return None

    def _model(self, batch: torch.Tensor, ids: list[str]) -> torch.Tensor:
        clock = time.perf_counter()
        returned = self.run.call_model("encode", ids, self.model.encode, batch.clone())
        encoded = check_encoded(returned, self.spec, ids)
        output = self.run.call_model("decode", ids, self.model.decode, encoded)
        check_images(output, batch.shape, self.spec, ids)
        self.run.shard.seconds["model_seconds"] += time.perf_counter() - clock
        return output

    def _score_texts(
        self, annotated: AnnotatedImage, rebuilt: np.ndarray | None, resolution: Resolution
    ) -> None:
        """Crop the image's text instances into the resolution's OCR queue and read what is due."""
        if self.ocr is None:
            return
        pending = self.pending[resolution.side]
        for index, text in enumerate(annotated.texts):
            crop = None
            readable = self.official or not self.ocr.unreadable(text.text)
            if rebuilt is not None and text.error is None and readable:
                try:
                    crop = crop_text(rebuilt, text.geometry)
                except DataError as error:
                    self._fail(annotated, "text", index, "crop", str(error))
            if crop is not None or self.official:
                pending.append(OcrSlot(annotated, index, crop))
        if not self.official:
            self._read(pending, resolution)
            pending.clear()
            return
        while len(pending) >= OFFICIAL_OCR_BATCH:
            self._read(pending[:OFFICIAL_OCR_BATCH], resolution)
            del pending[:OFFICIAL_OCR_BATCH]
        if annotated.id in self.subset_ends and pending:
            self._read(pending, resolution)
            pending.clear()

    def _read(self, slots: list[OcrSlot], resolution: Resolution) -> None:
        """Read one OCR batch and score its readable slots (official: the whole batch or none)."""
        if not slots:
            return
        clock = time.perf_counter()
        targets = [slot.annotated.texts[slot.index].text for slot in slots]
        if self.official:
            missing = "".join(dict.fromkeys(c for target in targets for c in self.ocr.unreadable(target)))
            if missing:
                self.batches["dropped"] += 1
                reason = (
                    f"its OCR batch of {len(slots)} at {resolution.side}px holds {missing!r}, outside the "
                    f"{self.ocr.name} vocabulary: the official evaluate() drops the whole batch"
                )
                for slot in slots:
                    if slot.crop is not None:
                        self._fail(slot.annotated, "text", slot.index, "batch", reason)
                return
            self.batches["read"] += 1
            crops = [BLANK_CROP if slot.crop is None else slot.crop for slot in slots]
            predictions = self.ocr.read(crops, targets)
        else:
            predictions = self.ocr.read([slot.crop for slot in slots])
        scored = [
            (s, t, p) for s, t, p in zip(slots, targets, predictions, strict=True) if s.crop is not None
        ]
        if scored:
            ratios = [slot.annotated.texts[slot.index].ratio for slot, _, _ in scored]
            self.text_metrics[resolution.side].update(
                [t for _, t, _ in scored], [p for _, _, p in scored], ratios
            )
        for slot, target, prediction in scored:
            score = {
                "acc": float(target == prediction),
                "ned": normalized_edit_similarity(target, prediction),
            }
            self.rows.append(
                self._row(slot.annotated, "text", slot.index, resolution, prediction, score, None)
            )
        self.run.shard.seconds["ocr_seconds"] += time.perf_counter() - clock

    def _score_faces(
        self, annotated: AnnotatedImage, rebuilt: np.ndarray, resolution: Resolution, originals
    ) -> None:
        """F-Sim of every face embedded in the original, on the saved reconstruction."""
        clock = time.perf_counter()
        faces = sorted(originals)
        if faces:
            landmarks = [np.array(annotated.faces[i].landmarks) for i in faces]
            rebuilt_embeddings = self.face.embed(rebuilt, landmarks)
            first = torch.cat([originals[i] for i in faces])
            ratios = [annotated.faces[i].ratio for i in faces]
            self.face_metrics[resolution.side].update(first, rebuilt_embeddings, ratios)
            similarity = cosine_similarity(first.double(), rebuilt_embeddings.double())  # as the metric
            for index, value in zip(faces, similarity.tolist(), strict=True):
                self.rows.append(self._row(annotated, "face", index, resolution, None, {"sim": value}, None))
        self.run.shard.seconds["face_seconds"] += time.perf_counter() - clock
