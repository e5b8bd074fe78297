"""The evaluator's policies hold for every registered track: TF32 off, seeds, sharding, the empty run.

Each built-in track runs for real on a tiny case; its ``measure`` is wrapped to observe the state the
evaluator set up around it. A track without a case here fails the test: add one when adding a track.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tokbench
from tokbench import distributed
from tokbench.adapters.base import Generator
from tokbench.distributed import Distributed
from tokbench.errors import EmptyRunError
from tokbench.tracks import TRACKS
from tokbench.tracks.base import Plan, RunContext

SEED = 7
PRUNE_DATA = Path(__file__).parent / "pruning" / "fixtures" / "benchmarks"
GEN_SUITE = """
name: policy-gen
version: "1"
kind: generator
track: gen
settings: {num_samples: 4, num_classes: 2, shard_size: 4}
judges:
  inception: {name: inception-v3-tf, options: {outputs: [pool3]}}
metrics:
  - {name: fid, judge: inception, key: gfid}
"""


class NoiseGenerator(Generator):
    """Uniform noise per seed, 32×32; no weights."""

    @property
    def weights_sha256(self) -> str | None:
        return "0" * 64

    @property
    def num_classes(self) -> int:
        return 2

    def sample(self, conditions: list[int], seeds: list[int]) -> torch.Tensor:
        return torch.stack([torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in seeds])


def _gen_case(root: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 2048))
    reference = root / "ref.npz"
    np.savez(reference, mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False))
    (root / "policy-gen.yaml").write_text(GEN_SUITE)
    return {
        "model": NoiseGenerator(),
        "suite": str(root / "policy-gen.yaml"),
        "reference": reference,
        "work_dir": root / "shards",
        "cache_features": False,
    }


VIDEO_SUITE = """
name: policy-video
version: "1"
kind: video-tokenizer
track: video-recon
dataset: video-embedded
preprocess: {name: imagenet-center-crop, resolution: 32}
settings: {clips: {frames: 3}}
metrics:
  - name: video-psnr
  - name: temporal-difference-error
"""


def _video_case(root: Path) -> dict[str, Any]:
    (root / "policy-video.yaml").write_text(VIDEO_SUITE)
    return {"model": "video-identity", "suite": str(root / "policy-video.yaml"), "limit": 2}


TOKBENCH_VIDEO_SUITE = """
include: tokbench-video
name: policy-tokbench-video
version: "1"
metrics:
  - {name: text-fidelity, judge: ocr}
settings:
  bucket_edges: "855802d"
  save: lossless
  ocr_batches: per-instance
  chunk_frames: 2
  resolutions:
    - {resolution: 256, text: [0.01, 0.02, 0.03, 1.0], face: [0.05, 0.1, 0.2, 1.0]}
"""


def _tokbench_video_case(root: Path) -> dict[str, Any]:
    """Two 2-frame clips of a printed word (set ch3), each annotated on its second frame."""
    import av
    from PIL import Image, ImageDraw

    entries = []
    for name in ("one", "two"):
        (root / "ch3").mkdir(exist_ok=True)
        with av.open(str(root / "ch3" / f"{name}.mp4"), "w") as container:
            stream = container.add_stream("libx264rgb", rate=4)
            stream.width, stream.height, stream.pix_fmt = 128, 64, "rgb24"
            for index in range(2):
                image = Image.new("RGB", (128, 64), (240, 240, 240))
                ImageDraw.Draw(image).text((20, 25), "GATE 42", fill=(0, 0, 0))
                frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        word = {"rec": "GATE 42", "bbox": [16, 20, 70, 42], "ratio": 0.2}
        entries.append({"file_name": f"{name}-frame2.jpg", "height": 64, "width": 128, "annotations": [word]})
    (root / "video_annotations").mkdir()
    (root / "video_annotations" / "text_ch3.json").write_text(json.dumps(entries))
    (root / "policy-tokbench-video.yaml").write_text(TOKBENCH_VIDEO_SUITE)
    return {
        "model": "video-identity",
        "suite": str(root / "policy-tokbench-video.yaml"),
        "data": f"tokbench-video:{root}",
    }


#: Track name → the tiniest real run of it, as ``tokbench.evaluate`` arguments.
CASES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "recon": lambda root: {"model": "identity", "suite": "recon", "limit": 2, "cache_features": False},
    "gen": _gen_case,
    "tokbench": lambda root: {"model": "identity", "suite": "tokbench", "limit": 1},
    "prune": lambda root: {
        "model": "pool:budget=64,vlm=tiny-random",
        "suite": "prune",
        "data": str(PRUNE_DATA),
        "limit": 1,
    },
    "vit-reduction": lambda root: {
        "model": "tome:budget=13",
        "suite": "vit-reduction",
        "limit": 2,
        "judge_options": {"clip": {"model": "ViT-S-32", "pretrained": None, "weights": "random"}},
    },
    "tokbench-video": _tokbench_video_case,
    "video-recon": _video_case,
}


@dataclass(frozen=True)
class TwoProcesses(Distributed):
    """Rank 0 of two, where rank 1 measured a copy of rank 0's shard (no process group needed)."""

    def gather(self, value: Any) -> list[Any]:
        return [value, copy.deepcopy(value)]

    def broadcast(self, value: Any) -> Any:
        return value


def _observe(monkeypatch: pytest.MonkeyPatch, track: str, empty: bool = False) -> list[dict[str, Any]]:
    """Wrap the track's ``measure``: record the state around it (and under ``empty`` use no item)."""
    cls = TRACKS.get(track)
    original = cls.measure
    seen: list[dict[str, Any]] = []

    def measure(self: Any, plan: Plan, run: RunContext) -> Any:
        state = {
            "tf32": (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
            "seed": torch.initial_seed(),
            "grad": torch.is_grad_enabled(),
            "processes": run.distributed.world_size,
        }
        payload = original(self, plan, run)
        seen.append({**state, "used": run.shard.items_used})
        if empty:
            run.shard.items_used = 0
        return payload

    monkeypatch.setattr(cls, "measure", measure)
    return seen


@pytest.fixture
def tf32_on() -> Any:
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("track", TRACKS.names())
def test_tf32_off_seeded_sharded_for_every_track(
    track: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tf32_on: None
) -> None:
    assert track in CASES, f"add a policy case for track {track!r} to CASES"
    seen = _observe(monkeypatch, track)
    monkeypatch.setattr(distributed, "current", lambda device: TwoProcesses(rank=0, world_size=2))
    result = tokbench.evaluate(seed=SEED, **CASES[track](tmp_path))
    assert seen, "the track was not measured"
    for state in seen:  # a run and the runs it requires (prune's unpruned baseline)
        assert state["tf32"] == (False, False) and not state["grad"]
        assert state["seed"] == SEED and state["processes"] == 2
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored
    record = result.record
    assert record["timings"]["processes"] == 2
    assert record["dataset"]["items_used"] == 2 * seen[-1]["used"] > 0  # both shards merged


@pytest.mark.parametrize("track", TRACKS.names())
def test_a_run_that_uses_no_item_raises_for_every_track(
    track: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert track in CASES, f"add a policy case for track {track!r} to CASES"
    case = CASES[track](tmp_path)
    _observe(monkeypatch, track, empty=True)
    with pytest.raises(EmptyRunError, match="could be evaluated"):
        tokbench.evaluate(seed=SEED, **case)
