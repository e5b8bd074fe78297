"""Decoding one clip of a video file with PyAV, as a ``ClipSampler`` describes it.

The file is decoded from its first frame in presentation order (no seeking, so the frames are exact
whatever the container's index says) up to the clip's last frame; only the clip's frames are kept,
as RGB PIL images. Every way a file can be unusable is a ``DataError`` naming the clip: no video
stream (audio only), no frames, a file PyAV cannot open or decode (truncated), too few frames for the
clip, frames that change size, and, when the sampler takes frames as they are (``fps: null``), a
variable frame rate (resample with ``fps`` instead). Odd frame sizes are decoded as they are; the
suite's per-frame preprocessing resizes and crops them like any other.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from PIL import Image

from tokbench.data.clips import ClipSampler
from tokbench.data.decode import display_path
from tokbench.errors import DataError

#: Frame intervals differing by more than this fraction of the median interval make a video VFR.
VFR_TOLERANCE = 0.01


def decode_clip(path: Path, sampler: ClipSampler, start: int, clip_id: str) -> list[Image.Image]:
    """The sampler's frames of the clip starting at ``start`` of the video at ``path``, as RGB images."""
    try:
        import av
    except ImportError:
        raise DataError(f"{clip_id}: decoding videos needs PyAV: pip install 'tokbench[video]'") from None
    where = f"{clip_id} ({display_path(path)})"
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise DataError(f"{where}: cannot open the video: {_one_line(error)}") from None
    with container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none (an empty file?)"
            raise DataError(f"{where}: the file has no video stream (streams: {kinds})")
        stream = container.streams.video[0]
        try:
            if sampler.fps is None:
                frames = _native_frames(container, stream, sampler, start, where)
            else:
                frames = _resampled_frames(container, stream, sampler, start, where)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise DataError(f"{where}: the video cannot be decoded: {_one_line(error)}") from None
    sizes = sorted({image.size for image in frames})
    if len(sizes) > 1:
        raise DataError(f"{where}: the clip's frames change size ({', '.join(f'{w}×{h}' for w, h in sizes)})")
    return frames


def _native_frames(
    container: Any, stream: Any, sampler: ClipSampler, start: int, where: str
) -> list[Image.Image]:
    """Frames ``start``, ``start + stride``, ... of the decoded sequence; refuses a variable frame rate."""
    wanted = set(sampler.indices(start))
    last = max(wanted)
    kept: list[Image.Image] = []
    times: list[float] = []
    count = 0
    for frame in container.decode(stream):
        if frame.time is not None:
            times.append(float(frame.time))
        if count in wanted:
            kept.append(frame.to_image().convert("RGB"))
        count += 1
        if count > last:
            break
    if count == 0:
        raise DataError(f"{where}: the video stream has no frames")
    problem = _variable_rate(times)
    if problem is not None:
        raise DataError(
            f"{where}: variable frame rate ({problem}); set the suite's settings.clips.fps to resample it"
        )
    if count <= last:
        raise DataError(
            f"{where}: the video has {count} frames; the clip needs frames {start}…{last} "
            f"({sampler.frames} frames, stride {sampler.stride})"
        )
    return kept


def _resampled_frames(
    container: Any, stream: Any, sampler: ClipSampler, start: int, where: str
) -> list[Image.Image]:
    """The frames shown at times ``index / fps`` after the first frame (the last one presented at or
    before each instant), for the clip's indices."""
    fps = float(sampler.fps)
    targets = [index / fps for index in sampler.indices(start)]
    kept: list[Image.Image] = []
    first: float | None = None
    previous: Any = None
    previous_time = 0.0
    interval = 0.0
    count = 0
    for frame in container.decode(stream):
        if frame.time is None:
            raise DataError(
                f"{where}: the frames have no timestamps, so they cannot be resampled to {fps} fps"
            )
        count += 1
        now = float(frame.time) - (first if first is not None else float(frame.time))
        first = float(frame.time) if first is None else first
        while previous is not None and len(kept) < len(targets) and targets[len(kept)] < now:
            kept.append(previous.to_image().convert("RGB"))
        if len(kept) == len(targets):
            return kept
        interval = now - previous_time if previous is not None else interval
        previous, previous_time = frame, now
    if count == 0:
        raise DataError(f"{where}: the video stream has no frames")
    # the last frame stays on screen for one more frame interval
    while len(kept) < len(targets) and targets[len(kept)] < previous_time + max(interval, 1.0 / fps):
        kept.append(previous.to_image().convert("RGB"))
    if len(kept) < len(targets):
        raise DataError(
            f"{where}: the video lasts {previous_time + interval:.3f} s ({count} frames); the clip needs "
            f"{targets[-1]:.3f} s at {fps:g} fps"
        )
    return kept


def _variable_rate(times: list[float]) -> str | None:
    """A description of the uneven frame intervals, or None when they are even (or unknown)."""
    intervals = sorted(b - a for a, b in itertools.pairwise(times))
    if len(intervals) < 2:
        return None
    median = intervals[len(intervals) // 2]
    if median <= 0 or (intervals[-1] - intervals[0]) <= VFR_TOLERANCE * median:
        return None if median > 0 else "frames share a timestamp"
    return f"frame intervals from {intervals[0] * 1000:.1f} to {intervals[-1] * 1000:.1f} ms"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
