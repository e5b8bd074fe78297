"""TokBench text and face fidelity: T-ACC, T-NED and F-Sim per scale bucket (pure functions, no I/O).

Definitions (TokBench, "Evaluating Your Visual Tokenizer before Visual Generation", 2025):

- T-ACC: case-sensitive exact match of the recognised string with the ground truth, in %.
- T-NED: mean of ``1 - edit_distance(gt, pred) / max(len(gt), len(pred))`` in % (unit-cost
  Levenshtein distance on Unicode code points, the ICDAR 2019 normalisation).
- F-Sim: cosine similarity of the face embeddings of the original and the reconstruction.
- Buckets: half-open intervals ``[e0, e1) [e1, e2) [e2, e3)`` on each instance's relative size
  ``ratio``; instances outside ``[e0, e3)`` are in no bucket (counted, never scored). "mean" is the
  unweighted mean of the three bucket means, reported only when every bucket has an instance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.base import Metric, OutputInfo

BUCKETS = ("small", "medium", "large")

#: Bucket edges of the official ``compute_all_metrics.py`` per release, resolution and kind: the
#: first release (a77070c, 2025-05-16) starts the face buckets at 0; the later one (855802d, with the
#: video set) drops faces below 0.1 / 0.05 / 0.02. Text edges are the same in both.
_TEXT_EDGES = {256: (0.02, 0.03, 0.04, 1.0), 512: (0.01, 0.02, 0.03, 1.0), 1024: (0.005, 0.01, 0.02, 1.0)}
OFFICIAL_EDGES: dict[str, dict[str, dict[int, tuple[float, ...]]]] = {
    "a77070c": {
        "text": _TEXT_EDGES,
        "face": {256: (0.0, 0.1, 0.2, 1.0), 512: (0.0, 0.05, 0.2, 1.0), 1024: (0.0, 0.05, 0.1, 1.0)},
    },
    "855802d": {
        "text": _TEXT_EDGES,
        "face": {256: (0.1, 0.2, 0.3, 1.0), 512: (0.05, 0.1, 0.2, 1.0), 1024: (0.02, 0.05, 0.1, 1.0)},
    },
}


def edit_distance(first: str, second: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1) between two strings."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, start=1):
        current = [i]
        for j, b in enumerate(second, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def normalized_edit_similarity(target: str, prediction: str) -> float:
    """``1 - edit_distance / max(len)``; two empty strings are identical (1.0)."""
    longest = max(len(target), len(prediction))
    return 1.0 if longest == 0 else 1.0 - edit_distance(target, prediction) / longest


def bucket_of(ratio: float, edges: Sequence[float]) -> str | None:
    """The bucket name of ``ratio`` under half-open ``edges`` (4 increasing numbers), or None."""
    for name, low, high in zip(BUCKETS, edges[:-1], edges[1:], strict=True):
        if low <= ratio < high:
            return name
    return None


def check_edges(edges: Sequence[float], what: str = "edges") -> tuple[float, ...]:
    """Validate bucket edges: four finite, strictly increasing, non-negative numbers."""
    values = tuple(float(e) for e in edges)
    if len(values) != len(BUCKETS) + 1 or any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"{what} must be {len(BUCKETS) + 1} finite non-negative numbers, got {list(edges)}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"{what} must be strictly increasing, got {list(edges)}")
    return values


def bucket_means(
    values: torch.Tensor, ratios: torch.Tensor, edges: Sequence[float], prefix: str, scale: float
) -> dict[str, float]:
    """``{prefix}_small/_medium/_large`` bucket means times ``scale``, and ``{prefix}_mean`` when all
    three buckets have instances."""
    result: dict[str, float] = {}
    for name, low, high in zip(BUCKETS, edges[:-1], edges[1:], strict=True):
        inside = (ratios >= low) & (ratios < high)
        if bool(inside.any()):
            result[f"{prefix}_{name}"] = float(values[inside].mean()) * scale
    if all(f"{prefix}_{name}" in result for name in BUCKETS):
        result[f"{prefix}_mean"] = sum(result[f"{prefix}_{name}"] for name in BUCKETS) / len(BUCKETS)
    return result


def bucket_counts(ratios: torch.Tensor, edges: Sequence[float]) -> dict[str, int]:
    """Instances per bucket, plus ``below`` (under the first edge) and ``above`` (at or over the last)."""
    counts = {"below": int((ratios < edges[0]).sum()), "above": int((ratios >= edges[-1]).sum())}
    for name, low, high in zip(BUCKETS, edges[:-1], edges[1:], strict=True):
        counts[name] = int(((ratios >= low) & (ratios < high)).sum())
    return counts


class _BucketedMetric(Metric):
    """Per-instance values and ratios kept as records (``cat``), bucketed in ``compute``."""

    default_edges: ClassVar[tuple[float, ...]] = ()
    #: Record-key prefix of each bucketed value → its display name.
    prefixes: ClassVar[dict[str, str]] = {}
    higher_is_better = True

    def __init__(self, edges: Sequence[float] | None = None) -> None:
        super().__init__()
        self.edges = check_edges(
            self.default_edges if edges is None else edges, f"{type(self).__name__} edges"
        )
        self.add_state("ratios", [], "cat")

    def options(self) -> dict[str, Any]:
        return {"edges": list(self.edges)}

    @classmethod
    def output_info(cls, output: str) -> OutputInfo | None:
        """``<prefix>_<bucket>`` as ``compute()`` returns it, or ``<prefix>_<resolution>_<bucket>`` as
        the TokBench track records it (``tokbench.textface.details.with_resolution``)."""
        rest, _, bucket = output.rpartition("_")
        if bucket not in (*BUCKETS, "mean"):
            return None
        prefix, _, resolution = rest.rpartition("_")
        if prefix in cls.prefixes and resolution.isdigit():
            label = f"{cls.prefixes[prefix]} {resolution}px {bucket}"
        elif rest in cls.prefixes:
            label = f"{cls.prefixes[rest]} {bucket}"
        else:
            return None
        return OutputInfo(label, cls.higher_is_better, cls.unit)

    def _ratios(self, ratios: torch.Tensor | Sequence[float], count: int) -> torch.Tensor:
        values = torch.as_tensor(ratios, dtype=torch.float64).detach().cpu().flatten()
        if values.numel() != count:
            raise TokbenchError(f"{type(self).__name__}: {values.numel()} ratios for {count} instances")
        if not torch.isfinite(values).all():
            raise TokbenchError(f"{type(self).__name__}: ratios must be finite")
        return values

    def _all_ratios(self) -> torch.Tensor:
        if not self.ratios:
            raise TokbenchError(f"{type(self).__name__}.compute called before any update")
        return torch.cat(self.ratios)

    def bucket_counts(self) -> dict[str, int]:
        """How many instances fell in each bucket (and below/above the edges)."""
        return bucket_counts(self._all_ratios(), self.edges)


class TextFidelity(_BucketedMetric):
    """T-ACC and T-NED per scale bucket from ground-truth and recognised strings (TokBench)."""

    inputs = ("text_targets", "text_predictions", "text_ratios")
    key = "t_acc_mean"
    label = "T-ACC mean"
    unit = "%"
    prefixes: ClassVar[dict[str, str]] = {"t_acc": "T-ACC", "t_ned": "T-NED"}
    default_edges = (0.02, 0.03, 0.04, 1.0)  # 256×256

    def __init__(self, edges: Sequence[float] | None = None) -> None:
        super().__init__(edges)
        self.add_state("exact", [], "cat")
        self.add_state("similarity", [], "cat")

    def update(
        self, targets: Sequence[str], predictions: Sequence[str], ratios: torch.Tensor | Sequence[float]
    ) -> None:
        if len(targets) != len(predictions):
            raise TokbenchError(f"TextFidelity: {len(targets)} targets but {len(predictions)} predictions")
        if not all(isinstance(t, str) for t in (*targets, *predictions)):
            raise TokbenchError("TextFidelity: targets and predictions must be strings")
        self.ratios.append(self._ratios(ratios, len(targets)))
        pairs = list(zip(targets, predictions, strict=True))
        self.exact.append(torch.tensor([float(t == p) for t, p in pairs], dtype=torch.float64))
        scores = [normalized_edit_similarity(t, p) for t, p in pairs]
        self.similarity.append(torch.tensor(scores, dtype=torch.float64))

    def compute(self) -> dict[str, float]:
        ratios = self._all_ratios()
        result = bucket_means(torch.cat(self.exact), ratios, self.edges, "t_acc", 100.0)
        result.update(bucket_means(torch.cat(self.similarity), ratios, self.edges, "t_ned", 100.0))
        return result


class FaceFidelity(_BucketedMetric):
    """F-Sim per scale bucket: cosine similarity of original and reconstruction face embeddings."""

    inputs = ("face_original_embeddings", "face_reconstructed_embeddings", "face_ratios")
    key = "f_sim_mean"
    label = "F-Sim mean"
    prefixes: ClassVar[dict[str, str]] = {"f_sim": "F-Sim"}
    default_edges = (0.1, 0.2, 0.3, 1.0)  # 256×256

    def __init__(self, edges: Sequence[float] | None = None) -> None:
        super().__init__(edges)
        self.add_state("cosine", [], "cat")

    def update(
        self, originals: torch.Tensor, reconstructions: torch.Tensor, ratios: torch.Tensor | Sequence[float]
    ) -> None:
        first = torch.as_tensor(originals).detach().to("cpu", torch.float64)
        second = torch.as_tensor(reconstructions).detach().to("cpu", torch.float64)
        if first.ndim != 2 or first.shape != second.shape:
            raise TokbenchError(
                f"FaceFidelity: embeddings must be two N×D tensors of one shape, got "
                f"{tuple(first.shape)} and {tuple(second.shape)}"
            )
        cosine = cosine_similarity(first, second)
        self.ratios.append(self._ratios(ratios, first.shape[0]))
        self.cosine.append(cosine)

    def compute(self) -> dict[str, float]:
        ratios = self._all_ratios()
        return bucket_means(torch.cat(self.cosine), ratios, self.edges, "f_sim", 1.0)


def cosine_similarity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity in float64; a zero-norm row raises (an embedding is never zero)."""
    norms = first.norm(dim=1) * second.norm(dim=1)
    if bool((norms == 0).any()):
        raise TokbenchError("cosine similarity of a zero embedding is undefined")
    return (first * second).sum(dim=1) / norms
