"""Official scoring rules of the prune suite's benchmarks, as pure functions of predictions.

Each rule follows the script that produced the numbers papers quote for LLaVA-1.5 (pinned by the
goldens in ``../shared/reference/pruning/scoring``; see docs/conformance.md):

- POPE (LLaVA ``eval_pope.py``): per category, the answer is "no" when its first sentence holds the
  word ``No``, ``no`` or ``not`` (case-sensitive, split on spaces), else "yes"; accuracy, precision,
  recall, F1 and the share of predicted "yes".
- GQA (LLaVA ``convert_gqa_for_eval.py`` + the GQA ``eval.py``): ``rstrip('.')``, lower case, exact
  match; binary (verify/logical/choose/compare) and open (query) questions.
- MME (the MME team's ``eval_tool/calculation.py``): lower case without stripping, yes/no exactly,
  else by the first four characters, else "other"; per subtask acc + acc+ (both questions of an
  image right), × 100, summed over Perception's 10 and Cognition's 4 subtasks.
- TextVQA (LLaVA ``m4c_evaluator.py``, EvalAI's answer processor): soft accuracy over the 10
  leave-one-out subsets of the annotators' answers.
- ScienceQA (LLaVA ``eval_science_qa.py``): an exact letter, ``X. …``, or one "The answer is X."
- MMBench (lmms-eval ``mmbench_evals.py``, static mode): ``can_infer`` rules, then lmms-eval's
  static multiple-choice extraction; a question counts only when all its circular copies are right.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# --- POPE ----------------------------------------------------------------------------------------


def pope_label(answer: str) -> str:
    """LLaVA's POPE parse: "no" if the first sentence has the word No/no/not, else "yes"."""
    text = answer.split(".")[0].replace(",", "")
    words = text.split(" ")
    return "no" if "No" in words or "not" in words or "no" in words else "yes"


def pope_scores(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """One category's accuracy, precision, recall, F1 (positive = "yes") and yes-ratio, in [0, 1]."""
    parsed = [pope_label(p) for p in predictions]
    pairs = list(zip(parsed, labels, strict=True))
    tp = sum(p == "yes" and t != "no" for p, t in pairs)
    fp = sum(p == "yes" and t == "no" for p, t in pairs)
    tn = sum(p == "no" and t == "no" for p, t in pairs)
    fn = sum(p == "no" and t != "no" for p, t in pairs)
    precision = float(tp) / float(tp + fp) if tp + fp else 0.0
    recall = float(tp) / float(tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "acc": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": parsed.count("yes") / len(parsed),
    }


# --- GQA -----------------------------------------------------------------------------------------


def gqa_normalise(answer: str) -> str:
    """LLaVA's GQA conversion: strip trailing full stops, then lower case (no whitespace strip)."""
    return answer.rstrip(".").lower()


def gqa_correct(prediction: str, answer: str) -> bool:
    """GQA ``eval.py``: the converted prediction equals the annotated answer."""
    return gqa_normalise(prediction) == answer


# --- MME -----------------------------------------------------------------------------------------

#: The MME team's ``eval_type_dict``: subtasks of each total, in the order they are summed.
MME_SUBTASKS = {
    "perception": (
        "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
        "artwork", "OCR",
    ),
    "cognition": ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"),
}  # fmt: skip


def mme_parse(answer: str) -> str:
    """MME's parse: lower case (no strip); "yes"/"no" exactly, else by the first four characters."""
    text = answer.lower()
    if text in ("yes", "no"):
        return text
    if "yes" in text[:4]:
        return "yes"
    if "no" in text[:4]:
        return "no"
    return "other"


def mme_subtask_score(images: Iterable[list[tuple[str, str]]]) -> float:
    """acc·100 + acc+·100 of one subtask from its images' ``(prediction, answer)`` pairs."""
    images = list(images)
    flat = [mme_parse(p) == a.lower() for pairs in images for p, a in pairs]
    acc_plus = sum(all(mme_parse(p) == a.lower() for p, a in pairs) for pairs in images) / len(images)
    return (sum(flat) / len(flat)) * 100 + acc_plus * 100


def mme_scores(rows: list[tuple[str, str, str, str]]) -> dict[str, float]:
    """``(subtask, image, prediction, answer)`` rows → subtask scores and the Perception/Cognition sums."""
    by_task: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for task, image, prediction, answer in rows:
        by_task.setdefault(task, {}).setdefault(image, []).append((prediction, answer))
    scores: dict[str, float] = {}
    for total, tasks in MME_SUBTASKS.items():
        present = [t for t in tasks if t in by_task]
        if not present:
            continue
        subtotal = 0.0
        for task in present:
            scores[task] = mme_subtask_score(by_task[task].values())
            subtotal += scores[task]
        scores[total] = subtotal
    return scores


# --- TextVQA (EvalAI answer processor) -----------------------------------------------------------

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = list(';/[]"{}()=+\\_-><@`,?!')
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")


def vqa_normalise(answer: str) -> str:
    """EvalAI's answer processor (as in LLaVA's ``m4c_evaluator.py``)."""
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    spaced = text
    for mark in _PUNCTUATION:
        if (mark + " " in spaced or " " + mark in spaced) or _COMMA_STRIP.search(spaced) is not None:
            text = text.replace(mark, "")
        else:
            text = text.replace(mark, " ")
    text = _PERIOD_STRIP.sub("", text, count=32)  # the original passes re.UNICODE (32) as the count
    words = [_NUMBERS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy in [0, 1]: mean over the leave-one-out subsets of min(1, matches / 3)."""
    predicted = vqa_normalise(prediction)
    normalised = [vqa_normalise(a) for a in answers]
    scores = []
    for i in range(len(normalised)):
        others = normalised[:i] + normalised[i + 1 :]
        scores.append(min(1, float(sum(a == predicted for a in others)) / 3))
    return sum(scores) / len(scores)


# --- ScienceQA -----------------------------------------------------------------------------------

_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def scienceqa_letter(prediction: str, letters: str) -> str | None:
    """LLaVA's ScienceQA parse: an exact letter, ``X. …``, or exactly one "The answer is X."; the
    letter only when it names one of the problem's options."""
    if prediction in "ABCDE" and len(prediction) == 1:
        letter = prediction
    elif len(prediction) >= 3 and prediction[0] in "ABCDE" and prediction[1:3] == ". ":
        letter = prediction[0]
    else:
        found = _THE_ANSWER_IS.findall(prediction)
        letter = found[0] if len(found) == 1 else None
    return letter if letter is not None and letter in letters else None


# --- MMBench -------------------------------------------------------------------------------------

_WRAPPERS = (
    ("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""),
    (":", ","), (":", "."), (":", ")"), (":", ")."),
)  # fmt: skip


def _infer_option(answer: str) -> str | None:
    """lmms-eval ``can_infer_option``: one lone letter A–E (a lone "A" in a longer answer is read
    as an article), else one letter in a wrapper such as ``(B)``, ``C.`` or ``:D``."""
    splits = [x.strip() for x in answer.split()]
    choices = "ABCDE"
    lone = [c for c in choices if c in splits]
    if len(lone) == 1 and not ("A" in splits and len(splits) > 3):
        return lone[0]
    for prefix, suffix in _WRAPPERS:
        wrapped = [c for c in choices if prefix + c + suffix in splits]
        if len(wrapped) == 1:
            return wrapped[0]
    return None


def _infer_text(answer: str, options: dict[str, str]) -> str | None:
    """lmms-eval ``can_infer_text``: the one option whose text appears in the answer."""
    found = [letter for letter, text in options.items() if text.lower() in answer.lower()]
    return found[0] if len(found) == 1 else None


_ANSWER_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is",
    "best option is", "the choice is", "choice is", "the correct choice is", "correct choice is",
    "i choose", "i select", "i pick", "my answer is", "my choice is",
)  # fmt: skip
_FORMAT_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "(X)": 6, "X.": 5, "X:": 4, "X)": 3, "X ": 2}


def extract_choice(response: str, letters: str) -> str | None:
    """lmms-eval's static multiple-choice extraction (``mcq_extract.extract_mcq_answer``): the
    candidate letter of the highest-priority format, the last one on ties."""
    if not response.strip():
        return None
    text = response.strip()
    for char in ",.!?;:'\"":
        text = text.strip(char)
    text = f" {text} "
    candidates: list[tuple[int, int, str]] = []
    for form in ("(X)", "X.", "X:", "X)", "X "):
        for letter in letters:
            pattern = form.replace("X", letter)
            if pattern in text:
                candidates.append((_FORMAT_PRIORITY[form], text.rfind(pattern), letter))
    lower = text.lower()
    for phrase in _ANSWER_PHRASES:
        start = lower.find(phrase)
        if start != -1:
            for letter in letters:
                position = text.find(letter, start + len(phrase))
                if position != -1:
                    candidates.append((_FORMAT_PRIORITY["phrase"], position, letter))
    stripped = text.strip()
    for letter in letters:
        if stripped.startswith(letter) and (len(stripped) == 1 or not stripped[1].isalpha()):
            candidates.append((_FORMAT_PRIORITY["start"], 0, letter))
        if stripped.endswith(letter) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            candidates.append((_FORMAT_PRIORITY["end"], len(text) - 1, letter))
    if not candidates:
        candidates = [(0, text.rfind(letter), letter) for letter in letters if letter in text]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def mmbench_letter(prediction: str, options: dict[str, str]) -> str | None:
    """The option letter of an MMBench answer: ``can_infer`` rules, then the static extraction."""
    return (
        _infer_option(prediction)
        or _infer_text(prediction, options)
        or extract_choice(prediction, "".join(sorted(options)))
    )


def circular_correct(results: dict[str, list[bool]]) -> dict[str, bool]:
    """MMBench CircularEval: a question is right only if all its circular copies are right."""
    return {question: all(oks) for question, oks in results.items()}
