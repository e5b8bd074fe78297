"""The VLM benchmarks of the ``prune`` suite as metrics: answers in, the official score out.

Each metric keeps the scored items and the model's answers as per-instance records (merged across
processes by concatenation) and computes its benchmark's official score (``score_benchmark``) from
them alone, so a suite lists ``gqa``, ``mme``, ... like any other metric. Each class names every
breakdown it reports (``parts``) besides its headline ``key``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tokbench.metrics.base import Metric, OutputInfo
from tokbench.pruning.benchmarks import POPE_CATEGORIES, Item, score_benchmark
from tokbench.pruning.scoring import MME_SUBTASKS


class BenchmarkScore(Metric):
    """A benchmark's official score (in % where it reports %) over every answered item."""

    inputs: ClassVar[tuple[str, ...]] = ("benchmark_items", "answers")
    higher_is_better = True
    unit = "%"
    #: Version 2: the official parses, subsets and breakdowns of issue 16 (docs/conformance.md).
    implementation_version: ClassVar[str] = "2"
    #: Breakdown outputs (record key → label) besides the headline ``key``.
    parts: ClassVar[dict[str, str]] = {}
    #: Outputs that are not scores (e.g. POPE's share of "yes" answers): shown, never ranked.
    unranked: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.add_state("items", [], "cat")
        self.add_state("answers", [], "cat")

    def update(self, items: list[Item], answers: list[str]) -> None:
        """Add answered items (one answer per item, in order)."""
        if len(items) != len(answers):
            raise ValueError(f"{type(self).__name__}: {len(items)} items but {len(answers)} answers")
        self.items.extend(items)
        self.answers.extend(answers)

    def compute(self) -> dict[str, float]:
        """The official score(s); nothing when no item was answered."""
        if not self.items:
            return {}
        return score_benchmark(self.key, list(self.items), list(self.answers))

    @classmethod
    def output_info(cls, output: str) -> OutputInfo | None:
        """The headline's info, or that of one of the ``parts`` (unranked ones have no direction)."""
        known = super().output_info(output)
        if known is not None or output not in cls.parts:
            return known
        return OutputInfo(
            cls.parts[output], None if output in cls.unranked else cls.higher_is_better, cls.unit
        )

    def options(self) -> dict[str, Any]:
        """No options: the benchmark's official rule is fixed."""
        return {}


class GqaScore(BenchmarkScore):
    """GQA accuracy (LLaVA's conversion and GQA's ``eval.py``), with binary and open questions."""

    key = "gqa"
    label = "GQA"
    parts: ClassVar[dict[str, str]] = {"gqa_binary": "GQA binary", "gqa_open": "GQA open"}


class MmbenchScore(BenchmarkScore):
    """MMBench circular accuracy per question (every circular copy right), lmms-eval's static parse."""

    key = "mmb"
    label = "MMBench"


class MmeScore(BenchmarkScore):
    """MME Perception + Cognition, with each of the two totals and every subtask's acc + acc+
    (scores, not percentages)."""

    key = "mme"
    label = "MME (Perception + Cognition)"
    unit = ""
    parts: ClassVar[dict[str, str]] = {
        "mme_perception": "MME Perception",
        "mme_cognition": "MME Cognition",
        **{
            f"mme_{task.lower()}": f"MME {task.replace('_', ' ')}"
            for tasks in MME_SUBTASKS.values()
            for task in tasks
        },
    }


_POPE_STATISTICS = {
    "acc": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
    "yes_ratio": "yes-ratio",
}


class PopeScore(BenchmarkScore):
    """POPE F1 averaged over its three categories (what papers quote), with the mean accuracy and
    each category's accuracy, precision, recall, F1 and yes-ratio (LLaVA's ``eval_pope.py``)."""

    key = "pope"
    label = "POPE F1 (mean of categories)"
    parts: ClassVar[dict[str, str]] = {
        "pope_acc": "POPE accuracy (mean of categories)",
        **{
            f"pope_{category}_{stat}": f"POPE {category} {name}"
            for category in POPE_CATEGORIES
            for stat, name in _POPE_STATISTICS.items()
        },
    }
    unranked = tuple(f"pope_{category}_yes_ratio" for category in POPE_CATEGORIES)


class ScienceQaScore(BenchmarkScore):
    """ScienceQA-IMG accuracy (LLaVA's ``eval_science_qa.py`` parse)."""

    key = "sqa"
    label = "SQA-IMG"


class TextVqaScore(BenchmarkScore):
    """TextVQA accuracy (VQA soft accuracy, EvalAI answer processor), LLaVA-1.5's OCR-token prompts."""

    key = "textvqa"
    label = "TextVQA"
