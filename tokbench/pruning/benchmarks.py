"""Readers for the prune suite's benchmarks in their official file formats, and their scoring.

``--data DIR`` holds one sub-directory per benchmark (any may be absent):

- ``pope/``: official question files (``*.json``/``*.jsonl``, one JSON object per line with
  ``question_id``, ``image``, ``text``, ``label``), images in ``pope/images/``.
- ``gqa/``: official ``*questions*.json`` (``{id: {imageId, question, answer, ...}}``), images in
  ``gqa/images/<imageId>.jpg``.
- ``mme/<Subtask>/``: the release layout, either ``images/`` + ``questions_answers_YES_NO/`` or the
  image and a same-named ``.txt`` side by side; each ``.txt`` line is ``question<TAB>Yes|No``.
- ``textvqa/``: official ``TextVQA_0.5.1_*.json`` (``{"data": [{question_id, image_id, question,
  answers}]}``), images in ``textvqa/train_images/`` (or ``images/``) as ``<image_id>.jpg``.
- ``scienceqa/``: official ``problems.json`` (and optional ``pid_splits.json``); the IMG subset is
  the test problems with an image, at ``scienceqa/images/test/<pid>/<image>``.
- ``mmbench/``: official ``*.tsv`` (``index, question, hint, A..D, answer, category, image`` base64).

Prompts follow LLaVA-1.5's evaluation (short-answer and option-letter instructions).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from tokbench.errors import DataError
from tokbench.pruning import scoring

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
OPTION_LETTER = "\nAnswer with the option's letter from the given choices directly."
#: Benchmark → result group (kept apart in reports).
GROUPS = {
    "gqa": "general",
    "mme": "general",
    "sqa": "general",
    "mmb": "general",
    "textvqa": "ocr_document",
    "pope": "hallucination",
}
DIRECTORIES = {
    "pope": "pope",
    "gqa": "gqa",
    "mme": "mme",
    "textvqa": "textvqa",
    "sqa": "scienceqa",
    "mmb": "mmbench",
}


@dataclass(frozen=True)
class Item:
    """One question: where its image is, the prompt, the target, and grouping keys for scoring."""

    benchmark: str
    qid: str
    image: Callable[[], Image.Image]
    prompt: str
    target: Any
    #: MME image / MMBench question index: items scored together.
    group: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _require(record: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in record or record[k] is None]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; the official format has {list(keys)}")


def _file_image(path: Path, where: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        if not path.is_file():
            raise DataError(f"{where}: image {path} not found")
        with Image.open(path) as image:
            return image.convert("RGB")

    return load


def _json_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_pope(root: Path) -> list[Item]:
    """POPE question files (random/popular/adversarial); ``meta.subset`` is the file stem."""
    items = []
    for path in sorted([*root.glob("*.json"), *root.glob("*.jsonl")]):
        for n, row in enumerate(_json_lines(path)):
            where = f"{path} record {n}"
            _require(row, ("question_id", "image", "text", "label"), where)
            items.append(
                Item(
                    "pope",
                    f"{path.stem}/{row['question_id']}",
                    _file_image(root / "images" / row["image"], where),
                    row["text"] + SHORT_ANSWER,
                    str(row["label"]).strip().lower(),
                    meta={"subset": path.stem},
                )
            )
    return items


def read_gqa(root: Path) -> list[Item]:
    """GQA's official question dictionaries."""
    items = []
    for path in sorted(root.glob("*questions*.json")):
        for qid, row in json.loads(path.read_text(encoding="utf-8")).items():
            where = f"{path} question {qid}"
            _require(row, ("imageId", "question", "answer"), where)
            image = _file_image(root / "images" / f"{row['imageId']}.jpg", where)
            items.append(Item("gqa", str(qid), image, row["question"] + SHORT_ANSWER, row["answer"]))
    return items


def read_mme(root: Path) -> list[Item]:
    """MME subtasks in the release layout; two yes/no questions per image."""
    items = []
    for task in sorted(p for p in root.iterdir() if p.is_dir()):
        qa_dir = task / "questions_answers_YES_NO"
        image_dir = task / "images" if qa_dir.is_dir() else task
        qa_dir = qa_dir if qa_dir.is_dir() else task
        for txt in sorted(qa_dir.glob("*.txt")):
            images = [
                p for p in image_dir.glob(f"{txt.stem}.*") if p.suffix.lower() in (".jpg", ".png", ".jpeg")
            ]
            where = f"{txt}"
            if not images:
                raise DataError(f"{where}: no image named {txt.stem}.jpg/.png in {image_dir}")
            for n, line in enumerate(t for t in txt.read_text(encoding="utf-8").splitlines() if t.strip()):
                parts = line.split("\t")
                if len(parts) != 2:
                    raise DataError(f"{where} line {n + 1}: expected 'question<TAB>answer', got {line!r}")
                items.append(
                    Item(
                        "mme",
                        f"{task.name}/{txt.stem}/{n}",
                        _file_image(images[0], where),
                        parts[0].strip() + SHORT_ANSWER,
                        parts[1].strip().lower(),
                        group=f"{task.name}/{txt.stem}",
                        meta={"subtask": task.name},
                    )
                )
    return items


def read_textvqa(root: Path) -> list[Item]:
    """TextVQA's official JSON (ten answers per question)."""
    items = []
    image_dir = root / "train_images" if (root / "train_images").is_dir() else root / "images"
    for path in sorted(root.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        _require(data, ("data",), str(path))
        for n, row in enumerate(data["data"]):
            where = f"{path} record {n}"
            _require(row, ("question_id", "image_id", "question", "answers"), where)
            image = _file_image(image_dir / f"{row['image_id']}.jpg", where)
            items.append(
                Item(
                    "textvqa", str(row["question_id"]), image, row["question"] + SHORT_ANSWER, row["answers"]
                )
            )
    return items


def _options(choices: list[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))


def read_scienceqa(root: Path) -> list[Item]:
    """ScienceQA-IMG: test problems with an image; the target is the answer's letter."""
    path = root / "problems.json"
    if not path.is_file():
        raise DataError(f"{root}: ScienceQA needs the official problems.json")
    problems = json.loads(path.read_text(encoding="utf-8"))
    splits_path = root / "pid_splits.json"
    test = set(json.loads(splits_path.read_text())["test"]) if splits_path.is_file() else None
    items = []
    for pid, row in problems.items():
        where = f"{path} problem {pid}"
        _require(row, ("question", "choices", "answer", "split"), where)
        in_test = pid in test if test is not None else row["split"] == "test"
        if not in_test or not row.get("image"):
            continue
        context = f"Context: {row['hint']}\n" if row.get("hint") else ""
        prompt = f"{context}{row['question']}\n{_options(row['choices'])}{OPTION_LETTER}"
        image = _file_image(root / "images" / "test" / pid / row["image"], where)
        letters = "".join(chr(65 + i) for i in range(len(row["choices"])))
        items.append(Item("sqa", pid, image, prompt, chr(65 + int(row["answer"])), meta={"letters": letters}))
    return items


def _base64_image(data: str, where: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        try:
            return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        except (ValueError, OSError) as exc:
            raise DataError(f"{where}: image field is not a base64 image ({exc})") from None

    return load


def read_mmbench(root: Path, circular: bool = True) -> list[Item]:
    """MMBench TSV; with ``circular`` every question appears once per rotation of its options."""
    csv.field_size_limit(sys.maxsize)
    items = []
    for path in sorted(root.glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for n, row in enumerate(csv.DictReader(handle, delimiter="\t")):
                where = f"{path} row {n + 2}"
                _require(row, ("index", "question", "A", "B", "answer", "image"), where)
                letters = [c for c in "ABCD" if row.get(c) not in (None, "", "nan")]
                choices = [row[c] for c in letters]
                answer = choices[letters.index(row["answer"].strip())]
                hint = f"{row['hint']}\n" if row.get("hint") not in (None, "", "nan") else ""
                image = _base64_image(row["image"], where)
                for shift in range(len(choices) if circular else 1):
                    rotated = choices[shift:] + choices[:shift]
                    prompt = f"{hint}{row['question']}\n{_options(rotated)}{OPTION_LETTER}"
                    target = chr(65 + rotated.index(answer))
                    meta = {"letters": "".join(letters), "category": row.get("category", "")}
                    items.append(
                        Item("mmb", f"{row['index']}/{shift}", image, prompt, target, str(row["index"]), meta)
                    )
    return items


READERS: dict[str, Callable[[Path], list[Item]]] = {
    "pope": read_pope,
    "gqa": read_gqa,
    "mme": read_mme,
    "textvqa": read_textvqa,
    "sqa": read_scienceqa,
    "mmb": read_mmbench,
}


def read_benchmark(name: str, data_root: Path, circular: bool = True) -> list[Item] | None:
    """The items of benchmark ``name`` under ``data_root``, or None when its directory is absent."""
    directory = Path(data_root) / DIRECTORIES[name]
    if not directory.is_dir():
        return None
    if name == "mmb":
        return read_mmbench(directory, circular)
    return READERS[name](directory)


def score_benchmark(name: str, items: list[Item], predictions: list[str]) -> dict[str, float]:
    """Official score(s) of ``predictions`` (in % where the benchmark reports %), keyed by metric."""
    if name == "pope":
        return scoring.pope_scores(predictions, [i.target for i in items])
    if name == "gqa":
        return {
            "gqa": 100.0
            * _mean([scoring.gqa_correct(p, i.target) for p, i in zip(predictions, items, strict=True)])
        }
    if name == "mme":
        rows = [(i.meta["subtask"], i.group, p, i.target) for p, i in zip(predictions, items, strict=True)]
        return scoring.mme_scores(rows)
    if name == "textvqa":
        return {
            "textvqa": 100.0
            * _mean([scoring.vqa_accuracy(p, i.target) for p, i in zip(predictions, items, strict=True)])
        }
    correct = [
        scoring.choice_letter(p, i.meta["letters"]) == i.target
        for p, i in zip(predictions, items, strict=True)
    ]
    if name == "sqa":
        return {"sqa": 100.0 * _mean(correct)}
    by_question: dict[str, list[bool]] = defaultdict(list)
    for ok, item in zip(correct, items, strict=True):
        by_question[item.group].append(ok)
    return {"mmb": 100.0 * _mean(list(scoring.circular_correct(by_question).values()))}


def _mean(values: list[bool] | list[float]) -> float:
    return float(sum(values)) / len(values) if values else float("nan")
