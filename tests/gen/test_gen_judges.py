"""Several judges in one gen run: FD-CLIP beside gFID. The reference file's statistics go to the
judge of ``fid``; CLIP featurises the reference's ``arr_0`` images itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gen_fixtures import SUITE_HEAD

import tokbench
from tokbench.errors import ConfigError
from tokbench.metrics.frechet import frechet_distance, statistics_from_features

CLIP = "ViT-S-32"  # a real open_clip config (384-d), random weights: cheap and offline

TWO_JUDGES = (
    SUITE_HEAD
    + """judges:
  inception: {{name: projection, options: {{outputs: [pool3]}}}}
  clip: {{name: clip, options: {{model: {clip}, pretrained: null, weights: random}}}}
metrics:
{metrics}
"""
)
#: Two FIDs in one suite, each under its own record key.
BESIDE = "  - {name: fid, judge: inception, key: gfid}\n  - {name: fid, judge: clip, key: fd_clip}\n"


@pytest.fixture
def env(gen_env: Path, projection_judge, reference_writer) -> Path:
    pytest.importorskip("open_clip")
    suites = gen_env / "suites"
    (suites / "twojudges.yaml").write_text(TWO_JUDGES.format(name="twojudges", clip=CLIP, metrics=BESIDE))
    (suites / "onlyinception.yaml").write_text(
        TWO_JUDGES.format(
            name="onlyinception", clip=CLIP, metrics="  - {name: fid, judge: inception, key: gfid}\n"
        )
    )
    reference_writer(gen_env / "ref.npz", images=5)
    reference_writer(gen_env / "stats.npz", keys=("mu", "sigma"))
    return gen_env


def _evaluate(env: Path, model, suite: str, work: str, reference: str = "ref.npz", **options):
    return tokbench.evaluate(
        model, suite, reference=env / reference, work_dir=env / work, batch_size=4, **options
    )


def test_fd_clip_beside_gfid(env: Path, tiny_dit) -> None:
    from tokbench.data.image_sets import iter_npz_images as iter_images
    from tokbench.judges.clip import ClipJudge

    result = _evaluate(env, tiny_dit(), "twojudges", "both", save_samples=True)
    alone = _evaluate(env, tiny_dit(), "onlyinception", "alone")
    assert result.metrics["gfid"] == alone.metrics["gfid"]  # the primary judge keeps the reference stats
    assert result.metrics["fd_clip_count"] == 8

    judge = ClipJudge(CLIP, None, weights="random")
    (run,) = [p for p in (env / "both").iterdir() if p.is_dir()]
    samples = np.concatenate([np.load(f)["arr_0"] for f in sorted(run.glob("samples-*.npz"))])
    with torch.inference_mode():
        fake = judge(torch.from_numpy(samples).permute(0, 3, 1, 2).contiguous())["embedding"]
        real = torch.cat([judge(images)["embedding"] for images in iter_images(env / "ref.npz", 4)])
    expected = frechet_distance(statistics_from_features(real), statistics_from_features(fake))
    # float32 CLIP embeddings of a batch depend slightly (~1e-7) on the batch they are computed in
    assert result.metrics["fd_clip"] == pytest.approx(expected, rel=1e-6)

    judges = result.record["protocol"]["judges"]
    assert judges["clip"]["model"] == CLIP and judges["clip"]["weights"] == "random"
    with np.load(sorted(run.glob("shard-*.npz"))[0]) as shard:
        assert shard["pool3"].shape == (3, 2048) and shard["clip.embedding"].shape == (3, 384)


def test_resumed_run_with_two_judges_gives_the_same_numbers(env: Path, tiny_dit, counting) -> None:
    with pytest.raises(KeyboardInterrupt):
        _evaluate(env, counting(tiny_dit(), fail_after=2 + 1), "twojudges", "killed")  # probe, shard 0
    resumed = _evaluate(env, counting(tiny_dit()), "twojudges", "killed")
    straight = _evaluate(env, counting(tiny_dit()), "twojudges", "straight")
    assert resumed.metrics == straight.metrics
    assert resumed.record["generation"]["shards"]["resumed"] == [0]


def test_clip_needs_reference_images(env: Path, tiny_dit) -> None:
    result = _evaluate(env, tiny_dit(), "twojudges", "stats", reference="stats.npz")
    assert "fd_clip" not in result.metrics and "gfid" in result.metrics
    assert "no 'arr_0' images for judge 'clip'" in result.record["not_applicable"]["fd_clip"]


def test_several_judges_need_a_fid_metric(env: Path, tiny_dit) -> None:
    (env / "suites" / "nofid.yaml").write_text(
        TWO_JUDGES.format(
            name="nofid",
            clip=CLIP,
            metrics="  - {name: kid, judge: inception}\n  - {name: fd-clip, judge: clip}\n",
        )
    )
    with pytest.raises(ConfigError, match=r"no 'fid' metric"):
        _evaluate(env, tiny_dit(), "nofid", "nofid")
