"""Readers for the prune suite's benchmarks in their official file formats, and their scoring.

``--data DIR`` holds one sub-directory per benchmark (any may be absent; a present one must hold
every subset its official score needs, else a ``DataError`` names what is missing):

- ``pope/`` (or ``pope/coco/``, LLaVA's layout): POPE's ``coco_pope_adversarial.json``,
  ``coco_pope_popular.json`` and ``coco_pope_random.json`` (one JSON object per line with
  ``question_id``, ``image``, ``text``, ``label``); images in ``pope/images/``.
- ``gqa/``: official ``*questions*.json`` (``{id: {imageId, question, answer, types, isBalanced}}``;
  unbalanced questions are not scored), images in ``gqa/images/<imageId>.jpg``.
- ``mme/`` (or ``mme/MME_Benchmark_release_version/``): the 14 subtask folders of the MME release.
  ``artwork``, ``celebrity``, ``landmark``, ``posters`` and ``scene`` hold ``images/`` and
  ``questions_answers_YN/``; the others hold each image beside a same-named ``.txt``. Each ``.txt``
  line is ``question<TAB>Yes|No``, two lines per image.
- ``textvqa/``: official ``TextVQA_0.5.1_val.json`` and the OCR tokens of the prompt, either
  LLaVA's question file ``llava_textvqa_val_v051_ocr.jsonl`` (its prompts are used as written) or
  ``TextVQA_Rosetta_OCR_v0.2_val.json``; images in ``textvqa/train_images/`` (or ``images/``).
- ``scienceqa/``: official ``problems.json`` (and optional ``pid_splits.json``); the IMG subset is
  the test problems with an image, at ``scienceqa/images/test/<pid>/<image>``.
- ``mmbench/``: official ``*.tsv`` (``index, question, hint, A..D, answer, category, image`` in
  base64), with the circular copies of each question at ``index + k·10⁶``, as released.

Prompts are LLaVA-1.5's evaluation prompts (``llava/eval/*`` and its question files).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from tokbench.errors import DataError
from tokbench.pruning import scoring

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
OPTION_LETTER = "\nAnswer with the option's letter from the given choices directly."
#: MME's own yes/no instruction, which LLaVA's ``llava_mme.jsonl`` replaces with ``SHORT_ANSWER``.
MME_INSTRUCTION = " Please answer yes or no."
POPE_CATEGORIES = ("adversarial", "popular", "random")
#: MME subtasks whose release folders hold ``images/`` and ``questions_answers_YN/``.
MME_YN_SUBTASKS = ("artwork", "celebrity", "landmark", "posters", "scene")
MMBENCH_COPY_STRIDE = 1_000_000
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
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Item:
    """One question: where its image is, the prompt, the target, and grouping keys for scoring."""

    benchmark: str
    qid: str
    image: Callable[[], Image.Image]
    prompt: str
    target: Any
    #: MME image / MMBench question (index mod 10⁶): items scored together.
    group: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _require(record: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in record or record[k] is None]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; the official format has {list(keys)}")


def _nonempty(items: list[Item], where: Path, expected: str) -> list[Item]:
    if not items:
        raise DataError(f"{where}: no items found; expected {expected}")
    return items


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
    """POPE's three category files; ``meta.category`` is adversarial, popular or random."""
    folder = root / "coco" if (root / "coco").is_dir() else root
    items = []
    for category in POPE_CATEGORIES:
        path = folder / f"coco_pope_{category}.json"
        if not path.is_file():
            raise DataError(
                f"{folder}: POPE category file {path.name} not found; the official score needs "
                f"{[f'coco_pope_{c}.json' for c in POPE_CATEGORIES]}"
            )
        rows = _json_lines(path)
        if not rows:
            raise DataError(f"{path}: no questions; expected one JSON object per line")
        for n, row in enumerate(rows):
            where = f"{path} record {n}"
            _require(row, ("question_id", "image", "text", "label"), where)
            items.append(
                Item(
                    "pope",
                    f"{category}/{row['question_id']}",
                    _file_image(root / "images" / row["image"], where),
                    row["text"] + SHORT_ANSWER,
                    str(row["label"]),
                    meta={"category": category},
                )
            )
    return items


def read_gqa(root: Path) -> list[Item]:
    """GQA's official question dictionaries (balanced questions only, as ``eval.py`` scores)."""
    items = []
    for path in sorted(root.glob("*questions*.json")):
        for qid, row in json.loads(path.read_text(encoding="utf-8")).items():
            where = f"{path} question {qid}"
            _require(row, ("imageId", "question", "answer"), where)
            if row.get("isBalanced") is False:
                continue
            image = _file_image(root / "images" / f"{row['imageId']}.jpg", where)
            structural = row.get("types", {}).get("structural")
            items.append(
                Item(
                    "gqa",
                    str(qid),
                    image,
                    row["question"] + SHORT_ANSWER,
                    row["answer"],
                    meta={"open": structural == "query"},
                )
            )
    return _nonempty(
        items, root, "balanced questions in *questions*.json (e.g. testdev_balanced_questions.json)"
    )


def _mme_subtask(task: Path) -> list[Item]:
    """One MME subtask folder in the release layout."""
    qa_dir = task / "questions_answers_YN"
    image_dir = task / "images" if qa_dir.is_dir() else task
    qa_dir = qa_dir if qa_dir.is_dir() else task
    items = []
    for txt in sorted(qa_dir.glob("*.txt")):
        images = sorted(p for p in image_dir.glob(f"{txt.stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{txt}: no image named {txt.stem}.jpg/.png in {image_dir}")
        lines = [t for t in txt.read_text(encoding="utf-8").splitlines() if t.strip()]
        for n, line in enumerate(lines):
            parts = line.split("\t")
            if len(parts) != 2 or MME_INSTRUCTION not in parts[0]:
                raise DataError(
                    f"{txt} line {n + 1}: expected 'question{MME_INSTRUCTION}<TAB>Yes|No', got {line!r}"
                )
            items.append(
                Item(
                    "mme",
                    f"{task.name}/{txt.stem}/{n}",
                    _file_image(images[0], str(txt)),
                    parts[0].replace(MME_INSTRUCTION, SHORT_ANSWER),
                    parts[1].strip(),
                    group=f"{task.name}/{txt.stem}",
                    meta={"subtask": task.name},
                )
            )
    layout = "questions_answers_YN/*.txt and images/" if task.name in MME_YN_SUBTASKS else "<image>.txt files"
    return _nonempty(items, task, f"the release layout ({layout})")


def read_mme(root: Path) -> list[Item]:
    """The 14 MME subtasks (Perception's 10, Cognition's 4); two yes/no questions per image."""
    release = root / "MME_Benchmark_release_version"
    root = release if release.is_dir() else root
    items = []
    for task in (*scoring.MME_SUBTASKS["perception"], *scoring.MME_SUBTASKS["cognition"]):
        folder = root / task
        if not folder.is_dir():
            raise DataError(f"{root}: MME subtask folder {task}/ not found; the release has all 14 subtasks")
        items.extend(_mme_subtask(folder))
    return items


def _llava_textvqa_question(prompt: str, where: str) -> str:
    """The question LLaVA's ``eval_textvqa.py`` parses back out of a prompt of its question file."""
    lines = prompt.split("\n")
    if "Reference OCR token: " in prompt and len(lines) == 3:
        return lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    if len(lines) == 2:
        return lines[0]
    raise DataError(f"{where}: prompt {prompt!r} is not in the form of LLaVA's TextVQA question file")


def read_textvqa(root: Path) -> list[Item]:
    """TextVQA-val with LLaVA-1.5's prompts (question, ``Reference OCR token: …``, short answer)."""
    annotations_path = root / "TextVQA_0.5.1_val.json"
    if not annotations_path.is_file():
        raise DataError(f"{root}: TextVQA needs the official TextVQA_0.5.1_val.json")
    data = json.loads(annotations_path.read_text(encoding="utf-8"))
    _require(data, ("data",), str(annotations_path))
    image_dir = root / "train_images" if (root / "train_images").is_dir() else root / "images"
    llava_path = root / "llava_textvqa_val_v051_ocr.jsonl"
    ocr_path = root / "TextVQA_Rosetta_OCR_v0.2_val.json"
    rows = {}
    for n, row in enumerate(data["data"]):
        _require(row, ("question_id", "image_id", "question", "answers"), f"{annotations_path} record {n}")
        rows[(row["image_id"], row["question"].lower())] = row
    items = []
    if llava_path.is_file():
        for n, line in enumerate(_json_lines(llava_path)):
            where = f"{llava_path} line {n + 1}"
            _require(line, ("question_id", "image", "text"), where)
            key = (line["question_id"], _llava_textvqa_question(line["text"], where).lower())
            if key not in rows:
                raise DataError(f"{where}: no annotation in {annotations_path.name} for {key}")
            row = rows[key]
            image = _file_image(image_dir / line["image"], where)
            items.append(Item("textvqa", str(row["question_id"]), image, line["text"], row["answers"]))
    elif ocr_path.is_file():
        ocr = json.loads(ocr_path.read_text(encoding="utf-8"))
        _require(ocr, ("data",), str(ocr_path))
        tokens = {entry["image_id"]: entry["ocr_tokens"] for entry in ocr["data"]}
        for row in rows.values():
            where = f"{annotations_path} question {row['question_id']}"
            if row["image_id"] not in tokens:
                raise DataError(f"{where}: image {row['image_id']} has no entry in {ocr_path.name}")
            prompt = (
                f"{row['question']}\nReference OCR token: {', '.join(tokens[row['image_id']])}{SHORT_ANSWER}"
            )
            image = _file_image(image_dir / f"{row['image_id']}.jpg", where)
            items.append(Item("textvqa", str(row["question_id"]), image, prompt, row["answers"]))
    else:
        raise DataError(
            f"{root}: TextVQA's LLaVA-1.5 prompts need OCR tokens: add LLaVA's {llava_path.name} "
            f"(from its eval.zip) or TextVQA's {ocr_path.name}"
        )
    return _nonempty(items, root, "questions of TextVQA_0.5.1_val.json")


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
    return _nonempty(items, root, "test problems with an image in problems.json")


def _base64_image(data: str, where: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        try:
            return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        except (ValueError, OSError) as exc:
            raise DataError(f"{where}: image field is not a base64 image ({exc})") from None

    return load


def _missing(value: str | None) -> bool:
    return value is None or value in ("", "nan")


def read_mmbench(root: Path, circular: bool = True) -> list[Item]:
    """MMBench TSV rows as released, circular copies included (``circular=False``: main rows only);
    ``group`` is the question (``index mod 10⁶``)."""
    csv.field_size_limit(sys.maxsize)
    items = []
    for path in sorted(root.glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for n, row in enumerate(csv.DictReader(handle, delimiter="\t")):
                where = f"{path} row {n + 2}"
                _require(row, ("index", "question", "A", "B", "answer", "image"), where)
                index = int(row["index"])
                if not circular and index >= MMBENCH_COPY_STRIDE:
                    continue
                options = {}
                for letter in "ABCD":  # LLaVA stops at the first missing option
                    if _missing(row.get(letter)):
                        break
                    options[letter] = row[letter]
                hint = "" if _missing(row.get("hint")) else f"{row['hint']}\n"
                prompt = f"{hint}{row['question']}\n{_options(list(options.values()))}{OPTION_LETTER}"
                items.append(
                    Item(
                        "mmb",
                        str(index),
                        _base64_image(row["image"], where),
                        prompt,
                        row["answer"].strip(),
                        str(index % MMBENCH_COPY_STRIDE),
                        {"options": options},
                    )
                )
    return _nonempty(items, root, "rows of an MMBench .tsv")


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
    pairs = list(zip(items, predictions, strict=True))
    if name == "pope":
        return _pope(pairs)
    if name == "gqa":
        return _gqa(pairs)
    if name == "mme":
        scores = scoring.mme_scores([(i.meta["subtask"], i.group, p, i.target) for i, p in pairs])
        return _mme_keys(scores)
    if name == "textvqa":
        return {"textvqa": 100.0 * _mean([scoring.vqa_accuracy(p, i.target) for i, p in pairs])}
    if name == "sqa":
        return {
            "sqa": 100.0
            * _mean([scoring.scienceqa_letter(p, i.meta["letters"]) == i.target for i, p in pairs])
        }
    return {"mmb": 100.0 * _mean(list(mmbench_questions(pairs).values()))}


def _pope(pairs: list[tuple[Item, str]]) -> dict[str, float]:
    """Per category accuracy, precision, recall, F1 and yes-ratio; ``pope`` is the mean F1."""
    scores: dict[str, float] = {}
    per_category = {}
    for category in POPE_CATEGORIES:
        chosen = [(i, p) for i, p in pairs if i.meta["category"] == category]
        if chosen:
            per_category[category] = scoring.pope_scores(
                [p for _, p in chosen], [i.target for i, _ in chosen]
            )
            for stat, value in per_category[category].items():
                scores[f"pope_{category}_{stat}"] = 100.0 * value
    scores["pope"] = 100.0 * _mean([s["f1"] for s in per_category.values()])
    scores["pope_acc"] = 100.0 * _mean([s["acc"] for s in per_category.values()])
    return scores


def _gqa(pairs: list[tuple[Item, str]]) -> dict[str, float]:
    """Accuracy over every question, and over binary and open (``query``) questions."""
    correct = [(scoring.gqa_correct(p, i.target), i.meta["open"]) for i, p in pairs]
    scores = {"gqa": 100.0 * _mean([ok for ok, _ in correct])}
    for key, is_open in (("gqa_binary", False), ("gqa_open", True)):
        chosen = [ok for ok, kind in correct if kind == is_open]
        if chosen:
            scores[key] = 100.0 * _mean(chosen)
    return scores


def _mme_keys(scores: dict[str, float]) -> dict[str, float]:
    """``mme`` is Perception + Cognition (the sum VisionZip-style tables and tokbench's reported
    table quote), ``mme_perception`` what LLaVA-1.5 and FasterVLM quote, then every subtask."""
    totals = {total: scores[total] for total in scoring.MME_SUBTASKS if total in scores}
    keyed = {"mme": sum(totals.values())}
    keyed.update({f"mme_{total}": value for total, value in totals.items()})
    keyed.update({f"mme_{task.lower()}": value for task, value in scores.items() if task not in totals})
    return keyed


def mmbench_questions(pairs: list[tuple[Item, str]]) -> dict[str, bool]:
    """Circular accuracy per question (``index mod 10⁶``): right only if every answered copy is."""
    groups: dict[str, list[bool]] = {}
    for item, prediction in pairs:
        right = scoring.mmbench_letter(prediction, item.meta["options"]) == item.target
        groups.setdefault(item.group, []).append(right)
    return scoring.circular_correct(groups)


def _mean(values: list[bool] | list[float]) -> float:
    return float(sum(values)) / len(values) if values else float("nan")
