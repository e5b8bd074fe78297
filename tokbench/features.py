"""Judge features for a run: each judge runs once per image and stream (originals, reconstructions),
and the originals' features are cached on disk, content-addressed, so a sweep or a re-run featurises
the reference images once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from tokbench.files import load_safetensors_cache, remove_stale_temp_files
from tokbench.hashing import sha256_json
from tokbench.judges.base import Judge
from tokbench.judges.weights import cache_dir

#: The judge output Inception Score uses (torch-fidelity's default: the classifier without its bias).
LOGITS_OUTPUT = "logits_unbiased"
TEMP_PATTERN = ".features-*.partial"


class FeatureCache:
    """Per-item features of one (dataset, preprocessing, judge) combination, in one safetensors file.

    A damaged file (truncated by a full disk, garbled) is named in a warning, removed and recomputed.
    """

    def __init__(self, path: Path):
        self.path = path
        self._features: dict[str, torch.Tensor] = load_safetensors_cache(path, "feature cache file") or {}
        self._dirty = False

    @classmethod
    def for_protocol(cls, key: dict[str, Any], root: Path | None = None) -> FeatureCache:
        """The cache file addressed by the sha256 of ``key`` (manifest hash, preprocessing, judge)."""
        root = root if root is not None else cache_dir() / "features"
        return cls(root / f"{sha256_json(key)}.safetensors")

    def get(self, ids: list[str]) -> torch.Tensor | None:
        """Stacked features of ``ids`` if every one is cached, else None."""
        if not all(i in self._features for i in ids):
            return None
        return torch.stack([self._features[i] for i in ids])

    def put(self, ids: list[str], features: torch.Tensor) -> None:
        """Remember the features of ``ids`` (written by ``save``)."""
        for item_id, row in zip(ids, features.detach().cpu(), strict=True):
            self._features[item_id] = row.clone()
        self._dirty = True

    def save(self) -> None:
        """Write the file atomically if anything new was added (removing killed writers' leftovers)."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.path.parent, [TEMP_PATTERN])
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".features-", suffix=".partial")
        os.close(handle)
        try:
            save_file(self._features, temporary)
            os.replace(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        self._dirty = False


def cached_judge_outputs(
    judge: Judge,
    batches: Iterable[torch.Tensor],
    ids: list[str],
    stores: Mapping[str, FeatureCache | None],
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """The judge's outputs named by ``stores`` for the images ``batches`` yields (``ids`` name them),
    float32 on the CPU: read from the stores when each holds every id, else computed (``progress(done)``
    after each batch) and, on rank 0, written to them; a None store caches nothing."""
    found = {output: store.get(ids) if store is not None else None for output, store in stores.items()}
    if all(features is not None for features in found.values()):
        return found
    rows: dict[str, list[torch.Tensor]] = {output: [] for output in stores}
    done = 0
    with torch.inference_mode():
        for batch in batches:
            judged = judge(batch.to(device))
            for output, parts in rows.items():
                parts.append(judged[output].detach().to("cpu", torch.float32).clone())
            done += len(batch)
            if progress is not None:
                progress(done)
    outputs = {output: torch.cat(parts) for output, parts in rows.items()}
    if os.environ.get("RANK", "0") == "0":
        for output, store in stores.items():
            if store is not None:
                store.put(ids, outputs[output])
                store.save()
    return outputs


class JudgeFeatures:
    """Computes each judge's default output for originals (cached) and reconstructions of a batch."""

    def __init__(self, judges: dict[str, Judge], caches: dict[str, FeatureCache] | None = None):
        self.judges = judges
        self.caches = caches or {}

    def batch_fields(
        self, ids: list[str], originals: torch.Tensor, reconstructions: torch.Tensor
    ) -> dict[str, dict[str, torch.Tensor]]:
        """``{alias: {"real_features": ..., "fake_features": ..., ["fake_logits": ...]}}`` per judge."""
        fields = {}
        for alias, judge in self.judges.items():
            output = judge.outputs[0]
            cache = self.caches.get(alias)
            real = cache.get(ids) if cache is not None else None
            if real is None:
                real = judge(originals)[output]
                if cache is not None:
                    cache.put(ids, real)
            judged = judge(reconstructions)
            fake = judged[output]
            fields[alias] = {"real_features": real.to(fake.device), "fake_features": fake}
            if LOGITS_OUTPUT in judged:  # an Inception with its classifier: Inception Score
                fields[alias]["fake_logits"] = judged[LOGITS_OUTPUT]
        return fields

    def save(self) -> None:
        """Persist newly computed original features."""
        for cache in self.caches.values():
            cache.save()
