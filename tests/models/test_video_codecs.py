"""The PyAV video codecs (h264, h265, av1) and the video baselines: real bytes, identical bytes and
frames on every encode, quality falling as CRF rises, odd sizes padded and cropped back."""

from __future__ import annotations

import io
import itertools

import pytest
import torch
from video_clips import panning_clip, psnr

from tokbench.adapters import build_model
from tokbench.errors import ConfigError

av = pytest.importorskip("av")

#: Four CRF points per codec, rising (x264/x265 0-51, SVT-AV1 1-63); a fast AV1 preset.
SWEEPS = {
    "h264": ("h264", (16, 26, 36, 46)),
    "h265": ("h265", (16, 26, 36, 46)),
    "av1": ("av1:preset=12", (20, 35, 50, 63)),
}
STREAM_CODEC = {"h264": "h264", "h265": "hevc", "av1": "av1"}


def _with_crf(spec: str, crf: int) -> str:
    return f"{spec}{',' if ':' in spec else ':'}crf={crf}"


@pytest.mark.parametrize("name", list(SWEEPS))
def test_bits_are_the_real_stream_bytes_and_it_decodes_with_ffmpeg(name: str) -> None:
    codec = build_model(_with_crf(SWEEPS[name][0], 30)).adapter
    clips = panning_clip(9, 32, 32, count=2)
    encoded = codec.encode(clips)
    assert encoded.bits.tolist() == [8.0 * len(data) for data, _ in encoded.payload]
    for data, _ in encoded.payload:
        with av.open(io.BytesIO(data), "r", format=codec.muxer) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name in (STREAM_CODEC[name], "libdav1d")
            assert len(list(container.decode(stream))) == 9
    decoded = codec.decode(encoded)
    assert decoded.shape == clips.shape and decoded.dtype == torch.float32
    assert psnr(decoded, clips) > 20.0


@pytest.mark.parametrize("name", list(SWEEPS))
def test_encoding_is_deterministic_across_calls_and_instances(name: str) -> None:
    spec = _with_crf(SWEEPS[name][0], 30)
    clips = panning_clip(16, 64, 64)
    first = build_model(spec).adapter.encode(clips)
    second = build_model(spec).adapter.encode(clips)
    assert first.payload[0][0] == second.payload[0][0]
    codec = build_model(spec).adapter
    assert torch.equal(codec.decode(first), codec.decode(second))


@pytest.mark.parametrize("name", list(SWEEPS))
def test_quality_and_size_fall_as_crf_rises(name: str) -> None:
    spec, crfs = SWEEPS[name]
    clips = panning_clip(9, 64, 64)
    points = []
    for crf in crfs:
        codec = build_model(_with_crf(spec, crf)).adapter
        encoded = codec.encode(clips)
        points.append((psnr(codec.decode(encoded), clips), float(encoded.bits[0])))
    quality, bits = zip(*points, strict=True)
    assert all(a > b for a, b in itertools.pairwise(quality)), f"{name}: PSNR {quality}"
    assert all(a > b for a, b in itertools.pairwise(bits)), f"{name}: bits {bits}"


@pytest.mark.parametrize("name", list(SWEEPS))
def test_odd_sizes_are_edge_padded_then_cropped_back(name: str) -> None:
    codec = build_model(_with_crf(SWEEPS[name][0], 30)).adapter
    clip = panning_clip(9, 33, 31)
    encoded = codec.encode(clip)
    decoded = codec.decode(encoded)
    assert decoded.shape == clip.shape
    assert psnr(decoded, clip) > 20.0
    # the stream is the one of the clip padded by repeating its last row and column
    height, width = codec._padded(33, 31)
    assert (height, width) == ((128, 128) if name == "h265" else (34, 32))
    padded = torch.nn.functional.pad(clip[0], (0, width - 31, 0, height - 33), mode="replicate")[None]
    padded_encoded = codec.encode(padded)
    assert padded_encoded.payload[0][0] == encoded.payload[0][0]
    assert torch.equal(codec.decode(padded_encoded)[..., :33, :31], decoded)


def test_more_frames_than_the_b_frame_delay_all_come_back() -> None:
    codec = build_model("h264:crf=30,preset=slow").adapter
    clips = panning_clip(17, 32, 32)
    assert codec.decode(codec.encode(clips)).shape == clips.shape


def test_chroma_format_and_fps_are_honoured() -> None:
    clips = panning_clip(9, 32, 32)
    full = build_model("h264:crf=20,pix_fmt=yuv444p").adapter
    data = full.encode(clips).payload[0][0]
    with av.open(io.BytesIO(data), "r", format="h264") as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
    slow, fast = (build_model(f"h264:crf=30,fps={fps}").adapter for fps in (24, 60))
    assert slow.encode(clips).payload[0][0] != fast.encode(clips).payload[0][0]


@pytest.mark.parametrize(
    "spec,message",
    [
        ("h264:crf=52", "crf must be an integer in \\[0, 51\\]"),
        ("av1:crf=0", "crf must be an integer in \\[1, 63\\]"),
        ("h265:preset=turbo", "preset must be one of ultrafast"),
        ("av1:preset=14", "preset must be an integer in \\[0, 13\\]"),
        ("av1:pix_fmt=yuv444p", "pix_fmt must be one of yuv420p, got 'yuv444p'"),
        ("h264:fps=0", "fps must be an integer"),
    ],
)
def test_bad_settings_are_refused_naming_them(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(spec)


def test_images_instead_of_clips_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"h264: expects float32 clips \[N, T, 3, H, W\].*\(2, 3, 32, 32\)"):
        build_model("h264").adapter.encode(torch.rand(2, 3, 32, 32))


def test_video_identity_is_lossless_at_24_bits_per_pixel_per_frame() -> None:
    identity = build_model("video-identity").adapter
    clips = panning_clip(9, 32, 32, count=2)
    encoded = identity.encode(clips)
    assert torch.equal(identity.decode(encoded), clips)
    assert encoded.bits.tolist() == [24.0 * 9 * 32 * 32] * 2


def test_video_resize_is_the_image_resize_frame_by_frame() -> None:
    resize = build_model("video-resize:factor=2,filter=bicubic").adapter
    image_resize = build_model("resize:factor=2,filter=bicubic").adapter
    clips = panning_clip(9, 32, 32, count=2)
    encoded = resize.encode(clips)
    assert encoded.bits.tolist() == [24.0 * 9 * 16 * 16] * 2
    frames = image_resize.decode(image_resize.encode(clips.flatten(0, 1)))
    assert torch.equal(resize.decode(encoded), frames.view(clips.shape))


def test_the_record_names_what_makes_the_stream() -> None:
    described = build_model("h265:crf=30").adapter.describe()
    assert described["encoder"] == "libx265" and described["stream_format"] == "hevc"
    assert "frame-threads=1" in described["options"]["x265-params"] and described["fps"] == 24
    assert "128 px" in described["padding"] and described["pyav"] == av.__version__
    assert build_model("h264").adapter.describe()["options"] == {
        "crf": "28",
        "preset": "medium",
        "threads": "1",
    }
