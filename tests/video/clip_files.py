"""Writing small test videos with PyAV: exact (FFV1) clips whose frame k is a flat colour of value
``colour(k)``, lossy H.264 ones, variable-frame-rate ones, audio-only and empty files."""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np


def colour(index: int) -> int:
    """The grey level of frame ``index`` in the flat clips (distinct for the first 40 frames)."""
    return (17 + 6 * index) % 256


def flat_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """``count`` H×W×3 uint8 frames, frame k filled with ``colour(k)``."""
    return [np.full((height, width, 3), colour(k), dtype=np.uint8) for k in range(count)]


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    codec: str = "ffv1",
    rate: int = 8,
    times_ms: Sequence[int] | None = None,
) -> Path:
    """Encode RGB frames (FFV1 in .mkv is lossless; libx264 is not); ``times_ms`` gives each frame's
    presentation time (a variable frame rate)."""
    pixel_format = "bgr0" if codec == "ffv1" else "yuv420p"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=1000 if times_ms is not None else rate)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = pixel_format
        if times_ms is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path) -> Path:
    """An AAC audio track and no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_empty(path: Path) -> Path:
    """A container with a declared video stream and not one frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path
