"""ocr_batches: official reproduces eval_text.py's PARSeq batches: which instances are scored, and the
ground truths each batch is read with (``shared/reference/protocols/tokbench/batching``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

import tokbench
from tokbench.errors import ConfigError
from tokbench.judges.ocr import TextRecognizer
from tokbench.judges.registry import JUDGES
from tokbench.suites import SUITE_PATH_ENV
from tokbench.textface.annotations import AnnotatedImage
from tokbench.textface.details import details_path, read_details
from tokbench.textface.settings import ocr_units

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "protocols" / "tokbench" / "batching"

SUITE = """
include: tokbench
name: tb-batches
version: "test"
dataset: tokbench:{root}
judges:
  ocr:
    name: recording-parseq
metrics:
  - name: text-fidelity
    judge: ocr
primary: t_acc_256_mean
settings:
  bucket_edges: "855802d"
  save: as-original
  ocr_batches: official
  resolutions:
    - {{resolution: 256, text: [0.02, 0.03, 0.04, 1.0], face: [0.1, 0.2, 0.3, 1.0]}}
"""


class RecordingParseq(TextRecognizer):
    """Reads every crop as its ground truth and records each call as PARSeq would decode it."""

    name = "recording-parseq"
    reads_with_targets = True
    calls: ClassVar[list[dict[str, int]]] = []

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def read(self, crops: Sequence[np.ndarray], targets: Sequence[str] | None = None) -> list[str]:
        assert targets is not None and len(targets) == len(crops)
        longest = max(len(t) for t in targets)
        self.calls.append({"batch_size": len(crops), "max_len_argument": min(longest, 30)})
        return list(targets)


@pytest.fixture
def recording_judge() -> Iterator[type[RecordingParseq]]:
    reference = json.loads((GOLDEN / "batching.json").read_text(encoding="utf-8"))
    RecordingParseq.vocabulary = reference["vocab_french"]
    RecordingParseq.calls = []
    JUDGES.register(RecordingParseq.name, RecordingParseq)
    yield RecordingParseq
    JUDGES.unregister(RecordingParseq.name)


@pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"reference data {GOLDEN} is absent")
def test_official_batches_score_the_official_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording_judge: type[RecordingParseq]
) -> None:
    reference = json.loads((GOLDEN / "batching.json").read_text(encoding="utf-8"))
    annotation = json.loads((GOLDEN / "text_synthetic_annotations.json").read_text(encoding="utf-8"))
    (tmp_path / "data" / "annotations").mkdir(parents=True)
    (tmp_path / "data" / "annotations" / "text_ic13.json").write_text(json.dumps(annotation))
    images = tmp_path / "data" / "images" / "text_data" / "ic13"
    images.mkdir(parents=True)
    for entry in annotation:
        Image.new("RGB", (entry["width"], entry["height"]), (200, 200, 190)).save(images / entry["file_name"])
    (tmp_path / "tb-batches.yaml").write_text(SUITE.format(root=tmp_path / "data"))
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    result = tokbench.evaluate("identity", suite="tb-batches", store=tmp_path / "store", batch_size=2)
    index = {
        (f"text/ic13/{e['file_name']}", n): a["idx"]
        for e in annotation
        for n, a in enumerate(e["annotations"])
    }
    summary = result.record["tokbench"]
    assert summary["ocr_batches"] == {"mode": "official", "read": 2, "dropped": 1}
    # batch 1 holds "two words" and "Straße": its 62 valid words are dropped with them
    assert summary["not_scored"] == {"text_batch": 64}
    calls = [
        {k: c[k] for k in ("batch_size", "max_len_argument")}
        for c in reference["decode_calls_during_evaluate"]
    ]
    assert recording_judge.calls == calls
    assert result.stored is not None
    rows = read_details(details_path(result.stored.path))
    scored = [index[(r["image"], r["index"])] for r in rows if r["error"] is None]
    assert scored == reference["scored_instance_indices"]  # in dataset order


def test_units_cut_only_at_batch_boundaries_of_one_annotation_file() -> None:
    def image(subset: str, words: int) -> AnnotatedImage:
        return AnnotatedImage(
            f"{subset}/{words}",
            "",
            1,
            1,
            lambda: Image.new("RGB", (1, 1)),
            texts=(None,) * words,
            subset=subset,
        )  # type: ignore[arg-type]

    images = [image("a", 64), image("a", 10), image("a", 54), image("a", 5), image("b", 3), image("face", 0)]
    assert ocr_units(images, "official") == [[0], [1, 2], [3], [4], [5]]
    assert ocr_units(images, "per-instance") == [[i] for i in range(6)]


def test_official_batches_need_a_judge_that_reads_with_ground_truths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = SUITE.format(root="").replace("recording-parseq", "easyocr-en-g2")
    suite = suite.replace("tokbench:", "tokbench-embedded")
    (tmp_path / "tb-batches.yaml").write_text(suite)
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="judge 'easyocr-en-g2' decodes without them"):
        tokbench.evaluate("identity", suite="tb-batches", store=None, limit=1)
