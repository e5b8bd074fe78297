"""``tokbench-video:PATH``: TokBench's video set (text sets ``ch3`` and ``ds``, faces ``face_clip_3s``).

Layout under PATH, as the official ``video_eval.sh`` reads it (the schema is inferred from the later
``ocr_json.py``/``eval_face.py`` as described in the protocol reference; the hub copy could not be
inspected offline, so these are assumptions):

- ``video_annotations/text_ch3.json``, ``video_annotations/text_ds.json``: the image text schema, a
  list of ``{file_name, height, width, annotations: [{rec, bbox, ratio}]}`` where ``file_name`` names a
  frame ``<video name>-frame<N>.<ext>`` (N 1-based) of ``<video name>.mp4``;
- ``videoface_meta.json`` (at PATH or in ``video_annotations/``): a list of ``{video_name, img_height,
  img_width, frame_anns: [...]}`` where ``frame_anns[i]`` is a list of faces ``{kps, box, ratio}`` (or
  ``{faces: [...]}``) of decoded frame i;
- videos in ``<set>/`` (``ch3/``, ``ds/``, ``face_clip_3s/``), or in ``videos/<set>/``.

An entry with no words is skipped (as ``VideoOCRJSONForTokBench``); an entry whose ``file_name`` names
no frame is kept as an annotation error of its video.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokbench.data.base import Dataset, ImageItem
from tokbench.data.decode import file_sha256
from tokbench.errors import ConfigError
from tokbench.textface.annotations import (
    FaceInstance,
    TextInstance,
    parse_face_instance,
    parse_text_instance,
)

TEXT_SETS = ("ch3", "ds")
FACE_SET = "face_clip_3s"
ANNOTATIONS = "video_annotations"
FACE_META = "videoface_meta.json"
_FRAME_NAME = re.compile(r"^(?P<video>.+)-frame(?P<frame>\d+)\.[^./]+$")


@dataclass(frozen=True)
class TextFrame:
    """One annotation entry: the decoded frame it names (0-based) and its words."""

    entry: str
    frame: int
    texts: tuple[TextInstance, ...]


@dataclass(frozen=True)
class AnnotatedVideo:
    """A video with its annotated text frames (text sets) or per-frame faces (the face set)."""

    id: str
    subset: str
    path: Path
    text_frames: tuple[TextFrame, ...] = ()
    face_frames: tuple[tuple[FaceInstance, ...], ...] = ()
    #: Annotation entries of this video that name no frame (counted, never scored).
    bad_entries: tuple[str, ...] = ()


def parse_frame_name(file_name: str) -> tuple[str, int] | None:
    """``(video name, 0-based frame index)`` of ``<video>-frame<N>.<ext>`` (N >= 1), else None."""
    match = _FRAME_NAME.match(file_name)
    if match is None or int(match["frame"]) < 1:
        return None
    return match["video"], int(match["frame"]) - 1


class TokbenchVideoDataset(Dataset):
    """The official video annotations under ``root``; videos are decoded only when evaluated."""

    name = "tokbench-video"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        files = {f"text_{s}": self.root / ANNOTATIONS / f"text_{s}.json" for s in TEXT_SETS}
        face = next(
            (p for p in (self.root / FACE_META, self.root / ANNOTATIONS / FACE_META) if p.is_file()), None
        )
        present = {key: path for key, path in files.items() if path.is_file()}
        if face is not None:
            present["face"] = face
        if not present:
            raise ConfigError(
                f"dataset tokbench-video:{root}: found none of {ANNOTATIONS}/text_ch3.json, "
                f"{ANNOTATIONS}/text_ds.json, {FACE_META}"
            )
        self._videos: list[AnnotatedVideo] = []
        pinned: dict[str, Any] = {}
        for key, path in present.items():
            records = _json_list(path)
            if key == "face":
                self._videos += [self._face_video(record, n) for n, record in enumerate(records)]
            else:
                self._videos += self._text_videos(key.removeprefix("text_"), records)
            pinned[key] = {"file": path.relative_to(self.root).as_posix(), "sha256": file_sha256(path)[0]}
        self._manifest = {
            "name": self.name,
            "annotations": pinned,
            "missing": sorted({*files, "face"} - set(present)),
            "videos": [[v.id, v.path.stat().st_size if v.path.is_file() else None] for v in self._videos],
        }

    @classmethod
    def from_spec_argument(cls, argument: str | None) -> TokbenchVideoDataset:
        """``tokbench-video:PATH``, a local copy of the TokBench video set."""
        if not argument:
            raise ConfigError("dataset tokbench-video needs a folder: tokbench-video:PATH")
        return cls(Path(argument))

    def items(self) -> list[ImageItem]:
        """Videos, not images: an image suite given this dataset fails here."""
        raise ConfigError("dataset 'tokbench-video' holds annotated videos: use it with suite tokbench-video")

    def videos(self) -> list[AnnotatedVideo]:
        """Text videos (ch3, then ds, in order of first annotation), then face videos."""
        return list(self._videos)

    def manifest(self) -> dict[str, Any]:
        return dict(self._manifest)

    def _video_path(self, subset: str, name: str) -> Path:
        file = name if Path(name).suffix else f"{name}.mp4"
        candidates = [self.root / subset / file, self.root / "videos" / subset / file]
        return next((p for p in candidates if p.is_file()), candidates[0])

    def _text_videos(self, subset: str, records: list[Any]) -> list[AnnotatedVideo]:
        frames: dict[str, list[TextFrame]] = {}
        bad: dict[str, list[str]] = {}
        for index, record in enumerate(records):
            record = record if isinstance(record, dict) else {}
            raws = record.get("annotations")
            if not isinstance(raws, list) or not raws:
                continue  # no words: the official dataset skips the entry
            name = record.get("file_name")
            parsed = parse_frame_name(name) if isinstance(name, str) else None
            if parsed is None:
                bad.setdefault("", []).append(f"entry {index} ({name!r}) names no '<video>-frame<N>.<ext>'")
                continue
            width, height = _size(record, "width", "height")
            texts = tuple(parse_text_instance(raw, width, height) for raw in raws)
            frames.setdefault(parsed[0], []).append(TextFrame(name, parsed[1], texts))
        videos = [
            AnnotatedVideo(f"text/{subset}/{video}", subset, self._video_path(subset, video), tuple(entries))
            for video, entries in frames.items()
        ]
        if bad:
            videos.append(
                AnnotatedVideo(f"text/{subset}/(unnamed)", subset, Path(), bad_entries=tuple(bad[""]))
            )
        return videos

    def _face_video(self, record: Any, index: int) -> AnnotatedVideo:
        record = record if isinstance(record, dict) else {}
        name = record.get("video_name")
        name = name if isinstance(name, str) and name else f"(record {index})"
        width, height = _size(record, "img_width", "img_height")
        frames = []
        for raw in record.get("frame_anns") or []:
            faces = raw.get("faces") if isinstance(raw, dict) else raw
            faces = faces if isinstance(faces, list) else []
            frames.append(tuple(parse_face_instance(face, width, height) for face in faces))
        return AnnotatedVideo(
            f"face/{name}", FACE_SET, self._video_path(FACE_SET, name), face_frames=tuple(frames)
        )


def _size(record: dict[str, Any], width_key: str, height_key: str) -> tuple[Any, Any]:
    """The declared frame size, or infinite bounds when it is not given (coordinates then unchecked)."""
    width, height = record.get(width_key), record.get(height_key)
    valid = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height))
    return (width, height) if valid else (float("inf"), float("inf"))


def _json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"annotation file {path} cannot be read as JSON: {error}") from None
    if not isinstance(data, list):
        raise ConfigError(f"annotation file {path} must hold a list of records, got {type(data).__name__}")
    return data
