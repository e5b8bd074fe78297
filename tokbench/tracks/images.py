"""The images an image suite runs on: the dataset (``--data`` or the suite's), its preprocessing and
the items of the run (``--limit``), as the recon and vit-reduction tracks resolve them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tokbench.data.base import Dataset, ImageItem, Preprocess
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError
from tokbench.tracks.base import TrackRequest


@dataclass(frozen=True)
class SuiteImages:
    """A resolved dataset spec, the dataset, the preprocessing and the items the run evaluates."""

    spec: str
    dataset: Dataset
    preprocess: Preprocess
    items: list[ImageItem]

    def describe(self) -> dict[str, Any]:
        """The protocol's ``dataset`` entry: spec, manifest hash and items requested."""
        return {
            "name": self.spec,
            "manifest_hash": self.dataset.manifest_hash(),
            "items_requested": len(self.items),
        }


def suite_images(request: TrackRequest) -> SuiteImages:
    """The dataset of ``--data`` (else the suite's), its preprocessing, the first ``--limit`` items."""
    suite = request.suite
    spec = request.data or suite.dataset
    if spec is None or suite.preprocess is None:
        raise ConfigError(f"suite {suite.name!r} needs a dataset and a preprocess (or --data)")
    dataset = resolve_dataset(spec)
    preprocess = build_preprocess(
        suite.preprocess["name"], **{k: v for k, v in suite.preprocess.items() if k != "name"}
    )
    items = dataset.items()
    limit = request.options.limit
    return SuiteImages(spec, dataset, preprocess, items[:limit] if limit is not None else items)


@dataclass(frozen=True)
class LoadPreprocessed:
    """A ``prepare`` for ``RunContext.load`` (it pickles, for worker processes): the item decoded and
    preprocessed, as float32 3×H×W in [0, 1]."""

    preprocess: Preprocess

    def __call__(self, item: ImageItem) -> torch.Tensor:
        """``preprocess(item.load()).image``; a ``DataError`` names the item."""
        return self.preprocess(item.load()).image
