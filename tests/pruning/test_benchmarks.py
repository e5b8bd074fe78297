"""Benchmark readers on the fixture (official formats) and clear errors for malformed files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tokbench.errors import DataError
from tokbench.pruning.benchmarks import read_benchmark, score_benchmark


@pytest.mark.parametrize(
    ("name", "count"), [("pope", 3), ("gqa", 2), ("mme", 4), ("textvqa", 2), ("sqa", 2), ("mmb", 5)]
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


def test_mmbench_circular_rotations_move_the_answer(benchmark_dir: Path) -> None:
    items = [i for i in read_benchmark("mmb", benchmark_dir) if i.group == "0"]
    assert [i.target for i in items] == ["A", "C", "B"]  # "a cat" rotated through A, C, B
    right = [i.target for i in items]
    assert score_benchmark("mmb", items, right) == {"mmb": 100.0}
    assert score_benchmark("mmb", items, [*right[:2], "A"]) == {"mmb": 0.0}
    single = read_benchmark("mmb", benchmark_dir, circular=False)
    assert len(single) == 2


def test_scores_of_perfect_answers_are_full_marks(benchmark_dir: Path) -> None:
    pope = read_benchmark("pope", benchmark_dir)
    assert score_benchmark("pope", pope, [i.target for i in pope])["pope"] == 100.0
    mme = read_benchmark("mme", benchmark_dir)
    assert score_benchmark("mme", mme, [i.target for i in mme])["mme"] == 400.0  # 2 subtasks × (100 + 100)


def test_a_missing_field_names_the_file_and_field(benchmark_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(benchmark_dir, root)
    path = root / "gqa" / "testdev_balanced_questions.json"
    data = json.loads(path.read_text())
    del data["20968"]["answer"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"testdev_balanced_questions.json question 20968.*'answer'"):
        read_benchmark("gqa", root)
    pope = root / "pope" / "coco_pope_random.json"
    pope.write_text('{"question_id": 1, "image": "p1.jpg", "text": "Is there a cat?"}\n')
    with pytest.raises(DataError, match="label"):
        read_benchmark("pope", root)


def test_an_absent_benchmark_directory_is_none(tmp_path: Path) -> None:
    assert read_benchmark("textvqa", tmp_path) is None
