"""``reconstructions:DIR`` on a video suite: clips made elsewhere give the numbers of the model that
made them.

The model is an in-test deterministic one: the h264 adapter's bytes can differ between two encodes of
the same clip (seen on a loaded machine), which would make the comparison flaky."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from clip_files import write_video

import tokbench
from tokbench.adapters.base import Encoded, VideoTokenizer
from tokbench.adapters.registry import build_model
from tokbench.cli import main
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.data.video import ClipSampler
from tokbench.errors import ConfigError
from tokbench.models.files import save_image
from tokbench.models.video_files import VideoFileReconstructions, clip_stem, save_clip
from tokbench.tensors import quantize_uint8

SUITE = """
name: video-files
version: "1"
kind: video-tokenizer
track: video-recon
dataset: video-embedded
preprocess: {name: imagenet-center-crop, resolution: 64}
settings:
  clips: {frames: 9}
metrics:
  - name: video-psnr
  - name: video-ssim
  - name: video-bits-per-pixel
  - name: temporal-difference-error
"""


class Posterize(VideoTokenizer):
    """Every value rounded to one of 9 levels and a frame shift of one pixel (deterministic)."""

    def encode(self, clips: torch.Tensor) -> Encoded:
        return Encoded(payload=(clips * 8).round() / 8)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return torch.roll(encoded.payload, shifts=1, dims=-1)


def test_clip_stem_drops_the_video_extension() -> None:
    assert clip_stem("sub/a.MP4@16") == "sub/a@16"
    assert clip_stem("pan-astronaut@0") == "pan-astronaut@0"


def test_files_written_from_a_model_give_its_numbers(tmp_path: Path) -> None:
    suite = tmp_path / "video-files.yaml"
    suite.write_text(SUITE)
    codec = tokbench.evaluate(Posterize(), str(suite), limit=3, cache_features=False).record
    folder = tmp_path / "outputs"
    folder.mkdir()
    preprocess = build_preprocess("imagenet-center-crop", resolution=64)
    adapter = Posterize()
    for clip in resolve_dataset("video-embedded").clips(ClipSampler(frames=9))[:3]:
        x = torch.stack([preprocess(frame).image for frame in clip.load()])[None]
        frames = quantize_uint8(adapter.decode(adapter.encode(x)))[0].permute(0, 2, 3, 1).numpy()
        write_video(folder / f"{clip.id}.mkv", list(frames))  # FFV1: lossless
    files = tokbench.evaluate(f"reconstructions:{folder}", str(suite), cache_features=False).record
    assert files["dataset"]["items_used"] == 3
    for key in ("frame_psnr", "frame_ssim", "temporal_difference_error"):
        assert files["metrics"][key] == pytest.approx(codec["metrics"][key], rel=1e-12, abs=1e-12), key
    assert (
        "frame_bits_per_pixel" in files["not_applicable"]
        and "encode_seconds_per_frame" not in files["metrics"]
    )
    assert "frame_bits_per_pixel" in codec["not_applicable"]  # the model gives no bits either
    assert files["outputs"]["ran_elsewhere"] and files["outputs"]["files"] == 3
    reasons = {entry["item"]: entry["reason"] for entry in files["skipped"]}
    assert sorted(reasons) == sorted(
        clip.id for clip in resolve_dataset("video-embedded").clips(ClipSampler())[3:]
    )
    assert all("expected one reconstruction" in reason for reason in reasons.values())


def test_a_file_of_the_wrong_length_is_counted(tmp_path: Path) -> None:
    suite = tmp_path / "video-files.yaml"
    suite.write_text(SUITE)
    folder = tmp_path / "outputs"
    folder.mkdir()
    import numpy as np

    write_video(folder / "pan-astronaut@0.mkv", [np.zeros((64, 64, 3), dtype=np.uint8)] * 8)
    write_video(folder / "pan-chelsea@0.mkv", [np.zeros((64, 64, 3), dtype=np.uint8)] * 9)
    record = tokbench.evaluate(f"reconstructions:{folder}", str(suite), limit=2).record
    assert record["dataset"]["items_used"] == 1
    (skipped,) = record["skipped"]
    assert (
        skipped["item"] == "pan-astronaut@0"
        and "has 8 frames of 64×64, expected 9 frames" in skipped["reason"]
    )
    with pytest.raises(ConfigError, match="cannot encode new clips"):
        build_model(f"reconstructions:{folder}", kind="video-tokenizer").adapter.encode(
            torch.zeros(1, 9, 3, 64, 64)
        )


def test_saved_clips_read_back_exactly_and_a_folder_of_the_wrong_kind_is_named(tmp_path: Path) -> None:
    clips = torch.randint(
        0, 256, (2, 9, 3, 24, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    folder = tmp_path / "clips"
    assert save_clip(folder, "sub/a.mp4@0", clips[0]) == folder / "sub" / "a@0.mkv"
    save_clip(folder, "b.webm@16", clips[1])
    assert sorted(p.name for p in folder.rglob("*")) == ["a@0.mkv", "b@16.mkv", "sub"]  # no temporaries
    files = build_model(f"reconstructions:{folder}", kind="video-tokenizer").adapter
    assert isinstance(files, VideoFileReconstructions)
    assert torch.equal(files.read("sub/a.mp4@0", (9, 24, 40)), clips[0])  # FFV1: bit for bit
    assert torch.equal(files.read("b.webm@16", (9, 24, 40)), clips[1])
    with pytest.raises(ConfigError, match=r"no images .* holds 2 video file\(s\), which .* for video suites"):
        build_model(f"reconstructions:{folder}")  # an image suite's reader
    images = tmp_path / "images"
    save_image(images, "x.jpg", clips[0, 0])
    with pytest.raises(ConfigError, match=r"no videos .* holds 1 image file\(s\), which .* for image suites"):
        build_model(f"reconstructions:{images}", kind="video-tokenizer")


#: Every metric of the video-recon suite that the files reproduce (not the rate, not the seconds).
VIDEO_RECON = ("frame_psnr", "frame_ssim", "frame_lpips", "rfvd", "temporal_difference_error", "tlp")


@pytest.fixture(scope="module")
def h264_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The docs' command on the real suite, offline, on 2 embedded clips (FVD needs two):
    ``tokbench run --model h264:crf=28 --suite video-recon --save-reconstructions out/``."""
    root = tmp_path_factory.mktemp("h264-video-recon")
    run = {"out": root / "out", "store": root / "store", "cache": root / "cache", "root": root}
    arguments = ["--suite", "video-recon", "--limit", "2", "--store", str(run["store"]), "--quiet"]
    saving = ["--save-reconstructions", str(run["out"]), "--output-json", str(root / "codec.json")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOKBENCH_CACHE", str(run["cache"]))  # the originals' I3D features, kept for later
        run["status"] = main(["run", "--model", "h264:crf=28", *arguments, *saving])
    run["record"] = json.loads((root / "codec.json").read_text())
    return run


def test_h264_on_video_recon_writes_a_record_and_saves_its_clips(h264_run: dict[str, Any]) -> None:
    record = h264_run["record"]
    assert h264_run["status"] == 0
    assert [p.name for p in h264_run["store"].rglob("*.json")] == [f"{record['record_id']}.json"]
    assert record["dataset"]["items_used"] == 2 and set(VIDEO_RECON) <= set(record["metrics"])
    assert record["metrics"]["rfvd"] > 0 and record["metrics"]["frame_bits_per_pixel"] > 0
    clips = resolve_dataset("video-embedded").clips(ClipSampler(frames=17))[:2]
    files = build_model(f"reconstructions:{h264_run['out']}", kind="video-tokenizer").adapter
    assert files.stems() == {clip_stem(clip.id) for clip in clips}
    assert all(files.read(clip.id, (17, 128, 128)).dtype == torch.uint8 for clip in clips)


def test_saved_reconstructions_give_the_numbers_of_the_run_that_saved_them(
    h264_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """h264's own outputs, saved by the run that scored them (two encodes of a clip need not agree):
    every metric but the rate and the seconds, rFVD and LPIPS included, to 1e-12."""
    monkeypatch.setenv("TOKBENCH_CACHE", str(h264_run["cache"]))
    codec = h264_run["record"]
    files_json = h264_run["root"] / "files.json"
    spec = f"reconstructions:{h264_run['out']}"
    arguments = [
        "--suite",
        "video-recon",
        "--limit",
        "2",
        "--no-store",
        "--quiet",
        "--output-json",
        str(files_json),
    ]
    assert main(["run", "--model", spec, *arguments]) == 0
    files = json.loads(files_json.read_text())
    assert files["dataset"]["items_used"] == codec["dataset"]["items_used"] == 2
    for key in VIDEO_RECON:
        assert files["metrics"][key] == pytest.approx(codec["metrics"][key], rel=1e-12, abs=1e-12), key
    assert (
        "frame_bits_per_pixel" in files["not_applicable"]
        and "encode_seconds_per_frame" not in files["metrics"]
    )
    assert files["outputs"]["ran_elsewhere"] and files["outputs"]["files"] == 2 and "outputs" not in codec
    assert files["model"]["spec"].startswith("reconstructions@")
    assert files["protocol_hash"] == codec["protocol_hash"]  # saving is an output option, not protocol


def test_save_reconstructions_is_refused_where_nothing_is_reconstructed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--save-reconstructions applies to reconstruction suites"):
        tokbench.evaluate("dit", "gen", save_reconstructions=tmp_path / "out")
    assert not (tmp_path / "out").exists()
