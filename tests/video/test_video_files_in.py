"""``reconstructions:DIR`` on a video suite: clips made elsewhere give the numbers of the model that
made them.

The model is an in-test deterministic one: the h264 adapter's bytes can differ between two encodes of
the same clip (seen on a loaded machine), which would make the comparison flaky."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from clip_files import write_video

import tokbench
from tokbench.adapters.base import Encoded, VideoTokenizer
from tokbench.adapters.registry import build_model
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
