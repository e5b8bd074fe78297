"""Official scoring rules on hand-made predictions."""

from __future__ import annotations

import pytest

from tokbench.pruning import scoring


def test_pope_parse_and_scores() -> None:
    assert scoring.pope_label("No, there is not.") == "no"
    assert scoring.pope_label("Yes. No other animals.") == "yes"
    assert scoring.pope_label("NO") == "yes"  # LLaVA's eval_pope is case-sensitive
    scores = scoring.pope_scores(["Yes", "no", "yes", "No"], ["yes", "no", "no", "yes"])
    assert scores == {"acc": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5}
    assert scoring.pope_scores(["no"], ["yes"])["precision"] == 0.0  # eval_pope divides by zero here


def test_gqa_exact_match_after_llavas_conversion() -> None:
    assert scoring.gqa_correct("Red.", "red") and not scoring.gqa_correct("dark red", "red")
    assert not scoring.gqa_correct(" red", "red")  # LLaVA's conversion does not strip spaces


def test_mme_acc_plus_counts_images_with_both_answers_right() -> None:
    rows = [
        ("existence", "img1", "Yes", "Yes"),
        ("existence", "img1", "No", "No"),
        ("existence", "img2", "Yes", "Yes"),
        ("existence", "img2", "yes", "No"),
        ("code_reasoning", "img3", "  yes", "Yes"),
        ("code_reasoning", "img3", "No", "No"),
    ]
    scores = scoring.mme_scores(rows)
    assert scores["existence"] == pytest.approx(75.0 + 50.0) and scores["perception"] == scores["existence"]
    assert (
        scores["code_reasoning"] == 50.0 + 0.0 and scores["cognition"] == 50.0
    )  # no strip: "  yes" is other
    assert scoring.mme_parse("Nope") == "no" and scoring.mme_parse("maybe") == "other"


def test_vqa_accuracy_with_ten_answers_and_normalisation() -> None:
    answers = ["stop"] * 7 + ["stop sign"] * 3
    assert scoring.vqa_accuracy("Stop.", answers) == 1.0
    assert scoring.vqa_accuracy("the stop sign", answers) == pytest.approx((7 * 1 + 3 * 2 / 3) / 10)
    assert scoring.vqa_accuracy("two", ["2"] * 2 + ["x"] * 8) == pytest.approx((8 * 2 / 3 + 2 * 1 / 3) / 10)
    assert scoring.vqa_normalise("Don't, it's 2!") == "don't it 's 2"


def test_scienceqa_letters_follow_llavas_parse() -> None:
    assert scoring.scienceqa_letter("B", "ABC") == "B"
    assert scoring.scienceqa_letter("C. blue", "ABC") == "C"
    assert scoring.scienceqa_letter("The answer is A.", "ABC") == "A"
    assert scoring.scienceqa_letter("(C) blue", "ABC") is None
    assert scoring.scienceqa_letter("D", "ABC") is None
    assert scoring.circular_correct({"q1": [True, True], "q2": [True, False]}) == {"q1": True, "q2": False}
