"""FID (and KID, precision/recall, Inception Score) between image sets given as files, and reference
statistics made from one: what ``tokbench fid`` and ``tokbench stats`` compute.

A path is a folder of images, an ADM ``.npz`` batch (``arr_0`` uint8 N×H×W×3) or a statistics file
(``mu``/``sigma``, as clean-fid, pytorch-fid, ADM and ``tokbench stats`` write them). The judge is the
suites' TF-Inception (``inception-v3-tf``) with the resize convention of ``recon`` (``tf1-bilinear``,
torch-fidelity's and ADM's) or of ``recon-clean`` (``clean``, clean-fid's); images are featurised once
per (content sha256, judge, device type) and cached like the suites' originals. An ADM reference
batch that holds both ``mu``/``sigma`` and ``arr_0`` is used as ADM's evaluator uses it: FID from its
statistics, KID and precision/recall from its images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokbench.data.image_sets import ImageSet, open_image_set
from tokbench.errors import ConfigError
from tokbench.features import LOGITS_OUTPUT, FeatureCache, cached_judge_outputs
from tokbench.judges.base import Judge
from tokbench.judges.registry import JUDGES
from tokbench.judges.weights import cache_dir
from tokbench.metrics.frechet import FeatureStatistics, frechet_distance, statistics_from_features
from tokbench.metrics.inception_score import InceptionScore
from tokbench.metrics.kid import KernelInceptionDistance
from tokbench.metrics.precision_recall import PrecisionRecall
from tokbench.stats_io import load_statistics, save_statistics

JUDGE = "inception-v3-tf"
RESIZE_MODES = ("tf1-bilinear", "clean")
FEATURE_OUTPUT = "pool3"

#: ``progress(done, total, what)``, called after each batch.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SetSide:
    """One side of a comparison: its features (None for a statistics-only file), its logits when the
    judge gave them, and the statistics FID uses."""

    name: str
    count: int
    statistics: FeatureStatistics
    features: torch.Tensor | None
    logits: torch.Tensor | None


def build_judge(resize: str = "tf1-bilinear", logits: bool = False, device: str = "cpu") -> Judge:
    """The suites' TF-Inception judge with ``resize`` (and its unbiased logits for the Inception Score)."""
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    outputs = [FEATURE_OUTPUT, LOGITS_OUTPUT] if logits else [FEATURE_OUTPUT]
    return JUDGES.get(JUDGE)(resize=resize, outputs=outputs).to(torch.device(device)).eval()


def read_side(
    path: str | Path,
    judge: Judge,
    batch_size: int = 50,
    cache: bool = True,
    progress: Progress | None = None,
) -> SetSide:
    """Features and statistics of a folder / ``.npz`` batch, or the statistics of a statistics file."""
    path = Path(path)
    arrays, stored = _npz_arrays(path), None
    if {"mu", "sigma"} <= arrays:
        stored = load_statistics(path, feature_dim=int(getattr(judge, "feature_dim", 2048) or 2048))
        if "arr_0" not in arrays:  # a statistics file without images
            return SetSide(path.name, stored.count or 0, stored, None, None)
    images = open_image_set(path)
    features, logits = _featurise(images, judge, batch_size, cache, progress)
    statistics = (
        stored if stored is not None else statistics_from_features(features.double(), source=str(path))
    )
    return SetSide(path.name, images.count, statistics, features, logits)


def compare(
    first: SetSide,
    second: SetSide,
    kid: bool = False,
    prc: bool = False,
    isc: bool = False,
) -> dict[str, float | str]:
    """FID between the sides, and on request KID, precision/recall (``first`` real, ``second``
    generated) and the Inception Score of ``second``; a metric the inputs cannot give is a reason."""
    results: dict[str, float | str] = {"fid": frechet_distance(first.statistics, second.statistics)}
    both = first.features is not None and second.features is not None
    missing = "needs images on both sides (a statistics file has none)"
    if kid:
        results.update(_computed(KernelInceptionDistance(), first, second) if both else {"kid": missing})
    if prc:
        results.update(_computed(PrecisionRecall(), first, second) if both else {"precision": missing})
    if isc:
        if second.logits is None:
            results["inception_score"] = f"{second.name} gives no logits (images and the judge's classifier)"
        else:
            metric = InceptionScore()
            metric.update(second.logits)
            results.update(metric.compute())
    return results


def make_statistics(
    path: str | Path,
    out: str | Path,
    judge: Judge,
    subsample: int | None = None,
    batch_size: int = 50,
    cache: bool = True,
    progress: Progress | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ADM-compatible statistics of an image set: ``mu``, ``sigma`` (float64), ``count`` and,
    with ``subsample``, ``arr_0`` holding that many of its images (seeded choice, in set order) for
    precision/recall and KID. Returns what was written."""
    images = open_image_set(path)
    features, _ = _featurise(images, judge, batch_size, cache, progress)
    statistics = statistics_from_features(features.double(), source=str(path))
    extra: dict[str, np.ndarray] = {}
    if subsample is not None:
        if subsample < 1 or subsample > images.count:
            raise ConfigError(f"--subsample must be in [1, {images.count}] for {path}, got {subsample}")
        chosen = np.sort(np.random.default_rng(seed).choice(images.count, subsample, replace=False))
        extra["arr_0"] = _rows(images, chosen, batch_size)
    written = save_statistics(out, statistics, extra.get("arr_0"))
    return {
        "path": str(written),
        "count": images.count,
        "dim": statistics.dim,
        "arr_0": len(extra.get("arr_0", [])),
    }


def _npz_arrays(path: Path) -> set[str]:
    """The array names of an ``.npz`` file (read once); empty for a folder or another file."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return set()
    with np.load(path, allow_pickle=False) as data:
        return set(data.files)


def _featurise(
    images: ImageSet, judge: Judge, batch_size: int, cache: bool, progress: Progress | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The judge's features (and logits) of every image, cached per content, judge and device type."""
    device = torch.device(getattr(judge, "device", "cpu"))
    key = {"image_set_sha256": images.sha256, "judge": judge.describe(), "device": device.type}
    root = cache_dir() / "features" / "image-sets"
    stores = {
        output: FeatureCache.for_protocol({**key, "output": output}, root=root) if cache else None
        for output in judge.outputs
    }
    ids = [str(i) for i in range(images.count)]
    done = None if progress is None else lambda count: progress(count, images.count, images.path.name)
    outputs = cached_judge_outputs(judge, images.batches(batch_size), ids, stores, device, done)
    return outputs[FEATURE_OUTPUT], outputs.get(LOGITS_OUTPUT)


def _computed(metric: Any, first: SetSide, second: SetSide) -> dict[str, float]:
    metric.update(first.features, second.features)
    return metric.compute()


def _rows(images: ImageSet, chosen: np.ndarray, batch_size: int) -> np.ndarray:
    """The chosen images (sorted indices) as uint8 N×H×W×3, streamed."""
    wanted = set(chosen.tolist())
    picked, position = [], 0
    for batch in images.batches(batch_size):
        for image in batch:
            if position in wanted:
                picked.append(image.permute(1, 2, 0).numpy())
            position += 1
    shapes = {p.shape for p in picked}
    if len(shapes) > 1:
        raise ConfigError(f"{images.path}: arr_0 needs images of one size, found {sorted(shapes)}")
    return np.stack(picked)
