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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tokbench.adapters.base import Encoded, Tokenizer
from tokbench.adapters.registry import build_model
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
    check_edges,
    cosine_similarity,
    normalized_edit_similarity,
)
from tokbench.suites import SuiteConfig
from tokbench.textface.annotations import AnnotatedImage
from tokbench.textface.crops import crop_text
from tokbench.textface.details import details_path, with_resolution, write_details
from tokbench.textface.embedded import MISMATCH_KEY, TextFaceDataset
from tokbench.tracks.base import Measurement, Plan, RunContext, Shard, Track, TrackRequest, check_adapter
from tokbench.tracks.checks import check_images
from tokbench.tracks.scoring import build_judges, metric_versions, resolve_device

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


@dataclass
class _State:
    """What ``plan`` resolved: resolutions, the annotated images and the judges of the listed metrics."""

    suite: SuiteConfig
    resolutions: tuple[Resolution, ...]
    images: list[AnnotatedImage]
    ocr: TextRecognizer | None
    face: FaceEmbedder | None
    #: Per-instance rows of every process, in rank order (set by ``merge``, written beside the record).
    details: list[dict[str, Any]] | None = None


@dataclass
class _Payload:
    """One process's result: per-resolution metric states, details rows, error counts."""

    text_states: dict[int, dict[str, Any]]
    face_states: dict[int, dict[str, Any]]
    rows: list[dict[str, Any]]
    errors: Counter[str]
    mismatches: int


class TokbenchTrack(Track):
    """TokBench text and face fidelity of tokenizers at several resolutions in one run."""

    name = "tokbench"
    kinds = ("tokenizer",)

    def plan(self, request: TrackRequest) -> Plan:
        """Resolutions, model, annotated dataset, the judges of the listed metrics, and the protocol."""
        suite, options = request.suite, request.options
        resolutions = resolutions_from(suite.settings, suite.name)
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
        images = images[: options.limit] if options.limit is not None else images
        protocol = {
            "suite": suite.to_dict(),
            "dataset": {
                "name": spec,
                "manifest_hash": dataset.manifest_hash(),
                "items_requested": len(images),
            },
            "preprocess": {
                "letterbox": [LetterboxLanczos(r.side).describe() for r in resolutions],
                "restore": RESTORE,
            },
            "quantization": "uint8-round-half-even",
            "judges": {alias: judge.describe() for alias, judge in judges.items()},
            "metric_versions": metric_versions(suite),
        }
        ocr = _judge_of(suite, judges, TextFidelity, TextRecognizer)
        face = _judge_of(suite, judges, FaceFidelity, FaceEmbedder)
        state = _State(suite, resolutions, images, ocr, face)
        return Plan(model=built, protocol=protocol, device=device, items_requested=len(images), state=state)

    def measure(self, plan: Plan, run: RunContext) -> _Payload:
        """Letterbox, reconstruct, restore and score this process's images at every resolution."""
        state: _State = plan.state
        evaluation = _Evaluation(plan.model.adapter, plan.model.spec, state, plan.device, run)
        return evaluation.evaluate(run.share(state.images))

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        """Merge bucket records exactly; T-ACC/T-NED/F-Sim per resolution and bucket; the summary."""
        state: _State = plan.state
        payloads: list[_Payload] = [shard.payload for shard in shards]
        text = _merged(state, TextFidelity, [p.text_states for p in payloads]) if state.ocr else {}
        face = _merged(state, FaceFidelity, [p.face_states for p in payloads]) if state.face else {}
        metrics: dict[str, float] = {}
        info: dict[str, dict[str, Any]] = {}
        for resolution in state.resolutions:
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
        for payload in payloads:
            errors.update(payload.errors)
        summary = _summary(state, text, face, state.details, errors, sum(p.mismatches for p in payloads))
        return Measurement(metrics=metrics, extra={"tokbench": summary}, metric_info=info)

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
    for resolution in state.resolutions:
        edges = resolution.text if metric is TextFidelity else resolution.face
        merged[resolution.side] = metric(edges)
        for states in shards:
            merged[resolution.side].merge_state(states[resolution.side])
    return merged


def _summary(
    state: _State,
    text: dict[int, Metric],
    face: dict[int, Metric],
    rows: list[dict[str, Any]],
    errors: Counter[str],
    mismatches: int,
) -> dict[str, Any]:
    """The record's ``tokbench`` section: what was scored, what was not and why."""
    instances = {
        kind: len({(r["image"], r["index"]) for r in rows if r["kind"] == kind}) for kind in ("text", "face")
    }
    buckets = {
        str(r.side): {
            kind: metrics[r.side].bucket_counts() if r.side in metrics and metrics[r.side].ratios else {}
            for kind, metrics in (("text", text), ("face", face))
        }
        for r in state.resolutions
    }
    return {
        "resolutions": [r.side for r in state.resolutions],
        "instances": instances,
        "scored_per_bucket": buckets,
        "not_scored": dict(sorted(errors.items())),
        "render_mismatches": mismatches,
        "details": None,
    }


class _Evaluation:
    """The measuring loop of one process: per-resolution metrics, details rows, error counts."""

    def __init__(self, model: Tokenizer, spec: str, state: _State, device: torch.device, run: RunContext):
        self.model, self.spec, self.resolutions = model, spec, state.resolutions
        self.ocr, self.face, self.device, self.run = state.ocr, state.face, device, run
        self.text_metrics = {r.side: TextFidelity(r.text) for r in state.resolutions}
        self.face_metrics = {r.side: FaceFidelity(r.face) for r in state.resolutions}
        self.rows: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()
        self.mismatches = 0
        self.positions: dict[str, int] = {}

    def evaluate(self, images: list[tuple[int, AnnotatedImage]]) -> _Payload:
        """Evaluate ``(position, image)`` pairs batch by batch; return the mergeable result."""
        self.positions = {annotated.id: position for position, annotated in images}
        self.model.to(self.device)
        batch_size = self.run.options.batch_size
        with self.run.progress(len(images), f"tokbench · {self.spec}") as progress:
            for start in range(0, len(images), batch_size):
                batch = [annotated for _, annotated in images[start : start + batch_size]]
                self._batch(batch)
                progress.update(len(batch))
        return _Payload(
            text_states={side: m.state_dict() for side, m in self.text_metrics.items()},
            face_states={side: m.state_dict() for side, m in self.face_metrics.items()},
            rows=self.rows,
            errors=self.errors,
            mismatches=self.mismatches,
        )

    def _batch(self, batch: list[AnnotatedImage]) -> None:
        loaded = [(a, pixels) for a in batch if (pixels := self._load(a)) is not None]
        self.run.shard.items_used += len(loaded)
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

    def _load(self, annotated: AnnotatedImage) -> np.ndarray | None:
        try:
            image = annotated.load()
        except DataError as error:
            self._fail(annotated, "", None, "image", str(error))
            return None
        if image.info.get(MISMATCH_KEY):
            self.mismatches += 1
        for index, text in enumerate(annotated.texts if self.ocr is not None else ()):
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
        for index, face in enumerate(annotated.faces if self.face is not None else ()):
            if face.error is not None:
                self._fail(annotated, "face", index, "annotation", face.error)
        return np.asarray(image)

    def _scorable_texts(self, annotated: AnnotatedImage) -> list[int]:
        if self.ocr is None:
            return []
        return [
            i for i, t in enumerate(annotated.texts) if t.error is None and not self.ocr.unreadable(t.text)
        ]

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
        """Each loaded image letterboxed to ``resolution``, reconstructed and restored, or None."""
        letterbox = LetterboxLanczos(resolution.side)
        prepared = {a.id: letterbox(Image.fromarray(pixels)) for a, pixels in loaded}
        restored: dict[str, np.ndarray] = {}

        def reconstruct(part: list[tuple[AnnotatedImage, np.ndarray]]) -> None:
            ids = [a.id for a, _ in part]
            batch = torch.stack([prepared[i].image for i in ids]).to(self.device)
            for item_id, out in zip(ids, self._model(batch, ids).cpu(), strict=True):
                restored[item_id] = np.asarray(undo_letterbox(out, prepared[item_id].geometry))

        def failed(entry: tuple[AnnotatedImage, np.ndarray], error: AdapterOutputError) -> None:
            self._fail(entry[0], "", None, "model", f"model {self.spec} failed at {resolution.side}px")

        if loaded:
            self.run.attempt(loaded, reconstruct, failed)
        return [restored.get(a.id) for a, _ in loaded]

    def _model(self, batch: torch.Tensor, ids: list[str]) -> torch.Tensor:
        clock = time.perf_counter()
        encoded = self.model.encode(batch.clone())
        if not isinstance(encoded, Encoded):
            raise AdapterOutputError(f"model {self.spec}: encode() returned {type(encoded).__name__}")
        output = self.model.decode(encoded)
        check_images(output, batch.shape, self.spec, ids)
        self.run.shard.seconds["model_seconds"] += time.perf_counter() - clock
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
        self.run.shard.seconds["ocr_seconds"] += time.perf_counter() - clock
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
        self.run.shard.seconds["face_seconds"] += time.perf_counter() - clock
