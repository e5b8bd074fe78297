"""The video-recon track end to end on the embedded clips and on video folders, offline."""

from __future__ import annotations

import gc
import itertools
import math
import warnings
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from clip_files import flat_frames, write_audio_only, write_video

import tokbench
from tokbench.adapters.base import Encoded, VideoTokenizer
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.data.video import ClipSampler
from tokbench.errors import ConfigError, DataError
from tokbench.metrics.psnr import psnr_per_image
from tokbench.records import validate_record
from tokbench.tensors import quantize_uint8

#: Frame metrics only (no I3D): fast enough to run many times.
FAST_SUITE = """
name: video-fast
version: "1"
kind: video-tokenizer
track: video-recon
dataset: video-embedded
preprocess: {{name: imagenet-center-crop, resolution: {side}}}
settings:
  clips: {{frames: {frames}}}
metrics:
  - name: video-psnr
  - name: video-bits-per-pixel
  - name: temporal-difference-error
"""


class TemporalBlur(VideoTokenizer):
    """Each frame blended with the previous one (the first with the next) by ``strength``; claims 8 bits
    per pixel per frame; counts the live frame-sized tensors at each encode."""

    def __init__(self, strength: float = 0.5) -> None:
        self.strength = strength
        self.live_tensors: list[int] = []

    def encode(self, clips: torch.Tensor) -> Encoded:
        frame = clips[0, 0].numel()
        with warnings.catch_warnings():  # isinstance on torch's deprecated module attributes warns
            warnings.simplefilter("ignore")
            live = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.numel() >= frame)
        self.live_tensors.append(live)
        frames, height, width = clips.shape[1], clips.shape[3], clips.shape[4]
        bits = torch.full((clips.shape[0],), 8.0 * frames * height * width, dtype=torch.float64)
        return Encoded(payload=clips, bits=bits, num_tokens=frames)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        clips = encoded.payload
        previous = torch.cat([clips[:, 1:2], clips[:, :-1]], dim=1)  # frame 0 takes frame 1
        return (1 - self.strength) * clips + self.strength * previous


class CausalFour(TemporalBlur):
    """Takes 4k + 1 frames, as causal video VAEs with 4× temporal compression do."""

    frame_multiple: ClassVar[int] = 4
    frame_offset: ClassVar[int] = 1


def _suite(root: Path, side: int = 64, frames: int = 17) -> str:
    path = root / f"video-fast-{side}-{frames}.yaml"
    path.write_text(FAST_SUITE.format(side=side, frames=frames))
    return str(path)


def test_video_recon_writes_a_valid_record_with_every_metric(tmp_path: Path) -> None:
    result = tokbench.evaluate(TemporalBlur(0.5), "video-recon", limit=2, store=tmp_path / "store")
    record = result.record
    validate_record(record)
    metrics = record["metrics"]
    expected = {"frame_psnr", "frame_ssim", "frame_lpips", "rfvd", "frame_bits_per_pixel", "tlp"}
    assert expected | {"temporal_difference_error", "encode_seconds_per_frame", "num_tokens"} <= set(metrics)
    assert math.isfinite(metrics["frame_psnr"]) and metrics["rfvd"] > 0 and metrics["rfvd_count"] == 2
    assert metrics["frame_bits_per_pixel"] == 8.0 and metrics["num_tokens"] == 17
    assert metrics["temporal_difference_error"] > 0 and metrics["frame_lpips"] > 0
    assert record["dataset"]["items_used"] == 2 and record["metric_info"]["rfvd"]["label"] == "rFVD"


def test_frame_metrics_average_frames_then_clips(tmp_path: Path) -> None:
    record = tokbench.evaluate(TemporalBlur(0.3), _suite(tmp_path), limit=3, cache_features=False).record
    preprocess = build_preprocess("imagenet-center-crop", resolution=64)
    per_clip, differences = [], []
    for clip in resolve_dataset("video-embedded").clips(ClipSampler(frames=17))[:3]:
        x = torch.stack([preprocess(frame).image for frame in clip.load()])[None]
        original, reconstructed = quantize_uint8(x), quantize_uint8(TemporalBlur(0.3).decode(Encoded(x)))
        per_clip.append(psnr_per_image(original[0], reconstructed[0]).mean())
        o, r = original.double(), reconstructed.double()
        differences.append(((o[:, 1:] - o[:, :-1]) - (r[:, 1:] - r[:, :-1])).abs().mean())
    assert record["metrics"]["frame_psnr"] == pytest.approx(float(torch.stack(per_clip).mean()), rel=1e-12)
    tde = float(torch.stack(differences).mean())
    assert record["metrics"]["temporal_difference_error"] == pytest.approx(tde, rel=1e-12)


@pytest.mark.slow  # I3D on 12 clips of 9 frames: ~40 s of CPU (minutes of wall time on a loaded machine)
def test_fvd_is_zero_for_identity_and_grows_with_h264_crf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))  # the originals' I3D features, once
    suite = tmp_path / "fvd.yaml"
    text = FAST_SUITE.format(side=128, frames=17).replace(
        "clips: {frames: 17}", "clips: {frames: 17}\n  fvd_frames: 9"
    )
    suite.write_text(text + "  - {name: fvd, judge: i3d}\njudges:\n  i3d: {name: i3d-kinetics-400}\n")
    identity = tokbench.evaluate("video-identity", str(suite), limit=2).record["metrics"]
    assert abs(identity["fvd"]) <= 1e-6 and identity["frame_psnr"] == math.inf
    assert identity["temporal_difference_error"] == 0.0
    fvds = [
        tokbench.evaluate(f"h264:crf={crf}", str(suite), limit=2).record["metrics"]["fvd"]
        for crf in (18, 30, 42, 51)
    ]
    assert all(a < b for a, b in itertools.pairwise(fvds)), fvds
    assert fvds[0] > 1.0


def test_clip_lengths_and_inputs_are_refused_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not accept clips of 16 frames.*\(T - 1\) % 4 == 0"):
        tokbench.evaluate(CausalFour(), _suite(tmp_path, frames=16))
    assert tokbench.evaluate(CausalFour(), _suite(tmp_path), limit=1).record["dataset"]["items_used"] == 1
    short = tmp_path / "short.yaml"
    short.write_text(
        FAST_SUITE.format(side=64, frames=8)
        + "  - {name: fvd, judge: i3d}\njudges:\n  i3d: {name: i3d-kinetics-400}\n"
    )
    with pytest.raises(ConfigError, match=r"FVD needs the first 16 frames of each clip.*clips of 8 frames"):
        tokbench.evaluate(TemporalBlur(), str(short))
    short.write_text(short.read_text().replace("clips: {frames: 8}", "clips: {frames: 8}\n  fvd_frames: 8"))
    with pytest.raises(ConfigError, match=r"every 8-frame clip .* outside the I3D's domain"):
        tokbench.evaluate(TemporalBlur(), str(short))
    with pytest.raises(ConfigError, match="dataset 'embedded' holds images"):
        tokbench.evaluate(TemporalBlur(), _suite(tmp_path), data="embedded")
    with pytest.raises(ConfigError, match="evaluates videotokenizers; model 'identity' is a tokenizer"):
        tokbench.evaluate("identity", _suite(tmp_path))


def test_bad_files_are_counted_with_their_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mkv", "b.mkv"):
        write_video(folder / name, flat_frames(20, height=64, width=80))
    write_video(folder / "c_odd.mkv", flat_frames(20, height=67, width=81))
    write_video(folder / "d_short.mkv", flat_frames(4))
    write_audio_only(folder / "e_audio.mp4")
    (folder / "f_truncated.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom")
    record = tokbench.evaluate(TemporalBlur(), _suite(tmp_path), data=f"videofolder:{folder}").record
    assert record["dataset"]["items_used"] == 3
    reasons = {entry["item"]: entry["reason"] for entry in record["skipped"]}
    assert sorted(reasons) == ["d_short.mkv@0", "e_audio.mp4@0", "f_truncated.mp4@0"]
    assert "has 4 frames" in reasons["d_short.mkv@0"] and "no video stream" in reasons["e_audio.mp4@0"]
    with pytest.raises(DataError, match=r"d_short\.mkv@0"):
        tokbench.evaluate(TemporalBlur(), _suite(tmp_path), data=f"videofolder:{folder}", on_error="fail")


def test_no_clip_is_held_after_it_is_scored(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for n in range(6):
        write_video(folder / f"{n}.mkv", flat_frames(17, height=64, width=64))
    tokenizer = TemporalBlur()
    tokbench.evaluate(tokenizer, _suite(tmp_path), data=f"videofolder:{folder}", batch_size=1)
    assert len(tokenizer.live_tensors) == 6
    assert max(tokenizer.live_tensors) == tokenizer.live_tensors[0], tokenizer.live_tensors
