"""``reconstructions:DIR`` for video suites: video reconstructions made elsewhere, scored by video-recon.

``build_model("reconstructions:DIR", kind="video-tokenizer")`` (what the video-recon track asks for)
builds this reader; image suites get ``models.files.FileReconstructions`` for the same name.

The model ran on someone else's machine; tokbench only reads its files. The reconstruction of clip
``<video path>@<start>`` is the one video file ``DIR/<video path without extension>@<start>.<ext>``
(any of the video extensions of ``videofolder``), holding exactly the clip's frames at the suite's
size, decoded with PyAV (a lossless codec such as FFV1 keeps the numbers exact). The adapter never
encodes or decodes; its identity is the content of the files (sha256 over every file's relative path
and bytes). No rate is read, so bits per pixel is not applicable. ``tokbench run
--save-reconstructions DIR`` writes a model's clips in this layout (FFV1 .mkv, ``save_clip``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.adapters.base import Encoded, ModelCard, VideoTokenizer
from tokbench.data.decode import SUPPORTED_EXTENSIONS
from tokbench.data.video import VIDEO_EXTENSIONS
from tokbench.errors import ConfigError, DataError
from tokbench.models.files import RAN_ELSEWHERE, content_sha256, index_files, other_kind, save_atomically

#: Frames per second written in saved clips (the numbers never depend on it: every frame is read).
FRAME_RATE = 8


def clip_stem(clip_id: str) -> str:
    """Where a clip's reconstruction lives, without extension: ``sub/a.mp4@0`` → ``sub/a@0``."""
    video, _, start = clip_id.rpartition("@")
    path = PurePosixPath(video)
    stem = path.with_suffix("").as_posix() if path.suffix.lower() in VIDEO_EXTENSIONS else video
    return f"{stem}@{start}"


class VideoFileReconstructions(VideoTokenizer):
    """``reconstructions:DIR`` (video suites): the reconstruction of a clip is the video file at its stem."""

    positional_argument: ClassVar[str] = "path"
    location_arguments: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(self, path: str) -> None:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"reconstructions:{path}: not a directory of reconstructed clips")
        self.root = root.resolve()
        self._files = index_files(self.root, VIDEO_EXTENSIONS)
        if not self._files:
            images = other_kind(self.root, SUPPORTED_EXTENSIONS, "image", "image suites")
            raise ConfigError(
                f"reconstructions:{path}: no videos with extensions {', '.join(VIDEO_EXTENSIONS)} under "
                f"it, as a video suite needs{images}"
            )
        self._sha256 = content_sha256(self.root, self._files)

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """Files made elsewhere are not a released model."""
        return ()

    @property
    def weights_sha256(self) -> str:
        """sha256 over every video file's relative path and content."""
        return self._sha256

    def describe(self) -> dict[str, Any]:
        """What the record says about the files."""
        files = sum(len(paths) for paths in self._files.values())
        return {
            "ran_elsewhere": True,
            "source": RAN_ELSEWHERE,
            "files": files,
            "content_sha256": self._sha256,
        }

    def encode(self, clips: torch.Tensor) -> Encoded:
        """Not available: the model ran elsewhere; the track reads files by clip instead."""
        raise ConfigError("reconstructions:DIR holds clips made elsewhere; it cannot encode new clips")

    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Not available: the model ran elsewhere; the track reads files by clip instead."""
        raise ConfigError("reconstructions:DIR holds clips made elsewhere; it cannot decode")

    def stems(self) -> set[str]:
        """Every file's relative path without extension."""
        return set(self._files)

    def read(self, clip_id: str, shape: tuple[int, int, int]) -> torch.Tensor:
        """The clip's reconstruction as uint8 T×3×H×W, checked to be ``shape`` (T, H, W)."""
        stem = clip_stem(clip_id)
        paths = self._files.get(stem, [])
        if len(paths) != 1:
            found = ", ".join(p.name for p in paths) or "none"
            raise DataError(
                f"{clip_id}: expected one reconstruction {stem}.* under {self.root}, found {found}"
            )
        frames = _decode_all(paths[0], clip_id)
        got = (len(frames), *(frames[0].shape[:2] if frames else (0, 0)))
        if got != tuple(shape) or len({f.shape for f in frames}) != 1:
            raise DataError(
                f"{clip_id}: reconstruction {paths[0].relative_to(self.root)} has {got[0]} frames of "
                f"{got[2]}×{got[1]}, expected {shape[0]} frames of {shape[2]}×{shape[1]}"
            )
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def save_clip(root: Path, clip_id: str, frames: torch.Tensor) -> Path:
    """Save a uint8 T×3×H×W reconstruction losslessly (FFV1 in Matroska) as ``root/<clip stem>.mkv``,
    where ``reconstructions:root`` reads it back for the clip."""
    try:
        import av
    except ImportError:
        raise ConfigError("saving video reconstructions needs PyAV: pip install 'tokbench[video]'") from None
    arrays = frames.permute(0, 2, 3, 1).cpu().numpy()

    def write(target: Path) -> None:
        with av.open(str(target), "w", format="matroska") as container:
            stream = container.add_stream("ffv1", rate=FRAME_RATE)
            stream.height, stream.width = arrays.shape[1:3]
            stream.pix_fmt = "bgr0"  # RGB kept exactly (no YUV conversion)
            for array in arrays:
                container.mux(
                    stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24"))
                )
            container.mux(stream.encode())

    path = root / f"{clip_stem(clip_id)}.mkv"
    save_atomically(path, write)
    return path


def _decode_all(path: Path, clip_id: str) -> list[np.ndarray]:
    """Every frame of the file's first video stream as H×W×3 uint8 RGB."""
    try:
        import av
    except ImportError:
        raise DataError(f"{clip_id}: reading videos needs PyAV: pip install 'tokbench[video]'") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{clip_id}: reconstruction {path.name} has no video stream")
            return [
                frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])
            ]
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise DataError(f"{clip_id}: cannot decode reconstruction {path.name}: {error}") from None
