"""The prune suite's benchmark readers, prompts, image preparation and scoring against the official
scripts' outputs on synthetic sets in the official formats (LLaVA's eval scripts, the MME team's
``calculation.py``, the GQA ``eval.py``, lmms-eval's MMBench rules).

Reference data: ``shared/reference/pruning/scoring`` (its README, "Part 2: scoring", states each rule).
Scores are compared exactly: tokbench reports 100 × the official fraction.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

from tokbench.pruning import scoring
from tokbench.pruning.benchmarks import (
    Item,
    mmbench_questions,
    read_gqa,
    read_mmbench,
    read_mme,
    read_pope,
    read_scienceqa,
    read_textvqa,
    score_benchmark,
)
from tokbench.pruning.prompts import CLIP_MEAN, CLIP_STD, LLAVA15_TEMPLATE, clip_pixels, expand2square

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "pruning" / "scoring"
pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"benchmark scoring reference data not found at {REFERENCE}"
)


def _expected(bench: str) -> dict:
    return json.loads((REFERENCE / bench / "expected.json").read_text())


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _full_prompt(text: str) -> str:
    return LLAVA15_TEMPLATE.format(question=text)


def test_prompt_template_is_llava_vicuna_v1_byte_for_byte() -> None:
    golden = json.loads((REFERENCE / "prompts.json").read_text())
    assert LLAVA15_TEMPLATE.startswith(golden["vicuna_v1_system"] + golden["vicuna_v1_sep"] + "USER: ")
    assert LLAVA15_TEMPLATE.endswith(golden["vicuna_v1_sep"] + "ASSISTANT:")
    examples = golden["full_prompt_examples"]
    assert (
        _full_prompt("Is there a dog in the image?" + "\nAnswer the question using a single word or phrase.")
        == (examples["pope"]["llava"])
    )


def test_pad_to_square_and_clip_pixels_equal_the_golden() -> None:
    meta = json.loads((REFERENCE / "llava15_preprocess.json").read_text())
    tensors = load_file(REFERENCE / "llava15_preprocess.safetensors")
    image = Image.fromarray(tensors["image_uint8_hwc"])
    padded = expand2square(image, CLIP_MEAN)
    assert np.array_equal(np.asarray(padded), tensors["padded_uint8_hwc"])
    assert list(padded.getpixel((0, 0))) == meta["pad_colour_rgb"]
    pixels = clip_pixels(padded, 336, 336, CLIP_MEAN, CLIP_STD)[0].numpy()
    assert np.array_equal(pixels[:, 160:176, :], tensors["pixel_values_center_rows"])
    assert pixels.astype(np.float64).sum() == meta["pixel_values_sum_f64"]
    unpadded = clip_pixels(image, 336, 336, CLIP_MEAN, CLIP_STD)[0].numpy()
    assert unpadded.astype(np.float64).sum() == meta["nopad_pixel_values_sum_f64"]


# --- POPE ----------------------------------------------------------------------------------------


def test_pope_reader_prompt_parse_and_per_category_scores(tmp_path: Path) -> None:
    files = REFERENCE / "pope" / "files"
    root = tmp_path / "pope"
    shutil.copytree(files / "coco", root / "coco")
    items = read_pope(root)
    expected = _expected("pope")
    for entry in expected["per_item"]:
        assert scoring.pope_label(entry["answer"]) == entry["llava_parsed"], entry
    answers = _lines(files / "answers.jsonl")
    questions = {q["question_id"]: q for q in _lines(files / "llava_pope_test.jsonl")}
    predictions = []
    for category in ("adversarial", "popular", "random"):  # eval_pope: labels match answers by position
        chosen = [a["text"] for a in answers if questions[a["question_id"]]["category"] == category]
        predictions.extend(chosen)
    scores = score_benchmark("pope", items, predictions)
    official = expected["llava_eval_pope_per_category"]
    for category, numbers in official.items():
        for stat, name in (("acc", "Accuracy"), ("precision", "Precision"), ("recall", "Recall")):
            assert scores[f"pope_{category}_{stat}"] == 100.0 * numbers[name]
        assert scores[f"pope_{category}_f1"] == 100.0 * numbers["F1 score"]
        assert scores[f"pope_{category}_yes_ratio"] == 100.0 * numbers["Yes ratio"]
    f1s = [official[c]["F1 score"] for c in ("adversarial", "popular", "random")]
    assert scores["pope"] == 100.0 * (sum(f1s) / 3)
    first = next(q for q in questions.values() if q["category"] == "adversarial")
    llava_text = first["text"]
    assert (
        _full_prompt(llava_text)
        == json.loads((REFERENCE / "prompts.json").read_text())["full_prompt_examples"]["pope"]["llava"]
    )
    assert all(item.prompt.endswith("\nAnswer the question using a single word or phrase.") for item in items)


# --- MME -----------------------------------------------------------------------------------------


def _mme_with_images(tmp_path: Path) -> Path:
    """The golden MME release folder (text only) with a tiny image beside each question file."""
    root = tmp_path / "mme"
    shutil.copytree(REFERENCE / "mme" / "files" / "MME_Benchmark_release_version", root)
    for path in root.rglob("*.txt"):
        path.chmod(0o644)
        folder = path.parent.parent / "images" if path.parent.name == "questions_answers_YN" else path.parent
        folder.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(folder / f"{path.stem}.png")
    return root


def test_mme_reads_all_14_subtasks_with_llava_prompts_and_scores_like_calculation_py(tmp_path: Path) -> None:
    items = read_mme(_mme_with_images(tmp_path))
    assert len({i.meta["subtask"] for i in items}) == 14
    files = REFERENCE / "mme" / "files"
    llava = _lines(files / "llava_mme.jsonl")
    by_prompt = {(q["category"], q["text"]) for q in llava}
    assert {(i.meta["subtask"], i.prompt) for i in items} == by_prompt  # LLaVA's llava_mme.jsonl
    official = _expected("mme")["official_calculation_py"]
    predictions = []
    for item in items:  # the answers the official tool scored (its per-subtask files, in order)
        lines = (files / "eval_tool" / "answers" / "synthetic" / f"{item.meta['subtask']}.txt").read_text()
        rows = [line.split("\t") for line in lines.splitlines()]
        question = item.prompt.replace("\nAnswer the question using a single word or phrase.", "")
        (row,) = [r for r in rows if r[1].replace(" Please answer yes or no.", "") == question]
        assert row[2] == item.target
        predictions.append(row[3])
    scores = score_benchmark("mme", items, predictions)
    for task, value in official["subtasks"].items():
        assert scores[f"mme_{task.lower()}"] == value, task
    assert scores["mme_perception"] == official["totals"]["Perception"]
    assert scores["mme_cognition"] == official["totals"]["Cognition"]
    assert scores["mme"] == official["totals"]["Perception"] + official["totals"]["Cognition"]


def test_mme_missing_or_empty_subtask_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    from tokbench.errors import DataError

    root = _mme_with_images(tmp_path)
    shutil.rmtree(root / "artwork" / "questions_answers_YN")
    with pytest.raises(DataError, match=r"artwork.*no items found.*questions_answers_YN"):
        read_mme(root)
    shutil.rmtree(root / "artwork")
    with pytest.raises(DataError, match="subtask folder artwork/ not found"):
        read_mme(root)


# --- TextVQA -------------------------------------------------------------------------------------


def test_textvqa_llava_prompts_and_scores(tmp_path: Path) -> None:
    files = REFERENCE / "textvqa" / "files"
    root = tmp_path / "textvqa"
    root.mkdir()
    for name in ("TextVQA_0.5.1_val.json", "llava_textvqa_val_v051_ocr.jsonl"):
        shutil.copy(files / name, root / name)
    items = read_textvqa(root)
    expected = _expected("textvqa")
    assert items[0].prompt == expected["llava_prompt_example"]
    prompts = json.loads((REFERENCE / "prompts.json").read_text())["full_prompt_examples"]
    assert _full_prompt(items[0].prompt) == prompts["textvqa"]["llava"]
    answers = _lines(files / "answers" / "synthetic.jsonl")
    assert [a["prompt"] for a in answers] == [i.prompt for i in items]
    for entry in expected["per_item"]:
        assert scoring.vqa_normalise(entry["pred"]) == entry["pred_processed"], entry
    for item, entry in zip(items, expected["per_item"], strict=True):
        assert [scoring.vqa_normalise(a) for a in item.target] == entry["gt_processed"]
        assert scoring.vqa_accuracy(entry["pred"], item.target) == entry["llava_score"]
    scores = score_benchmark("textvqa", items, [a["text"] for a in answers])
    assert scores["textvqa"] == 100.0 * expected["llava_accuracy_unrounded"]


EVALAI_EDGES = [  # (input, EvalAI output): the processor's word tokenisation, punctuation and numbers
    ("It's red", "it 's red"),
    ("its", "its"),
    ("the dog's ball", "dog 's ball"),
    ("$1,000", "$1000"),
    ("50% off", "50% off"),
    ("a*b", "a*b"),
    ("#1", "#1"),
    ("What?", "what"),
    ("yes, no", "yes no"),
    ("3.5", "3.5"),
    ("end.", "end"),
    ("cant", "can't"),
]


@pytest.mark.parametrize(("raw", "processed"), EVALAI_EDGES)
def test_evalai_answer_processor_edges(raw: str, processed: str) -> None:
    assert scoring.vqa_normalise(raw) == processed


# --- ScienceQA, GQA ------------------------------------------------------------------------------


def test_scienceqa_parse_and_img_accuracy(tmp_path: Path) -> None:
    files = REFERENCE / "scienceqa" / "files"
    root = tmp_path / "scienceqa"
    root.mkdir()
    shutil.copy(files / "problems.json", root / "problems.json")
    shutil.copy(files / "pid_splits.json", root / "pid_splits.json")
    items = {i.qid: i for i in read_scienceqa(root)}
    expected = _expected("scienceqa")
    llava = {q["id"]: q for q in json.loads((files / "llava_test_CQM-A.json").read_text())}
    for pid, item in items.items():
        assert "<image>\n" + item.prompt == llava[pid]["conversations"][0]["value"] + (
            "\nAnswer with the option's letter from the given choices directly."
        )
    problems = json.loads((files / "problems.json").read_text())
    right = 0
    for entry in expected["per_item"]:
        letters = "ABCDE"[: len(problems[entry["pid"]]["choices"])]
        parsed = scoring.scienceqa_letter(entry["pred"] or "FAILED", letters)
        official = expected["llava_result_json"]["results"][entry["pid"]]
        assert parsed == (None if official == -1 else "ABCDE"[official]), entry
        right += parsed == entry["answer"]
    assert right == expected["llava_eval_science_qa"]["correct"]
    answered = [e for e in expected["per_item"] if e["has_image"] and e["pred"] is not None]
    scores = score_benchmark("sqa", [items[e["pid"]] for e in answered], [e["pred"] for e in answered])
    official = expected["llava_eval_science_qa"]
    assert scores["sqa"] == 100.0 * (official["img_correct"] / official["img_total"])


def test_gqa_balanced_questions_and_eval_py_accuracy(tmp_path: Path) -> None:
    files = REFERENCE / "gqa" / "files"
    root = tmp_path / "gqa"
    root.mkdir()
    shutil.copy(files / "data" / "testdev_balanced_questions.json", root / "testdev_balanced_questions.json")
    items = read_gqa(root)
    binary = {i.qid for i in items if not i.meta["open"]}
    expected = _expected("gqa")
    balanced = [e for e in expected["per_item"] if e["isBalanced"]]
    assert [i.qid for i in items] == [e["question_id"] for e in balanced]
    llava = {q["question_id"]: q["text"] for q in _lines(files / "llava_gqa_testdev_balanced.jsonl")}
    assert all(item.prompt == llava[item.qid] for item in items)
    for entry in expected["per_item"]:
        assert scoring.gqa_normalise(entry["pred"]) == entry["llava_converted"]
        assert scoring.gqa_correct(entry["pred"], entry["gold"]) == entry["gqa_eval_correct"]
    scores = score_benchmark("gqa", items, [e["pred"] for e in balanced])
    printed = expected["gqa_eval_py_printed"]
    for key, name in (("gqa", "Accuracy"), ("gqa_binary", "Binary"), ("gqa_open", "Open")):
        assert round(scores[key], 2) == printed[name]
    for key, chosen in (
        ("gqa", balanced),
        ("gqa_binary", [e for e in balanced if e["question_id"] in binary]),
    ):
        right = sum(e["gqa_eval_correct"] for e in chosen)
        assert scores[key] == 100.0 * (right / len(chosen))


# --- MMBench -------------------------------------------------------------------------------------


def test_mmbench_circular_copies_are_read_once_and_scored_per_question(tmp_path: Path) -> None:
    files = REFERENCE / "mmbench" / "files"
    root = tmp_path / "mmbench"
    root.mkdir()
    shutil.copy(files / "mmbench_dev_synthetic.tsv", root / "mmbench_dev_synthetic.tsv")
    items = read_mmbench(root)
    expected = _expected("mmbench")
    rows = expected["per_row"]
    assert [int(i.qid) for i in items] == [r["index"] for r in rows]  # no extra rotation
    assert [i.target for i in items] == [r["answer"] for r in rows]
    llava = {a["question_id"]: a for a in _lines(files / "answers" / "synthetic.jsonl")}
    for item in items:
        options = llava[int(item.qid)]["options"]
        assert list(item.meta["options"].values()) == options
    for item, row in zip(items, rows, strict=True):
        if row["prefetch"]:
            assert scoring.mmbench_letter(row["pred"], dict(item.meta["options"])) == row["prefetch"]
    pairs = [(i, r["pred"]) for i, r in zip(items, rows, strict=True)]
    head = expected["lmms_eval"]["lmms_eval_head"]
    questions = mmbench_questions(pairs)
    assert len(questions) == 14
    assert sum(questions.values()) / len(questions) == head["static_mode_with_extra_groups"]["overall"]
    main = [(i, p) for i, p in pairs if int(i.group) < 12]
    assert (
        score_benchmark("mmb", [i for i, _ in main], [p for _, p in main])["mmb"]
        == 100.0 * (head["openai_mode_all_inferable"]["overall"])
    )
    prompts = json.loads((REFERENCE / "prompts.json").read_text())["full_prompt_examples"]
    emotion = next(i for i in items if i.qid == "1")
    assert "<image>\n" + emotion.prompt == expected["llava_prompt_example"]
    assert _full_prompt(emotion.prompt) == prompts["mmbench"]["llava"]


def test_mmbench_static_extraction_reads_what_the_rules_cannot() -> None:
    options = {"A": "snowy", "B": "foggy", "C": "sunny", "D": "rainy"}
    assert scoring.mmbench_letter("The answer is A", options) == "A"
    assert scoring.mmbench_letter("I think the answer is (B) zebra", options) == "B"
    assert scoring.mmbench_letter("sunny", options) == "C"
    assert scoring.mmbench_letter("", options) is None


def _mmbench_item(index: int, target: str) -> Item:
    return Item(
        "mmb", str(index), Image.new, "", target, str(index % 1_000_000), {"options": {"A": "x", "B": "y"}}
    )


def test_a_question_counts_only_when_every_circular_copy_is_right() -> None:
    items = [
        _mmbench_item(0, "A"),
        _mmbench_item(1_000_000, "B"),
        _mmbench_item(1, "B"),
        _mmbench_item(1_000_001, "A"),
    ]
    assert score_benchmark("mmb", items, ["A", "B", "B", "B"]) == {"mmb": 50.0}
