"""Official scoring rules of the prune suite's benchmarks, as pure functions of predictions.

- POPE (Li et al., EMNLP 2023; ``eval_pope.py``): the answer is "no" when its first sentence
  contains "no"/"not" as a word, else "yes"; accuracy, precision, recall, F1 and yes-ratio.
- GQA (Hudson & Manning 2019; LLaVA's ``convert_gqa_for_eval``): exact match after lower-casing and
  stripping a trailing full stop.
- MME (Fu et al. 2023; ``eval_tool/calculation.py``): answers parsed as yes/no/other; per subtask
  acc (questions) + acc+ (images with both questions right), in %, summed over subtasks.
- TextVQA (Singh et al. 2019, VQA accuracy; ``EvalAIAnswerProcessor``): normalised answer, score
  = mean over the 10 leave-one-out subsets of min(1, matches/3).
- ScienceQA-IMG and MMBench: the predicted option letter; MMBench circular evaluation counts a
  question right only when every rotation of its options is answered right.
"""

from __future__ import annotations

import re
from collections import defaultdict

_WORDS = re.compile(r"[a-z]+")


def pope_label(answer: str) -> str:
    """POPE's parse: "no" if the first sentence has the word "no" or "not", else "yes"."""
    first = answer.split(".")[0].replace(",", " ").lower()
    words = first.split()
    return "no" if "no" in words or "not" in words else "yes"


def pope_scores(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive = "yes") and yes-ratio, in %."""
    parsed = [pope_label(p) for p in predictions]
    tp = sum(p == "yes" and t == "yes" for p, t in zip(parsed, labels, strict=True))
    fp = sum(p == "yes" and t == "no" for p, t in zip(parsed, labels, strict=True))
    fn = sum(p == "no" and t == "yes" for p, t in zip(parsed, labels, strict=True))
    correct = sum(p == t for p, t in zip(parsed, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(labels)
    return {
        "pope": 100.0 * correct / n,
        "pope_f1": 100.0 * f1,
        "pope_precision": 100.0 * precision,
        "pope_recall": 100.0 * recall,
        "pope_yes_ratio": 100.0 * parsed.count("yes") / n,
    }


def gqa_normalise(answer: str) -> str:
    """LLaVA's GQA conversion: lower case, strip spaces and a trailing full stop."""
    return answer.strip().rstrip(".").lower().strip()


def gqa_correct(prediction: str, answer: str) -> bool:
    """Exact match after ``gqa_normalise``."""
    return gqa_normalise(prediction) == gqa_normalise(answer)


def mme_parse(answer: str) -> str:
    """MME's parse: "yes"/"no" exactly, else by the first four characters, else "other"."""
    text = answer.lower().strip()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def mme_scores(rows: list[tuple[str, str, str, str]]) -> dict[str, float]:
    """``(subtask, image, prediction, answer)`` rows → per-subtask acc + acc+ and their sum ``mme``."""
    by_task: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for task, image, prediction, answer in rows:
        by_task[task][image].append(mme_parse(prediction) == answer.strip().lower())
    scores: dict[str, float] = {}
    for task, images in sorted(by_task.items()):
        flat = [ok for oks in images.values() for ok in oks]
        acc = 100.0 * sum(flat) / len(flat)
        acc_plus = 100.0 * sum(all(oks) for oks in images.values()) / len(images)
        scores[f"mme_{_key(task)}"] = acc + acc_plus
    scores["mme"] = sum(scores.values())
    return scores


def _key(name: str) -> str:
    return "_".join(_WORDS.findall(name.lower()))


# --- TextVQA / VQA accuracy ---------------------------------------------------------------------

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itll": "it'll", "its": "it's",
    "lets": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "shant": "shan't", "shed": "she'd", "shes": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "thats": "that's", "thered": "there'd",
    "theres": "there's", "theyd": "they'd", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "wasnt": "wasn't", "wed": "we'd", "weve": "we've", "werent": "weren't", "whats": "what's",
    "whered": "where'd", "wheres": "where's", "whod": "who'd", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "yall": "y'all", "youd": "you'd", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = list(';/[]"{}()=+\\_-><@`,?!*#%^&$')
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def vqa_normalise(answer: str) -> str:
    """The VQA/TextVQA answer processor: punctuation, number words, articles, contractions."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    for mark in _PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or re.search(_COMMA_STRIP, text) is not None:
            text = text.replace(mark, "")
        else:
            text = text.replace(mark, " ")
    text = _PERIOD_STRIP.sub("", text)
    words = []
    for word in text.lower().split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy in [0, 1]: mean over the leave-one-out subsets of min(1, matches / 3)."""
    predicted = vqa_normalise(prediction)
    normalised = [vqa_normalise(a) for a in answers]
    scores = []
    for i in range(len(normalised)):
        others = normalised[:i] + normalised[i + 1 :]
        scores.append(min(1.0, sum(a == predicted for a in others) / 3.0))
    return sum(scores) / len(scores)


# --- multiple choice -----------------------------------------------------------------------------


def choice_letter(prediction: str, letters: str) -> str | None:
    """The option letter a free-form answer names ("B", "B.", "(B) ...", "The answer is B"), or None."""
    text = prediction.strip()
    if len(text) >= 1 and text[0] in letters and (len(text) == 1 or not text[1].isalpha()):
        return text[0]
    found = re.findall(rf"(?<![A-Za-z])\(?([{letters}])\)?(?![A-Za-z])", text)
    return found[0] if len(found) == 1 else None


def circular_correct(results: dict[str, list[bool]]) -> dict[str, bool]:
    """MMBench CircularEval: a question is right only if all its rotations are right."""
    return {question: all(oks) for question, oks in results.items()}
