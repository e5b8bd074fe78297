"""Real video codecs through PyAV (FFmpeg inside) -- H.264 (libx264), H.265 (libx265) and AV1
(SVT-AV1) at a CRF -- and the weightless video baselines ``video-identity`` and ``video-resize``.

A codec encodes each clip on its own into a raw elementary stream in memory (Annex B for H.264 and
H.265, a Low Overhead OBU stream for AV1: no container), so ``bits`` is that stream's real size
× 8, parameter sets and the encoder's informational SEI included. Frames are rounded to uint8,
converted to YUV by swscale (BT.601, limited range, bilinear chroma resampling) and back to RGB the
same way after decoding. Timestamps are frame numbers at a fixed ``fps`` (CRF rate control reads
the frame rate, so it is an argument and part of the identity).

Determinism: every encoder and decoder runs on one thread (x264 ``threads=1``; x265
``pools=none:frame-threads=1``; SVT-AV1 ``lp=1``; dav1d and FFmpeg decoders ``thread_count=1``), so
the same clip gives the same bytes and frames on every call. libx265 (in PyAV 18.1.0) is unstable
on small pictures: frames of 16-100 pixels a side gave different bytes from call to call
(64×64 among them; switching off SAO or adaptive quantisation hid it on some sizes only) and 40×40
aborted with heap corruption, while every size tried from 128 up was stable, so frames are padded up
to 128 pixels a side for H.265 (the padding is part of its bits).

Sizes: 4:2:0 needs even sides (4:2:2 an even width). A frame that does not fit is padded at the
right and bottom by repeating its last column and row (as FFmpeg's ``pad`` filter users do), encoded,
and the decoded frame is cropped back: ``bits`` counts the padded frame, which is what was stored.
"""

from __future__ import annotations

import io
import os
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, VideoTokenizer
from tokbench.errors import ConfigError, DataError
from tokbench.models.codecs import RAW_BITS_PER_PIXEL, Resize
from tokbench.tensors import quantize_uint8, uint8_to_float

#: Chroma subsampling of each supported pixel format: (horizontal, vertical) factor.
PIXEL_FORMATS = {"yuv420p": (2, 2), "yuv422p": (2, 1), "yuv444p": (1, 1)}
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


def import_av(owner: str) -> Any:
    """The ``av`` (PyAV) module, or a ``ConfigError`` naming ``owner`` and how to install it."""
    try:
        import av
    except ImportError:
        raise ConfigError(f"{owner} needs PyAV: pip install 'tokbench[video]' (or pip install av)") from None
    return av


def check_clips(clips: Any, owner: str) -> None:
    """A ``ConfigError`` naming ``owner`` unless ``clips`` is float32 N×T×3×H×W with T, H, W >= 1."""
    fits = (
        isinstance(clips, torch.Tensor)
        and clips.dtype == torch.float32
        and clips.ndim == 5
        and clips.shape[2] == 3
        and min(clips.shape[1], clips.shape[3], clips.shape[4]) >= 1
    )
    if not fits:
        shown = (
            f"{clips.dtype} {tuple(clips.shape)}" if isinstance(clips, torch.Tensor) else type(clips).__name__
        )
        raise ConfigError(f"{owner}: expects float32 clips [N, T, 3, H, W] in [0, 1], got {shown}")


def _padded_side(side: int, multiple: int, minimum: int) -> int:
    side = max(side, minimum)
    return side + (-side) % multiple


class VideoCodec(VideoTokenizer):
    """A PyAV encoder at a CRF and preset, one clip per raw stream (subclasses name the encoder)."""

    #: FFmpeg encoder and raw muxer (also the demuxer that reads the stream back).
    encoder: ClassVar[str] = ""
    muxer: ClassVar[str] = ""
    family: ClassVar[str] = ""
    crf_range: ClassVar[tuple[int, int]] = (0, 51)
    #: Frames smaller than this (pixels per side) are padded up to it.
    min_side: ClassVar[int] = 1

    def __init__(
        self, crf: int = 28, preset: str = "medium", pix_fmt: str = "yuv420p", fps: int = 24
    ) -> None:
        av = import_av(self.encoder)
        name = type(self).__name__.lower()
        low, high = self.crf_range
        if isinstance(crf, bool) or not isinstance(crf, int) or not low <= crf <= high:
            raise ConfigError(f"{name}: crf must be an integer in [{low}, {high}], got {crf!r}")
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 240:
            raise ConfigError(f"{name}: fps must be an integer in [1, 240], got {fps!r}")
        supported = {f.name for f in av.Codec(self.encoder, "w").video_formats}
        choices = [p for p in PIXEL_FORMATS if p in supported]
        if pix_fmt not in choices:
            raise ConfigError(f"{name}: pix_fmt must be one of {', '.join(choices)}, got {pix_fmt!r}")
        self.crf, self.preset, self.pix_fmt, self.fps = crf, self._checked_preset(preset), pix_fmt, fps
        self.name = name

    def _checked_preset(self, preset: Any) -> str:
        if preset not in X26X_PRESETS:
            raise ConfigError(
                f"{type(self).__name__.lower()}: preset must be one of {', '.join(X26X_PRESETS)}"
            )
        return str(preset)

    def options(self) -> dict[str, str]:
        """The encoder's FFmpeg options (rate control, preset and the one-thread settings)."""
        return {"crf": str(self.crf), "preset": self.preset}

    def describe(self) -> dict[str, Any]:
        """Encoder, stream format, options and conversions, for records."""
        av = import_av(self.encoder)
        return {
            "encoder": self.encoder,
            "stream_format": self.muxer,
            "options": self.options(),
            "pix_fmt": self.pix_fmt,
            "fps": self.fps,
            "colour_conversion": "swscale BT.601 limited range, bilinear chroma",
            "padding": f"edge-replicated to the chroma multiple, at least {self.min_side} px a side",
            "ffmpeg": {k: list(v) for k, v in av.library_versions.items()},
            "pyav": av.__version__,
        }

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """The codec at its default CRF."""
        return (
            ModelCard(
                cls.family,
                cls.__name__.lower(),
                "codec",
                verification=f"library: PyAV (FFmpeg {cls.encoder})",
                note="bits are the raw elementary stream's bytes",
            ),
        )

    def _padded(self, height: int, width: int) -> tuple[int, int]:
        across, down = PIXEL_FORMATS[self.pix_fmt]
        return _padded_side(height, down, self.min_side), _padded_side(width, across, self.min_side)

    def encode(self, clips: torch.Tensor) -> Encoded:
        check_clips(clips, self.name)
        height, width = clips.shape[-2:]
        padded = self._padded(height, width)
        frames = quantize_uint8(clips.detach().cpu())
        if padded != (height, width):
            pad = (0, padded[1] - width, 0, padded[0] - height)
            frames = torch.nn.functional.pad(frames.flatten(0, 1).float(), pad, mode="replicate")
            frames = frames.to(torch.uint8).view(*clips.shape[:3], *padded)
        payload = [(self._encode_clip(clip), (height, width)) for clip in frames]
        bits = torch.tensor([8.0 * len(data) for data, _ in payload], dtype=torch.float64)
        return Encoded(payload=payload, bits=bits)

    def _encode_clip(self, clip: torch.Tensor) -> bytes:
        av = import_av(self.encoder)
        buffer = io.BytesIO()
        with av.open(buffer, "w", format=self.muxer) as container:
            stream = container.add_stream(self.encoder, rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = clip.shape[-1], clip.shape[-2], self.pix_fmt
            stream.codec_context.thread_count = 1
            stream.options = self.options()
            for index, frame in enumerate(clip.permute(0, 2, 3, 1).numpy()):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=self.pix_fmt)
                video_frame.pts = index
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return buffer.getvalue()

    def decode(self, encoded: Encoded) -> torch.Tensor:
        clips = [self._decode_clip(data, size) for data, size in encoded.payload]
        lengths = {clip.shape[0] for clip in clips}
        if len(lengths) > 1:
            raise DataError(f"{self.name}: the streams decode to different frame counts {sorted(lengths)}")
        return uint8_to_float(torch.stack(clips))

    def _decode_clip(self, data: bytes, size: tuple[int, int]) -> torch.Tensor:
        av = import_av(self.encoder)
        height, width = size
        with av.open(io.BytesIO(data), "r", format=self.muxer) as container:
            stream = container.streams.video[0]
            stream.thread_count = 1
            frames = [
                torch.from_numpy(frame.to_ndarray(format="rgb24")[:height, :width].copy())
                for frame in container.decode(stream)
            ]
        if not frames:
            raise DataError(f"{self.name}: a {len(data)}-byte stream decoded to no frames")
        return torch.stack(frames).permute(0, 3, 1, 2)


class H264(VideoCodec):
    """H.264 / AVC through libx264 (``crf`` 0-51, lower is better; x26x ``preset`` names)."""

    encoder, muxer, family = "libx264", "h264", "H.264 (x264)"

    def options(self) -> dict[str, str]:
        return {**super().options(), "threads": "1"}


class H265(VideoCodec):
    """H.265 / HEVC through libx265 (``crf`` 0-51; x26x ``preset`` names); frames padded to 128 px."""

    encoder, muxer, family = "libx265", "hevc", "H.265 (x265)"
    min_side = 128

    def options(self) -> dict[str, str]:
        return {**super().options(), "x265-params": "pools=none:frame-threads=1:log-level=error"}


class Av1(VideoCodec):
    """AV1 through SVT-AV1 (``crf`` 1-63; ``preset`` 0-13, slower to faster; 4:2:0 only)."""

    encoder, muxer, family = "libsvtav1", "obu", "AV1 (SVT-AV1)"
    crf_range = (1, 63)

    def __init__(self, crf: int = 35, preset: int = 8, pix_fmt: str = "yuv420p", fps: int = 24) -> None:
        super().__init__(crf=crf, preset=preset, pix_fmt=pix_fmt, fps=fps)  # type: ignore[arg-type]
        # SVT-AV1 prints ~25 banner and configuration lines per encoder to stderr: errors only, unless
        # the user chose a level (it reads SVT_LOG when an encoder starts; output is unaffected)
        os.environ.setdefault("SVT_LOG", "1")

    def _checked_preset(self, preset: Any) -> str:
        if isinstance(preset, bool) or not isinstance(preset, int) or not 0 <= preset <= 13:
            raise ConfigError(f"av1: preset must be an integer in [0, 13], got {preset!r}")
        return str(preset)

    def options(self) -> dict[str, str]:
        return {**super().options(), "svtav1-params": "lp=1"}


class VideoIdentity(VideoTokenizer):
    """Returns its input; its size is the raw uint8 RGB clip (24 bits per pixel per frame)."""

    def __init__(self) -> None:
        pass

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """The upper bound of every video table: 24 bits per pixel per frame, no loss."""
        return (ModelCard("Identity (video)", "video-identity", "codec", note="output is the input"),)

    def encode(self, clips: torch.Tensor) -> Encoded:
        check_clips(clips, "video-identity")
        n, t, _, h, w = clips.shape
        bits = torch.full((n,), float(RAW_BITS_PER_PIXEL * t * h * w), dtype=torch.float64)
        return Encoded(payload=clips, bits=bits)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return encoded.payload


class VideoResize(VideoTokenizer):
    """Every frame downsampled by ``factor`` and upsampled back with Pillow (the ``resize`` baseline
    frame by frame, TokBench-Video's "Resize" row); its size is the raw uint8 RGB reduced clip."""

    def __init__(self, factor: float = 2.0, filter: str = "lanczos") -> None:
        self.frames = Resize(factor=factor, filter=filter)
        self.factor, self.filter = factor, filter

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """TokBench-Video's Resize baseline (Pillow's resampling, Lanczos by default)."""
        return (
            ModelCard("Resize (video)", "video-resize", "codec", verification="library: Pillow Image.resize"),
        )

    def encode(self, clips: torch.Tensor) -> Encoded:
        check_clips(clips, "video-resize")
        n, t = clips.shape[:2]
        inner = self.frames.encode(clips.flatten(0, 1))
        bits = inner.bits.view(n, t).sum(dim=1)
        return Encoded(payload=(inner, (n, t)), bits=bits)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        inner, (n, t) = encoded.payload
        frames = self.frames.decode(inner)
        return frames.view(n, t, *frames.shape[1:])
