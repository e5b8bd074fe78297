"""Clips of a video dataset: the fixed sampler that cuts them and the lazily decoded clip item."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from tokbench.errors import ConfigError


@dataclass(frozen=True)
class ClipSampler:
    """Which frames make a clip: ``frames`` frames, ``stride`` apart, from frame ``start``.

    ``fps=None`` indexes the decoded frames as they are (a variable-frame-rate video is then refused);
    ``fps=F`` first resamples the video to ``F`` frames per second by presentation time (each instant
    shows the last frame presented at or before it), then indexes that. ``clips_per_video`` clips start
    at ``start``, ``start + spacing``, ... (``spacing`` defaults to the span of one clip).
    """

    frames: int = 16
    start: int = 0
    stride: int = 1
    fps: float | None = None
    clips_per_video: int = 1
    spacing: int | None = None

    def __post_init__(self) -> None:
        for name, minimum in (("frames", 1), ("start", 0), ("stride", 1), ("clips_per_video", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"clip sampler: {name} must be an integer >= {minimum}, got {value!r}")
        if self.spacing is not None and (
            isinstance(self.spacing, bool) or not isinstance(self.spacing, int) or self.spacing < 1
        ):
            raise ConfigError(f"clip sampler: spacing must be an integer >= 1, got {self.spacing!r}")
        if self.fps is not None and (
            isinstance(self.fps, bool) or not isinstance(self.fps, int | float) or not self.fps > 0
        ):
            raise ConfigError(f"clip sampler: fps must be a number > 0 or null, got {self.fps!r}")

    @classmethod
    def from_settings(cls, settings: Any, where: str) -> ClipSampler:
        """Build from a suite's ``settings.clips`` mapping, naming unknown keys."""
        if settings is None:
            return cls()
        if not isinstance(settings, dict):
            raise ConfigError(f"{where}: settings.clips must be a mapping, got {type(settings).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown settings.clips key(s) {unknown}; known: {sorted(known)}")
        return cls(**settings)

    @property
    def span(self) -> int:
        """Frames from a clip's first to its last, inclusive."""
        return (self.frames - 1) * self.stride + 1

    def starts(self) -> list[int]:
        """First frame (in the sampled frame sequence) of each clip of a video."""
        spacing = self.spacing if self.spacing is not None else self.span
        return [self.start + n * spacing for n in range(self.clips_per_video)]

    def indices(self, start: int) -> list[int]:
        """Frame indices of the clip starting at ``start``."""
        return [start + k * self.stride for k in range(self.frames)]

    def describe(self) -> dict[str, Any]:
        """Every field (enters the protocol hash)."""
        return asdict(self)


@dataclass(frozen=True)
class ClipItem:
    """One clip: a stable id, where it comes from, and how to decode its frames as RGB images.

    ``load`` returns exactly the sampler's ``frames`` images, all one size, or raises ``DataError``
    naming the clip.
    """

    id: str
    source: str
    load: Callable[[], list[Image.Image]] = field(compare=False, repr=False)
