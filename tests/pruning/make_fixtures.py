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


def write_fixture(root: Path) -> Path:
    """Create all six benchmark folders under ``root``; returns ``root``."""
    pope = [
        {"question_id": 1, "image": "p1.jpg", "text": "Is there a cat in the image?", "label": "yes"},
        {"question_id": 2, "image": "p1.jpg", "text": "Is there a car in the image?", "label": "no"},
        {"question_id": 3, "image": "p2.jpg", "text": "Is there a dog in the image?", "label": "yes"},
    ]
    (root / "pope").mkdir(parents=True, exist_ok=True)
    (root / "pope" / "coco_pope_random.json").write_text("\n".join(json.dumps(r) for r in pope) + "\n")
    for name, seed in (("p1.jpg", 1), ("p2.jpg", 2)):
        _save(_image(seed), root / "pope" / "images" / name)
    gqa = {
        "20968": {"imageId": "n1", "question": "What color is the car?", "answer": "red", "types": {}},
        "20969": {"imageId": "n2", "question": "Which side is the dog on?", "answer": "left", "types": {}},
    }
    (root / "gqa").mkdir(exist_ok=True)
    (root / "gqa" / "testdev_balanced_questions.json").write_text(json.dumps(gqa))
    for name, seed in (("n1", 3), ("n2", 4)):
        _save(_image(seed), root / "gqa" / "images" / f"{name}.jpg")
    for task, seed in (("existence", 5), ("OCR", 6)):
        directory = root / "mme" / task
        _save(_image(seed), directory / "000001.jpg")
        (directory / "000001.txt").write_text(
            "Is there a cat in this image? Please answer yes or no.\tYes\n"
            "Is there a dog in this image? Please answer yes or no.\tNo\n"
        )
    textvqa = {
        "dataset_name": "textvqa",
        "data": [
            {"question_id": 34602, "image_id": "t1", "question": "what does the sign say?",
             "answers": ["stop"] * 7 + ["stop sign"] * 3},
            {"question_id": 34603, "image_id": "t2", "question": "what number is written?",
             "answers": ["2"] * 4 + ["two"] * 4 + ["22"] * 2},
        ],
    }  # fmt: skip
    (root / "textvqa").mkdir(exist_ok=True)
    (root / "textvqa" / "TextVQA_0.5.1_val.json").write_text(json.dumps(textvqa))
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
    buffer = io.BytesIO()
    _image(11).save(buffer, format="JPEG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    (root / "mmbench").mkdir(exist_ok=True)
    with (root / "mmbench" / "mmbench_dev_20230712.tsv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"])
        writer.writerow(
            [0, "What is shown?", "nan", "a cat", "a dog", "a car", "nan", "A", "object", encoded]
        )
        writer.writerow([1, "Which color?", "Look.", "red", "blue", "nan", "nan", "B", "color", encoded])
    return root


if __name__ == "__main__":
    print(write_fixture(FIXTURE))
