"""Video datasets: clips of RGB frames cut from videos by a fixed ``ClipSampler``, loaded lazily.

A video dataset lists *videos*; the sampler (start frame, frames per clip, stride, frame rate, clips
per video and their spacing) turns each into clip items with stable ids ``<relative path>@<start>``.
Nothing is decoded until an item is loaded, and loading decodes one clip (``tokbench.data.video_decode``),
so memory stays flat in the number of clips. The sampler and the suite's per-frame preprocessing are
part of the video track's protocol hash.

``videofolder:PATH`` lists every video file (``VIDEO_EXTENSIONS``) under a directory; an unreadable,
truncated, audio-only or too-short file is an item every run skips with its reason.
"""

from __future__ import annotations

import functools
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

from tokbench.data.base import Dataset, ImageItem
from tokbench.data.clips import ClipItem, ClipSampler
from tokbench.data.decode import display_path, file_sha256
from tokbench.errors import ConfigError, DataError

__all__ = ["VIDEO_EXTENSIONS", "ClipItem", "ClipSampler", "VideoDataset", "VideoFolderDataset"]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")


class VideoDataset(Dataset):
    """An ordered list of videos, cut into clips by a sampler; image tracks refuse it."""

    def items(self) -> list[ImageItem]:
        """Video datasets have clips, not images: an image suite given one fails here, naming it."""
        raise ConfigError(
            f"dataset {self.name!r} holds videos: use it with a video suite (e.g. video-recon), not an "
            "image suite"
        )

    @abstractmethod
    def clips(self, sampler: ClipSampler) -> list[ClipItem]:
        """Every clip the sampler cuts, video by video, in a fixed order (nothing decoded)."""


class VideoFolderDataset(VideoDataset):
    """Video files (``VIDEO_EXTENSIONS``, any case) under ``root``, sorted by relative POSIX path.

    Hidden files and folders are skipped. Frames are decoded with PyAV only when a clip is loaded.
    """

    name = "videofolder"

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"video folder {display_path(root)} does not exist or is not a directory")
        self.root = root.resolve()
        self._paths = _find_videos(self.root)
        if not self._paths:
            raise ConfigError(
                f"video folder {display_path(root)} contains no videos with extensions "
                f"{', '.join(VIDEO_EXTENSIONS)} (hidden files and folders are skipped)"
            )
        self._manifest: dict[str, Any] | None = None

    @classmethod
    def from_spec_argument(cls, argument: str | None) -> VideoFolderDataset:
        """``videofolder:PATH`` names the directory; the path is required."""
        if not argument:
            raise ConfigError("dataset 'videofolder' needs a directory: use videofolder:PATH")
        return cls(Path(argument))

    def clips(self, sampler: ClipSampler) -> list[ClipItem]:
        """``clips_per_video`` lazily decoded clips per file, ids ``<relative path>@<start>``."""
        from tokbench.data.video_decode import decode_clip

        return [
            ClipItem(
                id=f"{video_id}@{start}",
                source=display_path(path),
                load=functools.partial(decode_clip, path, sampler, start, f"{video_id}@{start}"),
            )
            for video_id, path in self._paths.items()
            for start in sampler.starts()
        ]

    def manifest(self) -> dict[str, Any]:
        """Folder name and each video's sha256 and size (null for a file that cannot be read)."""
        if self._manifest is None:
            entries = []
            for video_id, path in self._paths.items():
                try:
                    sha256, size = file_sha256(path)
                except DataError:
                    sha256, size = None, None
                entries.append({"id": video_id, "sha256": sha256, "bytes": size})
            self._manifest = {"name": self.name, "root": display_path(self.root.name), "items": entries}
        return self._manifest


def _find_videos(root: Path) -> dict[str, Path]:
    """Clip-id prefix (the relative POSIX path, escaped by ``display_path``) → path of every non-hidden
    video file, sorted; symlinked folders are not followed and an unreadable folder fails loudly."""
    found: dict[str, Path] = {}

    def unreadable(error: OSError) -> None:
        raise ConfigError(f"cannot list video folder {display_path(error.filename)}: {error.strerror}")

    for directory, subdirectories, filenames in os.walk(root, onerror=unreadable):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for filename in filenames:
            path = Path(directory, filename)
            if filename.startswith(".") or path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
                continue
            video_id = display_path(path.relative_to(root).as_posix())
            if video_id in found:
                raise ConfigError(
                    f"video folder {display_path(root)}: two files have the id {video_id!r} (a name that "
                    "is not UTF-8 is escaped as \\xNN); rename one of them"
                )
            found[video_id] = path
    return dict(sorted(found.items()))
