"""Write the small benchmark fixture (a few items per official format, tiny generated images).

Run ``python tests/pruning/make_fixtures.py`` to regenerate ``tests/pruning/fixtures/benchmarks``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURE = Path(__file__).parent / "fixtures" / "benchmarks"


def _image(seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _pope(root: Path) -> None:
    """The three POPE category files (LLaVA's ``pope/coco/`` layout) over two images."""
    questions = [("p1.jpg", "cat", "yes"), ("p1.jpg", "car", "no"), ("p2.jpg", "dog", "yes")]
    for category in ("adversarial", "popular", "random"):
        rows = [
            {
                "question_id": n + 1,
                "image": image,
                "text": f"Is there a {thing} in the image?",
                "label": label,
            }
            for n, (image, thing, label) in enumerate(questions)
        ]
        path = root / "pope" / "coco" / f"coco_pope_{category}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for name, seed in (("p1.jpg", 1), ("p2.jpg", 2)):
        _save(_image(seed), root / "pope" / "images" / name)


def _mme(root: Path) -> None:
    """All 14 MME subtasks in the release layout, one image and two questions each."""
    subtasks = (
        "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
        "OCR", "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning",
    )  # fmt: skip
    questions = (
        "Is there a cat in this image? Please answer yes or no.\tYes\n"
        "Is there a dog in this image? Please answer yes or no.\tNo\n"
    )
    for seed, task in enumerate(subtasks, start=20):
        folder = root / "mme" / task
        if task in ("artwork", "celebrity", "landmark", "posters", "scene"):
            _save(_image(seed), folder / "images" / "000001.jpg")
            (folder / "questions_answers_YN").mkdir(parents=True, exist_ok=True)
            (folder / "questions_answers_YN" / "000001.txt").write_text(questions)
        else:
            _save(_image(seed), folder / "000001.png")
            (folder / "000001.txt").write_text(questions)


def _mmbench(root: Path) -> None:
    """An MMBench TSV as released: each question with its circular copies at index + k·10⁶."""
    buffer = io.BytesIO()
    _image(11).save(buffer, format="JPEG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    questions = [
        (0, "What is shown?", "nan", ["a cat", "a dog", "a car"], 0, "object"),
        (1, "Which color?", "Look.", ["red", "blue"], 1, "color"),
    ]
    (root / "mmbench").mkdir(exist_ok=True)
    with (root / "mmbench" / "mmbench_dev_20230712.tsv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"])
        for index, question, hint, options, answer, category in questions:
            for copy in range(len(options)):
                rotated = options[copy:] + options[:copy]
                letters = [*rotated, *["nan"] * (4 - len(rotated))]
                target = "ABCD"[rotated.index(options[answer])]
                row = [index + copy * 1_000_000, question, hint, *letters, target, category, encoded]
                writer.writerow(row)


def write_fixture(root: Path) -> Path:
    """Create all six benchmark folders under ``root``; returns ``root``."""
    _pope(root)
    gqa = {
        "20968": {"imageId": "n1", "question": "What color is the car?", "answer": "red",
                  "types": {"structural": "query"}, "isBalanced": True},
        "20969": {"imageId": "n2", "question": "Is the dog on the left?", "answer": "yes",
                  "types": {"structural": "verify"}, "isBalanced": True},
        "20970": {"imageId": "n2", "question": "Is the dog small?", "answer": "no",
                  "types": {"structural": "verify"}, "isBalanced": False},
    }  # fmt: skip
    (root / "gqa").mkdir(exist_ok=True)
    (root / "gqa" / "testdev_balanced_questions.json").write_text(json.dumps(gqa))
    for name, seed in (("n1", 3), ("n2", 4)):
        _save(_image(seed), root / "gqa" / "images" / f"{name}.jpg")
    _mme(root)
    textvqa = {
        "dataset_name": "textvqa",
        "data": [
            {"question_id": 34602, "image_id": "t1", "question": "what does the sign say?",
             "answers": ["stop"] * 7 + ["stop sign"] * 3},
            {"question_id": 34603, "image_id": "t2", "question": "what number is written?",
             "answers": ["2"] * 4 + ["two"] * 4 + ["22"] * 2},
        ],
    }  # fmt: skip
    short = "\nAnswer the question using a single word or phrase."
    llava_questions = [
        {"question_id": "t1", "image": "t1.jpg", "category": "default",
         "text": f"what does the sign say?\nReference OCR token: STOP{short}"},
        {"question_id": "t2", "image": "t2.jpg", "category": "default",
         "text": f"what number is written?\nReference OCR token: 2{short}"},
    ]  # fmt: skip
    (root / "textvqa").mkdir(exist_ok=True)
    (root / "textvqa" / "TextVQA_0.5.1_val.json").write_text(json.dumps(textvqa))
    (root / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl").write_text(
        "\n".join(json.dumps(q) for q in llava_questions) + "\n"
    )
    for name, seed in (("t1", 7), ("t2", 8)):
        _save(_image(seed), root / "textvqa" / "train_images" / f"{name}.jpg")
    problems = {
        "5": {"question": "Which animal is shown?", "choices": ["cat", "dog"], "answer": 0, "hint": "",
              "image": "image.png", "split": "test"},
        "6": {"question": "Which color is shown?", "choices": ["red", "green", "blue"], "answer": 2,
              "hint": "A picture.", "image": "image.png", "split": "test"},
        "7": {"question": "No image here?", "choices": ["yes", "no"], "answer": 0, "hint": "",
              "image": None, "split": "test"},
    }  # fmt: skip
    (root / "scienceqa").mkdir(exist_ok=True)
    (root / "scienceqa" / "problems.json").write_text(json.dumps(problems))
    for pid, seed in (("5", 9), ("6", 10)):
        _save(_image(seed), root / "scienceqa" / "images" / "test" / pid / "image.png")
    _mmbench(root)
    return root


if __name__ == "__main__":
    print(write_fixture(FIXTURE))
