"""Official scoring rules on hand-made predictions."""

from __future__ import annotations

import pytest

from tokbench.pruning import scoring


def test_pope_parse_and_scores() -> None:
    assert scoring.pope_label("No, there is not.") == "no"
    assert scoring.pope_label("Yes. No other animals.") == "yes"
    scores = scoring.pope_scores(["Yes", "no", "yes", "No"], ["yes", "no", "no", "yes"])
    assert scores["pope"] == 50.0 and scores["pope_precision"] == 50.0 and scores["pope_recall"] == 50.0
    assert scores["pope_f1"] == 50.0 and scores["pope_yes_ratio"] == 50.0


def test_gqa_exact_match_after_normalisation() -> None:
    assert scoring.gqa_correct("Red.", "red") and not scoring.gqa_correct("dark red", "red")


def test_mme_acc_plus_counts_images_with_both_answers_right() -> None:
    rows = [
        ("existence", "img1", "Yes", "yes"),
        ("existence", "img1", "No", "no"),
        ("existence", "img2", "Yes", "yes"),
        ("existence", "img2", "yes", "no"),
    ]
    scores = scoring.mme_scores(rows)
    assert scores["mme_existence"] == pytest.approx(75.0 + 50.0)
    assert scores["mme"] == scores["mme_existence"]
    assert scoring.mme_parse("Nope") == "no" and scoring.mme_parse("maybe") == "other"


def test_vqa_accuracy_with_ten_answers_and_normalisation() -> None:
    answers = ["stop"] * 7 + ["stop sign"] * 3
    assert scoring.vqa_accuracy("Stop.", answers) == 1.0
    assert scoring.vqa_accuracy("the stop sign", answers) == pytest.approx((7 * 1 + 3 * 2 / 3) / 10)
    assert scoring.vqa_accuracy("two", ["2"] * 2 + ["x"] * 8) == pytest.approx((8 * 2 / 3 + 2 * 1 / 3) / 10)
    assert scoring.vqa_normalise("Don't, it's 2!") == "don't it's 2"


def test_choice_letters_and_circular_eval() -> None:
    assert scoring.choice_letter("B", "ABC") == "B"
    assert scoring.choice_letter("(C) blue", "ABC") == "C"
    assert scoring.choice_letter("The answer is A.", "ABC") == "A"
    assert scoring.choice_letter("Banana", "ABC") is None
    assert scoring.circular_correct({"q1": [True, True], "q2": [True, False]}) == {"q1": True, "q2": False}
