"""Semantic fidelity in CLIP space: embedding cosine, FD-CLIP, zero-shot accuracy and CLIP score. No I/O.

The CLIP judge (``tokbench.judges.clip.ClipJudge``) computes the embeddings; these metrics only
accumulate and score them. "real" is the reference side (originals, or the unreduced ViT), "fake" the
side under test (reconstructions, samples, or the token-reduced ViT).

- ``clip-cosine``: per image, the cosine similarity of the real and fake image embeddings (mean and 95%
  interval); needs no labels.
- ``fd-clip``: the Fréchet distance in CLIP feature space. It *is* ``FrechetInceptionDistance`` (same
  float64 sums, same ``frechet_distance``), fed by the CLIP judge instead of Inception; only the
  record keys differ, so it can sit beside Inception-FID in one suite.
- ``zero-shot``: top-1/top-5 zero-shot accuracy of real and fake images against class prompts, and the
  drop (real − fake), in percent; needs class labels.
- ``clip-score``: per image, 100 × max(cos(image, prompt), 0), averaged (text-conditioned generators).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError, TokbenchError
from tokbench.metrics.base import MeanMetric, Metric, OutputInfo
from tokbench.metrics.fid import FrechetInceptionDistance
from tokbench.vocabulary.imagenet import TEMPLATE_SETS

if TYPE_CHECKING:
    from tokbench.judges.clip import ClipJudge

TOP_K = (1, 5)
#: Zero-shot outputs per k: record-key suffix → (label suffix, higher is better, unit).
_ZERO_SHOT_OUTPUTS = {
    "": ("", True, "%"),
    "_reference": (" reference", True, "%"),
    "_drop": (" drop", False, "pp"),
}


def _pair(
    metric: str, first: torch.Tensor, second: torch.Tensor, names: tuple[str, str]
) -> list[torch.Tensor]:
    """Two N×D feature batches of one shape, as float64 CPU tensors, checked finite."""
    checked = []
    for name, value in zip(names, (first, second), strict=True):
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        if value.ndim != 2 or value.is_complex() or value.dtype == torch.bool:
            raise ConfigError(
                f"{metric}: {name} must be a real (batch, dim) tensor, got {tuple(value.shape)}"
            )
        value = value.detach().to("cpu", torch.float64)
        if not torch.isfinite(value).all():
            raise TokbenchError(
                f"{metric}: {name} contain NaN or Inf (the judge produced non-finite outputs)"
            )
        checked.append(value)
    if checked[0].shape != checked[1].shape:
        raise ConfigError(
            f"{metric}: {names[0]} and {names[1]} differ in shape, "
            f"{tuple(checked[0].shape)} vs {tuple(checked[1].shape)}"
        )
    return checked


def cosine_rows(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity in float64; a zero row gives 0."""
    dot = (first * second).sum(dim=1)
    norms = first.norm(dim=1) * second.norm(dim=1)
    return torch.where(norms > 0, dot / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


class ClipEmbeddingCosine(MeanMetric):
    """Mean cosine similarity of each original's CLIP image embedding and its reconstruction's."""

    key = "clip_cosine"
    label = "CLIP cosine"
    inputs: ClassVar[tuple[str, ...]] = ("real_features", "fake_features")
    higher_is_better = True

    def per_image(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
        real, fake = _pair("clip-cosine", real_features, fake_features, self.inputs)
        return cosine_rows(real, fake)


class ClipScore(MeanMetric):
    """CLIP score: mean over images of 100 × max(cos(image embedding, prompt embedding), 0)."""

    key = "clip_score"
    label = "CLIP score"
    inputs: ClassVar[tuple[str, ...]] = ("fake_features", "text_features")
    higher_is_better = True

    def per_image(self, fake_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        image, text = _pair("clip-score", fake_features, text_features, self.inputs)
        return 100.0 * cosine_rows(image, text).clamp_min(0.0)


class FrechetClipDistance(FrechetInceptionDistance):
    """FD-CLIP: ``FrechetInceptionDistance`` on CLIP image embeddings, reported as ``fd_clip``.

    The judge's width is given by the runner (``feature_dim``); the real side is always the
    originals' CLIP features (Inception reference statistics are never injected here).
    """

    key = "fd_clip"
    label = "FD-CLIP"
    aliases: ClassVar[dict[str, str]] = {}

    def __init__(self, feature_dim: int = 512, method: str = "cholesky") -> None:
        super().__init__(feature_dim=feature_dim, reference=None, method=method)

    def compute(self) -> dict[str, float]:
        result = super().compute()
        return {"fd_clip": result["fid"], "fd_clip_count": result["fid_count"]}


class ZeroShotAccuracy(Metric):
    """Zero-shot top-1/top-5 accuracy (percent) of real and fake images, and the drop real − fake.

    With a CLIP ``judge`` and ``class_names`` (the labelled dataset's classes, in label order), images
    are classified by cosine against the judge's class embeddings built from the ``templates`` set
    (``openai-80``: the 80 prompts of CLIP's ImageNet evaluation; ``openai-7``: its 7-prompt subset).
    Without a judge the features are taken as class scores directly. With a judge but no class names
    (an unlabelled dataset) the metric cannot be updated: the runner reports it as not applicable.
    When there are fewer than 5 classes, "top-5" is top-(number of classes).
    """

    inputs: ClassVar[tuple[str, ...]] = ("real_features", "fake_features", "labels")
    key = "zs_top1"
    label = "zero-shot top-1"
    unit = "%"
    higher_is_better = True

    def __init__(
        self,
        judge: ClipJudge | None = None,
        class_names: Sequence[str] | None = None,
        templates: str = "openai-80",
    ) -> None:
        super().__init__()
        if templates not in TEMPLATE_SETS:
            raise ConfigError(
                f"zero-shot: templates must be one of {sorted(TEMPLATE_SETS)}, got {templates!r}"
            )
        if judge is not None and not callable(getattr(judge, "zero_shot_classifier", None)):
            raise ConfigError(
                "zero-shot: judge must be a CLIP judge (tokbench.judges.clip.ClipJudge), got "
                f"{type(judge).__name__}"
            )
        self._templates = templates
        self._judge = None if judge is None else judge.describe()
        self._classifier: torch.Tensor | None = None
        if judge is not None and class_names is not None:
            classifier = judge.zero_shot_classifier(list(class_names), TEMPLATE_SETS[templates])
            self._classifier = classifier.detach().to("cpu", torch.float64)
        self._class_count = None if class_names is None else len(class_names)
        for side in ("real", "fake"):
            for k in TOP_K:
                self.add_state(f"{side}_top{k}", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), "sum")

    def options(self) -> dict[str, Any]:
        digest = None
        if self._classifier is not None:
            digest = hashlib.sha256(self._classifier.numpy().tobytes()).hexdigest()
        return {
            "templates": self._templates,
            "judge": self._judge,
            "classes": self._class_count,
            "classifier_sha256": digest,
        }

    @classmethod
    def output_info(cls, output: str) -> OutputInfo | None:
        """Top-k accuracies and the reference side's (higher is better), drops in points (lower)."""
        for k in TOP_K:
            for suffix, (note, higher, unit) in _ZERO_SHOT_OUTPUTS.items():
                if output == f"zs_top{k}{suffix}":
                    return OutputInfo(f"zero-shot top-{k}{note}", higher, unit)
        return None

    def _scores(self, features: torch.Tensor) -> torch.Tensor:
        if self._judge is None:
            return features
        if self._classifier is None:
            raise ConfigError(
                "zero-shot: no class names were given (the dataset has no labels); use a labelled "
                "dataset such as classfolder:PATH"
            )
        if features.shape[1] != self._classifier.shape[1]:
            raise ConfigError(
                f"zero-shot: features have dimension {features.shape[1]}, the classifier "
                f"{self._classifier.shape[1]}; use the judge that built the classifier"
            )
        return features @ self._classifier.T  # cosine up to a positive per-row factor

    def update(self, real_features: torch.Tensor, fake_features: torch.Tensor, labels: torch.Tensor) -> None:
        real, fake = _pair("zero-shot", real_features, fake_features, ("real_features", "fake_features"))
        labels = torch.as_tensor(labels).detach().to("cpu")
        if labels.ndim != 1 or labels.shape[0] != real.shape[0] or labels.is_floating_point():
            raise ConfigError(
                f"zero-shot: labels must be {real.shape[0]} integers, got {tuple(labels.shape)}"
            )
        scores = {"real": self._scores(real), "fake": self._scores(fake)}
        classes = scores["real"].shape[1]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ConfigError(
                f"zero-shot: labels must lie in [0, {classes}), got {labels.min()}..{labels.max()}"
            )
        labels = labels.long()
        for side, values in scores.items():
            ranked = values.topk(min(max(TOP_K), classes), dim=1).indices
            for k in TOP_K:
                hits = (ranked[:, :k] == labels[:, None]).any(dim=1).sum()
                setattr(self, f"{side}_top{k}", getattr(self, f"{side}_top{k}") + hits)
        self.count = self.count + real.shape[0]

    def compute(self) -> dict[str, float]:
        n = int(self.count)
        if n == 0:
            return {}
        result = {}
        for k in TOP_K:
            reference = 100.0 * int(getattr(self, f"real_top{k}")) / n
            value = 100.0 * int(getattr(self, f"fake_top{k}")) / n
            result[f"zs_top{k}"] = value
            result[f"zs_top{k}_reference"] = reference
            result[f"zs_top{k}_drop"] = reference - value
        return result


__all__ = ["ClipEmbeddingCosine", "ClipScore", "FrechetClipDistance", "ZeroShotAccuracy", "cosine_rows"]
