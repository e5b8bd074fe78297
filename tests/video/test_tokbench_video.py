"""TokBench-Video: the official frame geometry and pixels (video.json), the frame and pairing rules, the
official writer's scaling, an end-to-end run on a tiny synthetic set, and the reported leaderboard rows."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

import tokbench
from tokbench.judges.ocr import TextRecognizer
from tokbench.judges.registry import JUDGES
from tokbench.suites import SUITE_PATH_ENV
from tokbench.textface.details import details_path, read_details
from tokbench.textface.embedded import EmbeddedTokbenchDataset
from tokbench.textface.video_dataset import TokbenchVideoDataset, parse_frame_name
from tokbench.textface.video_frames import (
    accepted_length,
    chunk_bounds,
    frame_geometry,
    macro_block_size,
    pad_with_last,
    process_frame,
    read_video,
    restore_frame,
    writer_round_trip,
)

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "protocols" / "tokbench" / "video"
needs_golden = pytest.mark.skipif(not (GOLDEN / "video.json").is_file(), reason="protocol goldens absent")
FONT = Path(__import__("matplotlib").__file__).parent / "mpl-data/fonts/ttf/DejaVuSans.ttf"
WORDS = ("Route 66", "Bakery", "Zone 5")
#: Annotated ratios (precomputed data in the official files), one per bucket at 256: small, medium, large.
RATIOS = (0.015, 0.025, 0.2)
FACE_RATIOS = (0.07, 0.15, 0.5)


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@needs_golden
def test_geometry_meta_equals_the_official_meta_for_every_size() -> None:
    golden = json.loads((GOLDEN / "video.json").read_text())
    entries = golden["resize_padding_images_meta"]
    assert len(entries) == 26
    for entry in entries:
        height, width = entry["original_size"]
        geometry = frame_geometry(height, width, min(entry["resized_size"]))
        expected = {k: v for k, v in entry.items() if k not in ("processed_shape", "stepvideo_short_size")}
        assert geometry.meta() == expected, entry


@needs_golden
def test_processed_and_restored_pixels_equal_the_official_outputs() -> None:
    examples = json.loads((GOLDEN / "video.json").read_text())["pixel_examples"]
    for example in examples:
        frame = np.asarray(Image.open(GOLDEN / example["frame"]).convert("RGB"))
        geometry = frame_geometry(*frame.shape[:2], example["short_size"])
        assert geometry.meta() == example["meta"]
        processed = process_frame(frame, geometry)
        assert _sha(processed) == example["processed_sha256"], example["processed"]
        assert _sha(restore_frame(processed, geometry)) == example["restored_sha256"], example["restored"]


@needs_golden
def test_writer_scales_sides_to_multiples_of_16_as_imageio_did() -> None:
    writer = json.loads((GOLDEN / "video.json").read_text())["imageio_writer_defaults"]
    for size in ("60x100", "64x96", "135x240"):
        height, width = writer[size]["written_HxW"]
        assert (*macro_block_size(height, width), 3) == tuple(writer[size]["read_back_shape"])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (60, 100, 3), dtype=np.uint8) for _ in range(5)]
    back = writer_round_trip(frames, Fraction(25))
    assert len(back) == writer["60x100"]["n_frames_back"] and back[0].shape == (64, 112, 3)


def test_chunks_pad_with_the_last_frame_to_an_accepted_length() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert accepted_length(10, 4, 1) == 13 and accepted_length(9, 8, 1) == 9 and accepted_length(1, 1, 0) == 1
    assert accepted_length(18, 17, 0) == 34
    clip = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    padded = pad_with_last(clip, 5)
    assert padded.shape[0] == 5 and bool((padded[3:] == 2).all()) and bool((padded[:3] == clip).all())


def test_frame_names_map_frame_n_to_decoded_frame_n_minus_1() -> None:
    assert parse_frame_name("clip_7-frame12.jpg") == ("clip_7", 11)
    assert parse_frame_name("a-frame-b-frame1.png") == ("a-frame-b", 0)
    assert parse_frame_name("clip-frame0.jpg") is None and parse_frame_name("clip.jpg") is None


# --- the synthetic set ----------------------------------------------------------------------------------


def _write(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=8)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "rgb24"
        stream.options = {"crf": "0"}
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))


def _text_clip() -> tuple[list[np.ndarray], list[list[dict]]]:
    """Four 160x288 frames with three words moving 3 px a frame; the boxes of each frame."""
    font = ImageFont.truetype(str(FONT), 30)
    frames, boxes = [], []
    for k in range(4):
        image = Image.new("RGB", (288, 160), (235, 232, 220))
        draw = ImageDraw.Draw(image)
        annotations = []
        for n, word in enumerate(WORDS):
            x, y = 20 + 3 * k + 50 * n, 10 + 48 * n
            left, top, right, bottom = draw.textbbox((x, y), word, font=font)
            draw.text((x, y), word, font=font, fill=(20, 20, 30))
            box = [left - 4, top - 4, right + 4, bottom + 4]
            annotations.append({"rec": word, "bbox": box, "ratio": RATIOS[n]})
        frames.append(np.asarray(image))
        boxes.append(annotations)
    return frames, boxes


def _face_clip() -> tuple[list[np.ndarray], list[list[dict]]]:
    """Four 240x240 frames cut from an embedded face scene (shifted 2 px a frame) and the landmarks."""
    scene = next(a for a in EmbeddedTokbenchDataset().annotated_images() if a.faces)
    face = min(scene.faces, key=lambda f: abs(f.box[3] - f.box[1] - 90))  # a 90-px face
    pixels = np.asarray(scene.load())
    cx, cy = int((face.box[0] + face.box[2]) / 2), int((face.box[1] + face.box[3]) / 2)
    frames, anns = [], []
    for k in range(4):
        x0, y0 = max(cx - 120 + 2 * k, 0), max(cy - 120, 0)
        frames.append(np.ascontiguousarray(pixels[y0 : y0 + 240, x0 : x0 + 240]))
        kps = [[x - x0, y - y0] for x, y in face.landmarks]
        box = [face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0]
        anns.append([{"kps": kps, "box": box, "ratio": FACE_RATIOS[k % 3]}])
    return frames, anns


@pytest.fixture(scope="module")
def video_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ch3: one text clip (entries for frames 2 and 4, a wordless entry, a 1-px box); faces: one clip of
    4 frames with 3 annotated frames; in the official layout."""
    root = tmp_path_factory.mktemp("tokbench-video")
    frames, boxes = _text_clip()
    _write(root / "ch3" / "words.mp4", frames)
    thin = {"rec": "Thin", "bbox": [30, 30, 31, 60], "ratio": 0.1}
    entries = [
        {"file_name": "words-frame2.jpg", "height": 160, "width": 288, "annotations": [*boxes[1], thin]},
        {"file_name": "words-frame3.jpg", "height": 160, "width": 288, "annotations": []},
        {"file_name": "words-frame4.jpg", "height": 160, "width": 288, "annotations": boxes[3]},
    ]
    (root / "video_annotations").mkdir()
    (root / "video_annotations" / "text_ch3.json").write_text(json.dumps(entries))
    frames, anns = _face_clip()
    _write(root / "face_clip_3s" / "face.mp4", frames)
    meta = [{"video_name": "face.mp4", "img_height": 240, "img_width": 240, "frame_anns": anns[:3]}]
    (root / "videoface_meta.json").write_text(json.dumps(meta))
    return root


def test_dataset_reads_the_official_layout(video_set: Path) -> None:
    videos = TokbenchVideoDataset(video_set).videos()
    assert [v.id for v in videos] == ["text/ch3/words", "face/face.mp4"]
    text, face = videos
    assert [(f.entry, f.frame) for f in text.text_frames] == [
        ("words-frame2.jpg", 1),
        ("words-frame4.jpg", 3),
    ]
    assert [t.text for t in text.text_frames[0].texts] == [*WORDS, "Thin"]
    assert len(face.face_frames) == 3 and face.path.is_file()
    frames, rate = read_video(text.path, text.id)
    assert len(frames) == 4 and rate == 8 and frames[0].shape == (160, 288, 3)


SUITE = """
include: tokbench-video
name: tbv-256
version: "1"
settings:
  bucket_edges: "855802d"
  save: lossless
  ocr_batches: per-instance
  chunk_frames: 3
  resolutions:
    - {resolution: 256, text: [0.01, 0.02, 0.03, 1.0], face: [0.05, 0.1, 0.2, 1.0]}
"""


def test_identity_run_writes_a_record_with_the_frame_rules(
    video_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tbv-256.yaml").write_text(SUITE)
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    result = tokbench.evaluate(
        "video-identity", suite="tbv-256", data=f"tokbench-video:{video_set}", store=tmp_path / "s"
    )
    record = result.record
    assert math.isfinite(record["metrics"]["t_acc_256_mean"]) and math.isfinite(
        record["metrics"]["f_sim_256_mean"]
    )
    summary = record["tokbench_video"]
    # the 1-px box is dropped, the wordless entry skipped
    assert summary["not_scored"] == {"text_tiny_crop": 1}
    rows = read_details(details_path(Path(result.stored.path)))
    texts = [(r["frame"], r["gt"]) for r in rows if r["kind"] == "text"]
    assert texts == [(1, w) for w in WORDS] + [(3, w) for w in WORDS]
    faces = [r for r in rows if r["kind"] == "face"]
    assert [r["frame"] for r in faces] == [0, 1, 2]  # 4 decoded frames, 3 annotated: the shorter list wins
    assert all(r["score"]["sim"] > 0.9 for r in faces)
    assert summary["scored_per_bucket"]["256"]["text"] == {
        "below": 0,
        "above": 0,
        "small": 2,
        "medium": 2,
        "large": 2,
    }
    # the official writer step on the same set: frames are multiples of 16, so no stretch, same pairs
    (tmp_path / "tbv-256.yaml").write_text(SUITE.replace("save: lossless", "save: imageio-libx264"))
    written = tokbench.evaluate("video-identity", suite="tbv-256", data=f"tokbench-video:{video_set}")
    assert written.record["protocol"]["save"]["mode"] == "imageio-libx264"
    assert written.record["protocol_hash"] != record["protocol_hash"]
    assert math.isfinite(written.record["metrics"]["t_acc_256_mean"])
    assert written.record["tokbench_video"]["scored_per_bucket"] == summary["scored_per_bucket"]


def test_reported_video_rows_load_and_match_the_committed_records() -> None:
    from tokbench.reported import read_published
    from tokbench.store import RecordStore

    repo = Path(__file__).resolve().parents[2]
    records = read_published(repo / "leaderboards" / "published-video", created_at="2026-11-22T00:00:00Z")
    assert len(records) == 16 and {r["suite"]["name"] for r in records} == {"tokbench-video"}
    assert {r["protocol"]["resolution"] for r in records} == {256, 480}
    committed = {
        json.loads(p.read_text())["record_id"]: json.loads(p.read_text())
        for p in (repo / "leaderboards" / "reported" / "tokbench-video").glob("*.json")
    }
    for record in records:
        assert committed[record["record_id"]]["metrics"] == record["metrics"]
    loaded = RecordStore(repo / "leaderboards").records(suite="tokbench-video", source="reported")
    assert sorted(r["record_id"] for r in loaded) == sorted(committed)


def test_the_writer_stretches_a_frame_whose_height_is_not_a_multiple_of_16() -> None:
    frames = [np.zeros((135, 240, 3), np.uint8) for _ in range(3)]
    for frame in frames:
        frame[100:110] = 255  # a white band, rows 100-109 (centre 104.5)
    back = writer_round_trip(frames, Fraction(8))
    rows = back[0].mean(axis=(1, 2))
    centre = float((rows * np.arange(len(rows))).sum() / rows.sum())
    assert back[0].shape == (144, 240, 3) and len(back) == 3
    assert abs(centre - 104.5 * 144 / 135) < 1.0  # the band moved with the 135 -> 144 stretch (+6.9 rows)


BATCHING = GOLDEN.parent / "batching"


class _RecordingParseq(TextRecognizer):
    """Reads every crop as its ground truth; records each batch as PARSeq would decode it."""

    name = "recording-parseq-video"
    reads_with_targets = True
    calls: ClassVar[list[dict[str, int]]] = []

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def read(self, crops: Sequence[np.ndarray], targets: Sequence[str] | None = None) -> list[str]:
        if targets is None or len(targets) != len(crops):
            raise ValueError("official batches are read with their ground truths")
        self.calls.append({"batch_size": len(crops), "max_len_argument": min(max(map(len, targets)), 30)})
        return list(targets)


@pytest.mark.skipif(not BATCHING.is_dir(), reason="protocol goldens absent")
def test_official_ocr_batches_score_the_official_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference's 5 annotated images as frames 1-5 of one video: the same 64-crop batches are read,
    the batch holding 'two words' and 'Straße' is dropped whole, the same instances are scored."""
    reference = json.loads((BATCHING / "batching.json").read_text(encoding="utf-8"))
    entries = json.loads((BATCHING / "text_synthetic_annotations.json").read_text(encoding="utf-8"))
    for number, entry in enumerate(entries, start=1):
        entry["file_name"] = f"synth-frame{number}.png"
    root = tmp_path / "data"
    _write(root / "ch3" / "synth.mp4", [np.full((480, 640, 3), 200, np.uint8) for _ in entries])
    (root / "video_annotations").mkdir()
    (root / "video_annotations" / "text_ch3.json").write_text(json.dumps(entries))
    suite = SUITE.replace("ocr_batches: per-instance", "ocr_batches: official")
    (tmp_path / "tbv-batches.yaml").write_text(
        suite.replace("name: tbv-256", "name: tbv-batches")
        + "judges: {ocr: {name: recording-parseq-video}}\n"
        "metrics: [{name: text-fidelity, judge: ocr}]\n"
    )
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    _RecordingParseq.vocabulary, _RecordingParseq.calls = reference["vocab_french"], []
    JUDGES.register(_RecordingParseq.name, _RecordingParseq)
    try:
        result = tokbench.evaluate(
            "video-identity", suite="tbv-batches", data=f"tokbench-video:{root}", store=tmp_path
        )
    finally:
        JUDGES.unregister(_RecordingParseq.name)
    assert result.record["tokbench_video"]["not_scored"] == {"text_batch_dropped": 64}
    expected_calls = [
        {k: c[k] for k in ("batch_size", "max_len_argument")}
        for c in reference["decode_calls_during_evaluate"]
    ]
    assert _RecordingParseq.calls == expected_calls
    index = {(e["file_name"], n): a["idx"] for e in entries for n, a in enumerate(e["annotations"])}
    rows = read_details(details_path(Path(result.stored.path)))
    scored = [index[f"synth-frame{r['frame'] + 1}.png", r["index"]] for r in rows if r["kind"] == "text"]
    assert scored == reference["scored_instance_indices"] and len(scored) == reference["n_scored"]
