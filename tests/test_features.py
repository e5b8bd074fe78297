"""Judge features per batch: originals featurised once (cached on disk), logits passed through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tokbench.features import FeatureCache, JudgeFeatures, cached_judge_outputs
from tokbench.judges.base import Judge


class CountingJudge(Judge):
    """Mean colour as 'features' (and optionally fake logits); counts the images it sees."""

    name = "counting"

    def __init__(self, logits: bool = False) -> None:
        super().__init__()
        self.seen = 0
        self.outputs = ("pool3", "logits_unbiased") if logits else ("pool3",)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen += images.shape[0]
        features = images.float().mean(dim=(2, 3))
        out = {"pool3": features}
        if "logits_unbiased" in self.outputs:
            out["logits_unbiased"] = features @ torch.ones(3, 5)
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def _images(seed: int) -> torch.Tensor:
    return torch.randint(
        0, 256, (3, 3, 8, 8), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def test_originals_are_featurised_once_across_runs(tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    originals, reconstructions = _images(0), _images(1)
    key = {"dataset": "x", "judge": "counting"}

    judge = CountingJudge()
    first = JudgeFeatures({"j": judge}, {"j": FeatureCache.for_protocol(key, root=tmp_path)})
    fields = first.batch_fields(ids, originals, reconstructions)["j"]
    first.save()
    assert judge.seen == 6
    torch.testing.assert_close(fields["real_features"], originals.float().mean(dim=(2, 3)))

    rerun_judge = CountingJudge()
    rerun = JudgeFeatures({"j": rerun_judge}, {"j": FeatureCache.for_protocol(key, root=tmp_path)})
    again = rerun.batch_fields(ids, originals, reconstructions)["j"]
    assert rerun_judge.seen == 3  # reconstructions only
    assert torch.equal(again["real_features"], fields["real_features"])
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    assert not list(tmp_path.glob("*.partial"))


def test_partial_cache_hit_recomputes_the_batch(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c.safetensors")
    cache.put(["a"], torch.ones(1, 3))
    assert cache.get(["a"]) is not None and cache.get(["a", "b"]) is None


def test_logits_are_passed_on_when_the_judge_has_them() -> None:
    fields = JudgeFeatures({"j": CountingJudge(logits=True)}).batch_fields(
        ["a", "b", "c"], _images(0), _images(1)
    )
    assert fields["j"]["fake_logits"].shape == (3, 5)
    assert (
        "fake_logits"
        not in JudgeFeatures({"j": CountingJudge()}).batch_fields(["a"], _images(0)[:1], _images(1)[:1])["j"]
    )


def test_cached_judge_outputs_judge_each_set_once_and_only_rank_0_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, ids, device = _images(2), ["0", "1", "2"], torch.device("cpu")
    judge = CountingJudge(logits=True)

    def stores() -> dict[str, FeatureCache]:
        return {o: FeatureCache.for_protocol({"set": "x", "output": o}, root=tmp_path) for o in judge.outputs}

    done: list[int] = []
    first = cached_judge_outputs(judge, images.split(2), ids, stores(), device, done.append)
    assert judge.seen == 3 and done == [2, 3]
    torch.testing.assert_close(first["pool3"], images.float().mean(dim=(2, 3)))
    assert first["logits_unbiased"].shape == (3, 5)
    again = cached_judge_outputs(judge, images.split(2), ids, stores(), device)
    assert judge.seen == 3 and all(torch.equal(again[o], first[o]) for o in first)
    cached_judge_outputs(judge, images.split(2), ids, {"pool3": None}, device)  # not cached: judged again
    assert judge.seen == 6
    monkeypatch.setenv("RANK", "1")
    elsewhere = {"pool3": FeatureCache.for_protocol({"set": "y"}, root=tmp_path)}
    cached_judge_outputs(judge, images.split(2), ids, elsewhere, device)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2  # rank 1 wrote nothing
