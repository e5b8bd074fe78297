"""The ``tokbench`` track: TokBench's text and face fidelity protocol at several resolutions in one run.

For each image and each resolution R of the suite: letterbox the original to R×R (LANCZOS, black
padding), reconstruct with the tokenizer, crop the padding and resize back to the original size
(LANCZOS, uint8), then score on ground truth at the original resolution: the OCR judge reads every
text crop of the reconstruction (T-ACC, T-NED against the annotation), the face judge embeds every
face of the original and of the reconstruction aligned on the same landmarks (F-Sim). Instances that
cannot be scored (bad annotation, character outside the judge's vocabulary, missing image, failed
reconstruction) are counted per reason and listed; they never drop other instances. Record metrics
are ``t_acc_<R>_small|medium|large|mean``, ``t_ned_<R>_*`` and ``f_sim_<R>_*``; per-instance rows go
to ``<record>.details.jsonl.gz`` next to the stored record.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from tokbench.adapters.base import Encoded, Tokenizer
from tokbench.adapters.registry import build_model
from tokbench.data.preprocess import LetterboxLanczos, undo_letterbox
from tokbench.data.registry import resolve_dataset
from tokbench.errors import AdapterOutputError, ConfigError, DataError, TokbenchError
from tokbench.judges.face import FaceEmbedder
from tokbench.judges.ocr import TextRecognizer
from tokbench.metrics import METRICS
from tokbench.metrics.text_face import (
    FaceFidelity,
    TextFidelity,
    bucket_of,
    check_edges,
    cosine_similarity,
    normalized_edit_similarity,
)
from tokbench.recording import (
    RunResult,
    build_record,
    claim_record,
    store_result,
)
from tokbench.runner import RunOutcome, build_judges, check_images, exact_float32, resolve_device
from tokbench.textface.annotations import AnnotatedImage
from tokbench.textface.crops import crop_text
from tokbench.textface.details import details_path, with_resolution, write_details
from tokbench.textface.embedded import MISMATCH_KEY, TextFaceDataset
from tokbench.tracks import TrackRequest

RESTORE = "crop the letterbox content, LANCZOS back to the original size, uint8"
#: Letterbox canvases per model call are capped at this many pixels (4 at 1024², 64 at 256²) so memory
#: stays flat in ``--batch-size``; batching never changes a result.
CANVAS_PIXELS_PER_CALL = 4 * 1024 * 1024


@dataclass(frozen=True)
class Resolution:
    """One evaluation resolution with its text and face bucket edges."""

    side: int
    text: tuple[float, ...]
    face: tuple[float, ...]


def resolutions_from(settings: dict[str, Any], suite: str) -> tuple[Resolution, ...]:
    """``settings.resolutions``: a list of ``{resolution, text: [4 edges], face: [4 edges]}``."""
    entries = settings.get("resolutions")
    unknown = sorted(set(settings) - {"resolutions"})
    if unknown or not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"suite {suite!r}: settings must be {{resolutions: [{{resolution, text, face}}, ...]}}"
            + (f"; unknown key(s) {unknown}" if unknown else "")
        )
    parsed = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"resolution", "text", "face"}:
            raise ConfigError(
                f"suite {suite!r}: each resolution needs exactly resolution, text, face: {entry!r}"
            )
        side = entry["resolution"]
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise ConfigError(f"suite {suite!r}: resolution must be a positive integer, got {side!r}")
        text = check_edges(entry["text"], f"suite {suite!r} text edges at {side}")
        face = check_edges(entry["face"], f"suite {suite!r} face edges at {side}")
        parsed.append(Resolution(side, text, face))
    return tuple(parsed)


def run(request: TrackRequest) -> RunResult:
    """Evaluate one tokenizer under a ``track: tokbench`` suite; store the record and its details."""
    suite, options = request.suite, request.options
    resolutions = resolutions_from(suite.settings, suite.name)
    built = build_model(request.model)
    if not isinstance(built.adapter, Tokenizer):
        raise ConfigError(
            f"suite {suite.name!r} evaluates tokenizers; {built.spec!r} is a {built.adapter.kind}"
        )
    spec = request.data or suite.dataset or "tokbench-embedded"
    dataset = resolve_dataset(spec)
    if not isinstance(dataset, TextFaceDataset):
        raise ConfigError(
            f"suite {suite.name!r} needs an annotated TokBench dataset, {spec!r} has no annotations"
        )
    device = resolve_device(options.device)
    judges = build_judges(suite, device)
    ocr, face = (
        _judge(judges, "ocr", TextRecognizer, suite.name),
        _judge(judges, "face", FaceEmbedder, suite.name),
    )
    images = dataset.annotated_images()
    images = images[: options.limit] if options.limit is not None else images
    protocol = {
        "suite": suite.to_dict(),
        "dataset": {"name": spec, "manifest_hash": dataset.manifest_hash(), "items_requested": len(images)},
        "preprocess": {
            "letterbox": [LetterboxLanczos(r.side).describe() for r in resolutions],
            "restore": RESTORE,
        },
        "quantization": "uint8-round-half-even",
        "judges": {alias: judge.describe() for alias, judge in judges.items()},
        "metric_versions": {m.name: METRICS.get(m.name).implementation_version for m in suite.metrics},
    }
    slot = claim_record(suite.name, protocol, built.spec, request.store, request.force)
    if slot.existing is not None:
        return slot.existing
    digest, record_id, record_store = slot.digest, slot.record_id, slot.store
    evaluation = _Evaluation(built.adapter, built.spec, resolutions, ocr, face, device, options.on_error)
    outcome = evaluation.run(images, options.batch_size)
    extra = evaluation.summary()
    record = build_record(
        record_id, suite, digest, protocol, built, outcome, options, extra={"tokbench": extra}
    )
    if record_store is not None:
        target = details_path(record_store.path_for(record))
        extra["details"] = {"file": target.name, "rows": len(evaluation.rows)}
        if not target.exists() or request.force:
            write_details(target, evaluation.rows)
    return store_result(record_store, record, request.force)


def _judge(judges: dict[str, Any], alias: str, kind: type, suite: str) -> Any:
    judge = judges.get(alias)
    if not isinstance(judge, kind):
        raise ConfigError(
            f"suite {suite!r}: judge {alias!r} must be a {kind.__name__}, got {type(judge).__name__}"
        )
    return judge


class _Evaluation:
    """The measuring loop of one run: per-resolution metrics, details rows, error counts, timings."""

    def __init__(self, model: Tokenizer, spec: str, resolutions, ocr, face, device, on_error: str) -> None:
        self.model, self.spec, self.resolutions = model, spec, resolutions
        self.ocr, self.face, self.device, self.on_error = ocr, face, device, on_error
        self.text_metrics = {r.side: TextFidelity(r.text) for r in resolutions}
        self.face_metrics = {r.side: FaceFidelity(r.face) for r in resolutions}
        self.rows: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()
        self.skipped: list[dict[str, str]] = []
        self.mismatches = 0
        self.seconds = Counter()

    def run(self, images: list[AnnotatedImage], batch_size: int) -> RunOutcome:
        started = time.perf_counter()
        self.model.to(self.device)
        used = 0
        with exact_float32(), torch.inference_mode():
            for start in range(0, len(images), batch_size):
                loaded = [
                    (a, pixels)
                    for a in images[start : start + batch_size]
                    if (pixels := self._load(a)) is not None
                ]
                used += len(loaded)
                originals = {a.id: self._original_faces(a, pixels) for a, pixels in loaded}
                for resolution in self.resolutions:
                    per_call = max(1, CANVAS_PIXELS_PER_CALL // resolution.side**2)
                    for first in range(0, len(loaded), per_call):
                        part = loaded[first : first + per_call]
                        for (annotated, pixels), rebuilt in zip(
                            part, self._reconstruct(part, resolution), strict=True
                        ):
                            if rebuilt is not None:
                                self._score(annotated, pixels, rebuilt, resolution, originals[annotated.id])
        if used == 0:
            raise TokbenchError(f"no image of {len(images)} could be evaluated: {self.skipped[:3]}")
        metrics: dict[str, float] = {}
        for resolution in self.resolutions:
            for metric in (self.text_metrics[resolution.side], self.face_metrics[resolution.side]):
                if metric.ratios:
                    metrics.update(with_resolution(metric.compute(), resolution.side))
        total = time.perf_counter() - started
        timings = {"total_seconds": total, **{k: float(v) for k, v in self.seconds.items()}}
        return RunOutcome(metrics, len(images), used, self.skipped, {}, timings)

    def summary(self) -> dict[str, Any]:
        """The record's ``tokbench`` section: what was scored, what was not and why."""
        instances = {
            kind: len({(r["image"], r["index"]) for r in self.rows if r["kind"] == kind})
            for kind in ("text", "face")
        }
        buckets = {
            str(r.side): {
                "text": self.text_metrics[r.side].bucket_counts() if self.text_metrics[r.side].ratios else {},
                "face": self.face_metrics[r.side].bucket_counts() if self.face_metrics[r.side].ratios else {},
            }
            for r in self.resolutions
        }
        return {
            "resolutions": [r.side for r in self.resolutions],
            "instances": instances,
            "scored_per_bucket": buckets,
            "not_scored": dict(sorted(self.errors.items())),
            "render_mismatches": self.mismatches,
            "details": None,
        }

    def _fail(
        self, annotated: AnnotatedImage, kind: str, index: int | None, category: str, reason: str
    ) -> None:
        """Count an instance (or, with ``index`` None, every instance of the image) as not scored."""
        if self.on_error == "fail":
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
        self.skipped.append(
            {"item": annotated.id if index is None else f"{annotated.id}#{kind}{index}", "reason": reason}
        )

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

    def _load(self, annotated: AnnotatedImage) -> np.ndarray | None:
        try:
            image = annotated.load()
        except DataError as error:
            self._fail(annotated, "", None, "image", str(error))
            return None
        if image.info.get(MISMATCH_KEY):
            self.mismatches += 1
        for index, text in enumerate(annotated.texts):
            missing = self.ocr.unreadable(text.text) if text.error is None else ""
            if text.error is not None:
                self._fail(annotated, "text", index, "annotation", text.error)
            elif missing:
                self._fail(
                    annotated,
                    "text",
                    index,
                    "vocabulary",
                    f"{missing!r} outside the {self.ocr.name} vocabulary",
                )
        for index, face in enumerate(annotated.faces):
            if face.error is not None:
                self._fail(annotated, "face", index, "annotation", face.error)
        return np.asarray(image)

    def _scorable_texts(self, annotated: AnnotatedImage) -> list[int]:
        return [
            i for i, t in enumerate(annotated.texts) if t.error is None and not self.ocr.unreadable(t.text)
        ]

    def _original_faces(self, annotated: AnnotatedImage, pixels: np.ndarray) -> dict[int, torch.Tensor]:
        """Embeddings of the original's faces (computed once per run), by instance index."""
        embeddings = {}
        for index, face in enumerate(annotated.faces):
            if face.error is None:
                try:
                    embeddings[index] = self.face.embed(pixels, [np.array(face.landmarks)])
                except DataError as error:
                    self._fail(annotated, "face", index, "crop", str(error))
        return embeddings

    def _reconstruct(self, loaded, resolution: Resolution) -> list[np.ndarray | None]:
        """Each loaded image letterboxed to ``resolution``, reconstructed and restored, or None."""
        letterbox = LetterboxLanczos(resolution.side)
        prepared = [letterbox(Image.fromarray(pixels)) for _, pixels in loaded]
        if not prepared:
            return []
        batch = torch.stack([p.image for p in prepared]).to(self.device)
        ids = [a.id for a, _ in loaded]
        try:
            outputs = self._model(batch, ids)
        except AdapterOutputError:
            if len(loaded) == 1:
                outputs = None
            else:
                return [self._reconstruct([entry], resolution)[0] for entry in loaded]
        if outputs is None:
            reason = f"model {self.spec} failed at {resolution.side}px"
            if self.on_error == "fail":
                raise AdapterOutputError(reason)
            for annotated, _ in loaded:
                self._fail(annotated, "", None, "model", reason)
            return [None]
        return [
            np.asarray(undo_letterbox(out, p.geometry))
            for out, p in zip(outputs.cpu(), prepared, strict=True)
        ]

    def _model(self, batch: torch.Tensor, ids: list[str]) -> torch.Tensor:
        clock = time.perf_counter()
        encoded = self.model.encode(batch.clone())
        if not isinstance(encoded, Encoded):
            raise AdapterOutputError(f"model {self.spec}: encode() returned {type(encoded).__name__}")
        output = self.model.decode(encoded)
        check_images(output, batch.shape, self.spec, ids)
        self.seconds["model_seconds"] += time.perf_counter() - clock
        return output

    def _score(self, annotated, pixels, rebuilt, resolution: Resolution, original_faces) -> None:
        clock = time.perf_counter()
        indices = self._scorable_texts(annotated)
        crops, kept = [], []
        for index in indices:
            try:
                crops.append(crop_text(rebuilt, annotated.texts[index].geometry))
                kept.append(index)
            except DataError as error:
                self._fail(annotated, "text", index, "crop", str(error))
        predictions = self.ocr.read(crops) if crops else []
        targets = [annotated.texts[i].text for i in kept]
        ratios = [annotated.texts[i].ratio for i in kept]
        if kept:
            self.text_metrics[resolution.side].update(targets, predictions, ratios)
        for index, target, prediction in zip(kept, targets, predictions, strict=True):
            score = {
                "acc": float(target == prediction),
                "ned": normalized_edit_similarity(target, prediction),
            }
            self.rows.append(self._row(annotated, "text", index, resolution, prediction, score, None))
        self.seconds["ocr_seconds"] += time.perf_counter() - clock
        clock = time.perf_counter()
        faces = sorted(original_faces)
        if faces:
            landmarks = [np.array(annotated.faces[i].landmarks) for i in faces]
            rebuilt_embeddings = self.face.embed(rebuilt, landmarks)
            originals = torch.cat([original_faces[i] for i in faces])
            ratios = [annotated.faces[i].ratio for i in faces]
            self.face_metrics[resolution.side].update(originals, rebuilt_embeddings, ratios)
            similarity = cosine_similarity(originals.double(), rebuilt_embeddings.double())  # as the metric
            for index, value in zip(faces, similarity.tolist(), strict=True):
                self.rows.append(self._row(annotated, "face", index, resolution, None, {"sim": value}, None))
        self.seconds["face_seconds"] += time.perf_counter() - clock
