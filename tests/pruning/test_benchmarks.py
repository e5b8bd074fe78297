"""Benchmark readers on the fixture (official formats) and clear errors for malformed files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tokbench.errors import DataError
from tokbench.pruning.benchmarks import read_benchmark, score_benchmark


@pytest.mark.parametrize(
    ("name", "count"), [("pope", 9), ("gqa", 2), ("mme", 28), ("textvqa", 2), ("sqa", 2), ("mmb", 5)]
)
def test_each_reader_loads_the_fixture(benchmark_dir: Path, name: str, count: int) -> None:
    items = read_benchmark(name, benchmark_dir)
    assert items is not None and len(items) == count
    assert items[0].image().mode == "RGB"
    assert all(item.prompt for item in items)


def test_scienceqa_keeps_only_test_problems_with_images_and_letters_targets(benchmark_dir: Path) -> None:
    items = read_benchmark("sqa", benchmark_dir)
    assert [i.qid for i in items] == ["5", "6"] and [i.target for i in items] == ["A", "C"]
    assert "Context: A picture." in items[1].prompt and "C. blue" in items[1].prompt


def test_mmbench_rows_are_read_as_released_and_grouped_by_question(benchmark_dir: Path) -> None:
    items = read_benchmark("mmb", benchmark_dir)
    assert [(i.qid, i.group, i.target) for i in items if i.group == "0"] == [
        ("0", "0", "A"),
        ("1000000", "0", "C"),
        ("2000000", "0", "B"),
    ]  # the TSV's own circular copies, not rotated again
    right = [i.target for i in items]
    assert score_benchmark("mmb", items, right) == {"mmb": 100.0}
    assert score_benchmark("mmb", items, [*right[:2], "A", *right[3:]]) == {"mmb": 50.0}
    single = read_benchmark("mmb", benchmark_dir, circular=False)
    assert [i.qid for i in single] == ["0", "1"]


def test_scores_of_perfect_answers_are_full_marks(benchmark_dir: Path) -> None:
    pope = read_benchmark("pope", benchmark_dir)
    scores = score_benchmark("pope", pope, [i.target.capitalize() for i in pope])
    assert scores["pope"] == 100.0 and scores["pope_random_yes_ratio"] == pytest.approx(200 / 3)
    mme = read_benchmark("mme", benchmark_dir)
    assert len({i.meta["subtask"] for i in mme}) == 14  # the five questions_answers_YN subtasks included
    scores = score_benchmark("mme", mme, [i.target for i in mme])
    assert (scores["mme_perception"], scores["mme_cognition"], scores["mme"]) == (2000.0, 800.0, 2800.0)
    assert scores["mme_artwork"] == 200.0 and scores["mme_ocr"] == 200.0
    gqa = read_benchmark("gqa", benchmark_dir)
    assert [i.qid for i in gqa] == ["20968", "20969"]  # the unbalanced question is not scored
    assert score_benchmark("gqa", gqa, ["red", "no"]) == {"gqa": 50.0, "gqa_binary": 0.0, "gqa_open": 100.0}


def test_textvqa_prompts_carry_llavas_ocr_tokens(benchmark_dir: Path, tmp_path: Path) -> None:
    items = read_benchmark("textvqa", benchmark_dir)
    assert items[0].prompt == (
        "what does the sign say?\nReference OCR token: STOP\n"
        "Answer the question using a single word or phrase."
    )
    root = tmp_path / "data"
    shutil.copytree(benchmark_dir / "textvqa", root / "textvqa")
    (root / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl").unlink()
    with pytest.raises(
        DataError, match=r"llava_textvqa_val_v051_ocr\.jsonl.*TextVQA_Rosetta_OCR_v0\.2_val\.json"
    ):
        read_benchmark("textvqa", root)
    rosetta = {
        "data": [{"image_id": "t1", "ocr_tokens": ["STOP", "HERE"]}, {"image_id": "t2", "ocr_tokens": []}]
    }
    (root / "textvqa" / "TextVQA_Rosetta_OCR_v0.2_val.json").write_text(json.dumps(rosetta))
    assert "\nReference OCR token: STOP, HERE\n" in read_benchmark("textvqa", root)[0].prompt


def test_a_missing_pope_category_is_an_error_naming_the_folder(benchmark_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(benchmark_dir / "pope", root / "pope")
    (root / "pope" / "coco" / "coco_pope_popular.json").unlink()
    with pytest.raises(DataError, match=r"pope/coco: POPE category file coco_pope_popular.json not found"):
        read_benchmark("pope", root)


def test_a_missing_field_names_the_file_and_field(benchmark_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(benchmark_dir, root)
    path = root / "gqa" / "testdev_balanced_questions.json"
    data = json.loads(path.read_text())
    del data["20968"]["answer"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"testdev_balanced_questions.json question 20968.*'answer'"):
        read_benchmark("gqa", root)
    pope = root / "pope" / "coco" / "coco_pope_random.json"
    pope.write_text('{"question_id": 1, "image": "p1.jpg", "text": "Is there a cat?"}\n')
    with pytest.raises(DataError, match="label"):
        read_benchmark("pope", root)


def test_an_absent_benchmark_directory_is_none(tmp_path: Path) -> None:
    assert read_benchmark("textvqa", tmp_path) is None
