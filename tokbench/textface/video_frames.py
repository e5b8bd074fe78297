"""TokBench-Video's frame geometry, clip chunking and the official writer step (``video_scripts``).

Every frame is resized so that its shorter side is S and its longer side ``int(round(L * S / short))``
(PIL BILINEAR), then padded with black on the long side to the next multiple of 32 (``pad // 2`` on the
left/top, the rest on the right/bottom). The reconstruction is cropped back to the resized content and
BILINEAR-resized to the original size. A frame with equal sides counts as landscape (short side: height;
the official code's tie rule could not be checked).

The official writer (``imageio.get_writer(path, fps=...)``) stores the restored frames as libx264,
``-crf 25``, yuv420p and scales a frame whose sides are not multiples of 16 up to the next multiples
(``macro_block_size=16``); ``writer_round_trip`` reproduces that step with PyAV (one swscale call,
bicubic, for the scaling and the colour conversion: not bit-identical with imageio-ffmpeg's filter chain).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tokbench.errors import DataError

#: The long side is padded to a multiple of this (``resize_padding_images``).
PAD_MULTIPLE = 32
#: imageio-ffmpeg's ``macro_block_size``: sides not multiples of this are scaled up to one.
MACRO_BLOCK = 16
#: imageio's default quality 5 for libx264.
WRITER_CRF = 25


@dataclass(frozen=True)
class FrameGeometry:
    """Where a frame of ``height``×``width`` goes at short side ``short``: resized size, pads, canvas."""

    height: int
    width: int
    short: int
    resized: tuple[int, int]
    pads: tuple[int, int, int, int]
    target: tuple[int, int]

    def meta(self) -> dict[str, Any]:
        """The official ``resize_padding_images`` meta (sizes as ``[height, width]``)."""
        top, bottom, left, right = self.pads
        return {
            "original_size": [self.height, self.width],
            "resized_size": list(self.resized),
            "pad_top": top,
            "pad_bottom": bottom,
            "pad_left": left,
            "pad_right": right,
            "short_side": "height" if self.height <= self.width else "width",
            "target_size": list(self.target),
        }


def frame_geometry(height: int, width: int, short: int) -> FrameGeometry:
    """Resize and padding of an H×W frame at short side ``short`` (the official arithmetic: Python's
    ``round``, half to even, of the float quotient)."""
    if min(height, width, short) < 1:
        raise DataError(f"cannot place a {width}x{height} frame at short side {short}")
    if height <= width:
        resized = (short, round(width * short / height))
    else:
        resized = (round(height * short / width), short)
    target = tuple(-(-side // PAD_MULTIPLE) * PAD_MULTIPLE for side in resized)
    down, across = target[0] - resized[0], target[1] - resized[1]
    pads = (down // 2, down - down // 2, across // 2, across - across // 2)
    return FrameGeometry(height, width, short, resized, pads, (target[0], target[1]))


def process_frame(frame: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """The padded uint8 canvas the tokenizer sees (BILINEAR resize, black padding)."""
    resized = Image.fromarray(frame).resize(geometry.resized[::-1], Image.BILINEAR)
    canvas = np.zeros((*geometry.target, 3), np.uint8)
    top, _, left, _ = geometry.pads
    canvas[top : top + geometry.resized[0], left : left + geometry.resized[1]] = np.asarray(resized)
    return canvas


def restore_frame(canvas: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """The reconstructed canvas cropped to its content and BILINEAR-resized to the original size."""
    top, _, left, _ = geometry.pads
    content = np.ascontiguousarray(canvas[top : top + geometry.resized[0], left : left + geometry.resized[1]])
    return np.asarray(Image.fromarray(content).resize((geometry.width, geometry.height), Image.BILINEAR))


def chunk_bounds(count: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive chunks of at most ``chunk_frames`` frames covering ``count``."""
    return [(start, min(start + chunk_frames, count)) for start in range(0, count, chunk_frames)]


def accepted_length(count: int, multiple: int, offset: int) -> int:
    """The smallest T >= ``count`` with ``(T - offset) % multiple == 0`` (and T >= offset)."""
    length = max(count, offset)
    return length + (-(length - offset)) % multiple


def pad_with_last(clip: torch.Tensor, length: int) -> torch.Tensor:
    """A T×3×H×W clip extended to ``length`` frames by repeating its last frame."""
    extra = length - clip.shape[0]
    if extra <= 0:
        return clip
    return torch.cat([clip, clip[-1:].expand(extra, *clip.shape[1:])])


def macro_block_size(height: int, width: int) -> tuple[int, int]:
    """The size imageio-ffmpeg scales a frame to: each side up to a multiple of 16."""
    return tuple(-(-side // MACRO_BLOCK) * MACRO_BLOCK for side in (height, width))  # type: ignore[return-value]


def writer_round_trip(frames: list[np.ndarray], fps: Fraction) -> list[np.ndarray]:
    """The frames as the official writer stores them and the evaluation decodes them: libx264 crf 25
    yuv420p in an mp4, each frame first scaled (bicubic) to multiples of 16; decoded as RGB."""
    import av

    height, width = frames[0].shape[:2]
    stored = macro_block_size(height, width)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = stored[1], stored[0], "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(WRITER_CRF)}
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture = picture.reformat(
                width=stored[1], height=stored[0], format="yuv420p", interpolation="BICUBIC"
            )
            picture.pts = index
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]


def read_video(path: Path, where: str) -> tuple[list[np.ndarray], Fraction]:
    """Every frame of the video at ``path`` in presentation order as H×W×3 uint8 RGB, and its frame
    rate (PyAV; the official scripts decode with imageio-ffmpeg, also FFmpeg's rgb24 conversion)."""
    try:
        import av
    except ImportError:
        raise DataError(f"{where}: decoding videos needs PyAV: pip install 'tokbench[video]'") from None
    if not path.is_file():
        raise DataError(f"{where}: video file {path} is missing")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{where}: {path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise DataError(f"{where}: {path} cannot be decoded: {str(error).splitlines()[0]}") from None
    if not frames:
        raise DataError(f"{where}: {path} has no frames")
    if len({frame.shape for frame in frames}) > 1:
        raise DataError(f"{where}: the frames of {path} change size")
    return frames, Fraction(rate)
