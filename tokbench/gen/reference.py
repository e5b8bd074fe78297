"""The reference batch of a ``gen`` run: ADM's ``.npz`` (``mu``/``sigma`` pool-3 statistics, optional
``mu_s``/``sigma_s`` spatial statistics and ``arr_0`` images) or any statistics file ``stats_io`` reads.

Everything is checked before sampling starts: the statistics' keys and feature width (by
``tokbench.stats_io``), and the ``arr_0`` header (uint8 N×H×W×3). Reference activations for
precision/recall come from ``arr_0`` images run through the judge (streamed in chunks from the zip
member, cached on disk per reference sha256 and judge) or from clean-fid's ``feats`` array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tokbench.data.image_sets import iter_npz_images, npz_image_shape
from tokbench.errors import ConfigError
from tokbench.features import FeatureCache, cached_judge_outputs
from tokbench.hashing import file_sha256
from tokbench.judges.base import Judge
from tokbench.judges.weights import cache_dir
from tokbench.metrics.frechet import FeatureStatistics
from tokbench.stats_io import check_declared_array, load_statistics

#: Where OpenAI's guided-diffusion README publishes the ImageNet reference batches.
ADM_REFERENCE_URL = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/"
REFERENCE_DIR_NAME = "references"


@dataclass(frozen=True)
class ReferenceBatch:
    """A checked reference file: its statistics and what else it offers."""

    path: Path
    sha256: str
    statistics: FeatureStatistics
    #: ``"arr_0"`` (images), ``"feats"`` (features) or None: the source of reference activations.
    activations: str | None
    #: (N, H, W) of ``arr_0`` when present.
    image_shape: tuple[int, int, int] | None
    spatial: bool

    def describe(self) -> dict[str, object]:
        """Name, sha256 and contents, for the protocol."""
        return {
            "name": self.path.name,
            "sha256": self.sha256,
            "count": self.statistics.count,
            "activations": self.activations,
            "spatial_statistics": self.spatial,
        }


def find_reference(given: Path | None, default_name: str | None) -> Path:
    """The reference file: ``given`` (``--reference``), else the suite's default name looked up in
    the working directory and ``$TOKBENCH_CACHE/references``; a clear error when it is not there."""
    if given is not None:
        if not Path(given).is_file():
            raise ConfigError(f"reference batch {given} does not exist (or is not a file)")
        return Path(given)
    if default_name is None:
        raise ConfigError(
            "the gen suite needs a reference batch (.npz with mu and sigma): pass --reference FILE.npz "
            "(Python: reference=)"
        )
    places = [Path.cwd() / default_name, cache_dir() / REFERENCE_DIR_NAME / default_name]
    for place in places:
        if place.is_file():
            return place
    resolution = "512" if "512" in default_name else "256"
    raise ConfigError(
        f"reference batch {default_name} not found (looked in {', '.join(map(str, places))}). Download it "
        f"from {ADM_REFERENCE_URL}{resolution}/{default_name} (OpenAI's guided-diffusion evaluations) and "
        f"pass --reference PATH, or put it in {places[-1].parent}"
    )


def load_reference(path: Path, feature_dim: int) -> ReferenceBatch:
    """Read and check a reference file; ``ConfigError`` naming the file and the problem."""
    statistics = load_statistics(path, feature_dim=feature_dim)
    with np.load(path, allow_pickle=False) as data:
        files = set(data.files)
    if "feats" in files and "arr_0" not in files:  # checked from its header, before it is ever read
        check_declared_array(path, "feats", "(n, d)", feature_dim)
    image_shape = npz_image_shape(path) if "arr_0" in files else None
    activations = "arr_0" if image_shape is not None else "feats" if "feats" in files else None
    spatial = {"mu_s", "sigma_s"} <= files
    return ReferenceBatch(path, file_sha256(path), statistics, activations, image_shape, spatial)


def reference_activations(
    reference: ReferenceBatch, judge: Judge, device: torch.device, batch_size: int, cache: bool = True
) -> torch.Tensor | None:
    """The judge's feature output for every reference image (``arr_0``), or the stored ``feats``;
    None when the file has neither. ``arr_0`` features are cached per (reference, judge, device type)."""
    if reference.activations is None:
        return None
    if reference.activations == "feats":
        with np.load(reference.path, allow_pickle=False) as data:
            return torch.from_numpy(np.asarray(data["feats"], dtype=np.float32))
    store = None
    if cache:
        key = {"reference_sha256": reference.sha256, "judge": judge.describe(), "device": device.type}
        store = FeatureCache.for_protocol(key, root=cache_dir() / "features" / "references")
    count = reference.image_shape[0] if reference.image_shape else 0
    ids = [f"arr_0:{i}" for i in range(count)]
    batches = iter_npz_images(reference.path, batch_size)
    output = judge.outputs[0]
    return cached_judge_outputs(judge, batches, ids, {output: store}, device)[output]
