"""The VLM benchmarks of the ``prune`` suite as metrics: answers in, the official score out.

Each metric keeps the scored items and the model's answers as per-instance records (merged across
processes by concatenation) and computes its benchmark's official score (``score_benchmark``) from
them alone, so a suite lists ``gqa``, ``mme``, ... like any other metric.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tokbench.metrics.base import Metric, OutputInfo
from tokbench.pruning.benchmarks import Item, score_benchmark


class BenchmarkScore(Metric):
    """A benchmark's official score (in % where it reports %) over every answered item."""

    inputs: ClassVar[tuple[str, ...]] = ("benchmark_items", "answers")
    higher_is_better = True
    unit = "%"
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
        """Every ``<key>_<part>`` output is a score of the same direction, except the unranked ones."""
        known = super().output_info(output)
        if known is not None or not output.startswith(f"{cls.key}_"):
            return known
        label = f"{cls.label} {output.removeprefix(cls.key + '_').replace('_', ' ')}"
        return OutputInfo(label, None if output in cls.unranked else cls.higher_is_better, cls.unit)

    def options(self) -> dict[str, Any]:
        """No options: the benchmark's official rule is fixed."""
        return {}


class GqaScore(BenchmarkScore):
    """GQA accuracy (LLaVA's answer normalisation)."""

    key = "gqa"
    label = "GQA"


class MmbenchScore(BenchmarkScore):
    """MMBench circular accuracy (a question counts only when every rotation is right)."""

    key = "mmb"
    label = "MMBench"


class MmeScore(BenchmarkScore):
    """MME score: per subtask accuracy + accuracy+, summed (a score, not a percentage)."""

    key = "mme"
    label = "MME"
    unit = ""


class PopeScore(BenchmarkScore):
    """POPE accuracy, with F1, precision, recall and the yes-ratio."""

    key = "pope"
    label = "POPE"
    unranked = ("pope_yes_ratio",)


class ScienceQaScore(BenchmarkScore):
    """ScienceQA-IMG accuracy."""

    key = "sqa"
    label = "SQA-IMG"


class TextVqaScore(BenchmarkScore):
    """TextVQA accuracy (VQA soft accuracy)."""

    key = "textvqa"
    label = "TextVQA"
