"""Semantic metrics: embedding cosine, FD-CLIP (the FID code with CLIP features), zero-shot, CLIP score."""

from __future__ import annotations

import math

import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.metrics import METRICS
from tokbench.metrics.fid import FrechetInceptionDistance
from tokbench.metrics.frechet import frechet_distance, statistics_from_features
from tokbench.metrics.semantic import ClipEmbeddingCosine, ClipScore, FrechetClipDistance, ZeroShotAccuracy
from tokbench.suites import JudgeConfig, MetricConfig, SuiteConfig
from tokbench.tracks.scoring import SuiteMetrics


def _images(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 64, 64), generator=generator, dtype=torch.uint8)


def test_registered_names() -> None:
    assert METRICS.get("clip-cosine") is ClipEmbeddingCosine
    assert METRICS.get("fd-clip") is FrechetClipDistance
    assert METRICS.get("zero-shot") is ZeroShotAccuracy
    assert METRICS.get("clip-score") is ClipScore


def test_cosine_per_image() -> None:
    metric = ClipEmbeddingCosine()
    real = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    fake = torch.tensor([[2.0, 0.0], [1.0, -1.0], [0.0, 0.0]])  # 1, 0, and a zero row → 0
    metric.update(real, fake)
    assert torch.equal(torch.cat(metric.values), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    assert metric.compute()["clip_cosine"] == pytest.approx(1 / 3)


def test_cosine_rejects_mismatched_batches() -> None:
    with pytest.raises(ConfigError, match="differ in shape"):
        ClipEmbeddingCosine().update(torch.zeros(2, 4), torch.zeros(3, 4))


def test_clip_score_is_floored_at_zero() -> None:
    metric = ClipScore()
    image = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    text = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    metric.update(image, text)
    assert torch.allclose(
        torch.cat(metric.values), torch.tensor([100 / math.sqrt(2), 0.0], dtype=torch.float64)
    )


def test_fd_clip_is_the_fid_code_on_clip_features(tiny_judge) -> None:
    """One implementation, two extractors: the FID metric class fed by the CLIP judge gives exactly
    frechet_distance of the statistics of the CLIP features, and FD-CLIP is that number."""
    real = tiny_judge(_images(12, 1))["embedding"]
    fake = tiny_judge(_images(12, 2))["embedding"]
    expected = frechet_distance(statistics_from_features(real), statistics_from_features(fake))
    fid = FrechetInceptionDistance(feature_dim=tiny_judge.feature_dim)
    fd_clip = FrechetClipDistance(feature_dim=tiny_judge.feature_dim)
    for metric in (fid, fd_clip):  # two batches: streaming sums
        metric.update(real[:5], fake[:5])
        metric.update(real[5:], fake[5:])
    assert fid.compute()["fid"] == pytest.approx(expected, rel=1e-10)
    assert fd_clip.compute() == {"fd_clip": fid.compute()["fid"], "fd_clip_count": 12}
    assert expected > 0


def test_fd_of_a_set_with_itself_is_zero(tiny_judge) -> None:
    features = tiny_judge(_images(40, 3))["embedding"]
    metric = FrechetClipDistance(feature_dim=tiny_judge.feature_dim)
    metric.update(features, features)
    assert abs(metric.compute()["fd_clip"]) < 1e-9


def test_runner_gives_metrics_the_judge_width(tiny_judge) -> None:
    """``fid`` and ``fd-clip`` with ``judge: clip`` take the CLIP width; no Inception reference
    statistics are ever injected into FD-CLIP."""
    suite = SuiteConfig(
        name="t",
        version="1",
        kind="tokenizer",
        metrics=(MetricConfig("fid", judge="clip"), MetricConfig("fd-clip", judge="clip")),
        judges={"clip": JudgeConfig("clip")},
    )
    metrics = {
        key: metric for key, _, metric in SuiteMetrics(suite, {"clip": tiny_judge}, {"reference": None})
    }
    assert metrics["fid"].options()["feature_dim"] == tiny_judge.feature_dim == 32
    assert metrics["fd_clip"].options()["feature_dim"] == 32


def test_zero_shot_on_scores() -> None:
    metric = ZeroShotAccuracy()
    scores = torch.tensor([[0.9, 0.1, 0.0, 0.0, 0.0, 0.0], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    labels = torch.tensor([0, 0])  # image 1 top-1; image 2 label ranked last of 6 → outside the top 5
    fake = torch.tensor([[0.1, 0.9, 0.0, 0.0, 0.0, 0.0], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    metric.update(scores, fake, labels)
    assert metric.compute() == {
        "zs_top1": 0.0,
        "zs_top1_reference": 50.0,
        "zs_top1_drop": 50.0,
        "zs_top5": 50.0,
        "zs_top5_reference": 50.0,
        "zs_top5_drop": 0.0,
    }


def test_zero_shot_with_a_clip_classifier(tiny_judge) -> None:
    names = ["cat", "dog", "car"]
    metric = ZeroShotAccuracy(judge=tiny_judge, class_names=names, templates="photo")
    real = tiny_judge(_images(4, 4))["embedding"]
    classifier = tiny_judge.zero_shot_classifier(names, ["a photo of a {}."]).double()
    predicted = (torch.nn.functional.normalize(real.double(), dim=-1) @ classifier.T).argmax(dim=1)
    metric.update(real, real, predicted)
    result = metric.compute()
    assert result["zs_top1"] == result["zs_top1_reference"] == 100.0 and result["zs_top1_drop"] == 0.0
    assert result["zs_top5"] == 100.0  # top-5 of 3 classes is top-3
    options = metric.options()
    assert options["classes"] == 3 and options["templates"] == "photo" and options["classifier_sha256"]


def test_zero_shot_bad_input() -> None:
    with pytest.raises(ConfigError, match="templates must be one of"):
        ZeroShotAccuracy(templates="openai-81")
    with pytest.raises(ConfigError, match="labels must lie in"):
        ZeroShotAccuracy().update(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([3]))
    with pytest.raises(ConfigError, match="labels must be 1 integers"):
        ZeroShotAccuracy().update(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([0.5]))


def test_zero_shot_without_class_names_cannot_update(tiny_judge) -> None:
    metric = ZeroShotAccuracy(judge=tiny_judge)
    assert metric.compute() == {}
    with pytest.raises(ConfigError, match="no class names"):
        metric.update(torch.zeros(1, 32), torch.zeros(1, 32), torch.tensor([0]))


def test_zero_shot_rejects_a_non_clip_judge() -> None:
    with pytest.raises(ConfigError, match="must be a CLIP judge"):
        ZeroShotAccuracy(judge=object())
