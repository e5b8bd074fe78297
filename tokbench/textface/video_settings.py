"""The ``tokbench-video`` track's settings, validated.

- ``resolutions``: ``[{resolution: S, text: [4 edges], face: [4 edges]}, ...]`` (S: the short side);
- ``bucket_edges``: ``855802d`` (the only release with video edges; checked against its table) or
  ``custom``;
- ``save``: ``lossless`` (score the restored uint8 frames) or ``imageio-libx264`` (the official writer:
  libx264 crf 25 yuv420p, sides scaled up to multiples of 16, decoded back; see ``video_frames``);
- ``ocr_batches``: ``per-instance`` or ``official`` (batches of 64 crops per annotation file, read with
  their ground truths, a batch holding a character outside the vocabulary dropped whole);
- ``chunk_frames``: the tokenizer sees at most this many consecutive frames at once; each chunk is padded
  by repeating its last frame to the nearest count the tokenizer accepts and trimmed after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokbench.errors import ConfigError
from tokbench.textface.settings import (
    OCR_BATCH_MODES,
    Settings,
    check_choice,
    check_keys,
    check_official_edges,
    resolutions_from,
)

SAVE_MODES = ("lossless", "imageio-libx264")
SETTINGS_KEYS = ("resolutions", "bucket_edges", "save", "ocr_batches", "chunk_frames")
#: ``compute_all_metrics.py`` (855802d) video edges per short side.
VIDEO_EDGES: dict[str, dict[int, tuple[float, ...]]] = {
    "text": {256: (0.01, 0.02, 0.03, 1.0), 480: (0.005, 0.01, 0.02, 1.0)},
    "face": {256: (0.05, 0.1, 0.2, 1.0), 480: (0.02, 0.05, 0.1, 1.0)},
}


@dataclass(frozen=True)
class VideoSettings(Settings):
    """The track's settings, validated: the image track's, and ``chunk_frames``."""

    chunk_frames: int


def video_settings_from(settings: dict[str, Any], suite: str) -> VideoSettings:
    """Validate ``settings`` (see the module); every key is required."""
    check_keys(settings, SETTINGS_KEYS, suite)
    for key, choices in (
        ("save", SAVE_MODES),
        ("ocr_batches", OCR_BATCH_MODES),
        ("bucket_edges", ("855802d", "custom")),
    ):
        check_choice(settings[key], key, choices, suite)
    chunk = settings["chunk_frames"]
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"suite {suite!r}: settings.chunk_frames must be a positive integer, got {chunk!r}")
    resolutions = resolutions_from(settings["resolutions"], suite)
    if settings["bucket_edges"] == "855802d":
        check_official_edges(VIDEO_EDGES, "855802d", resolutions, suite, "video ", "short side")
    return VideoSettings(
        resolutions, settings["bucket_edges"], settings["save"], settings["ocr_batches"], chunk
    )
