"""What a record needs to be reproduced: the protocol hash and the software environment."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from tokbench.hashing import sha256_json


def protocol_hash(protocol: dict[str, Any]) -> str:
    """sha256 of everything that makes two runs comparable (suite, data, preprocessing, metrics)."""
    return sha256_json(protocol)


def tokbench_version() -> str:
    """The installed tokbench version."""
    try:
        return version("tokbench")
    except PackageNotFoundError:
        return "unknown"


def git_commit() -> str | None:
    """The commit of the tokbench checkout in use, if it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def imaging_versions() -> dict[str, str | None]:
    """Pillow and the codec libraries it is built with: resampling and JPEG/WebP coding change pixels
    between versions (Pillow 13 reordered LANCZOS passes), so they are part of image protocols."""
    import PIL
    from PIL import features

    return {
        "pillow": PIL.__version__,
        "libjpeg": features.version("jpg"),
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "libwebp": features.version("webp"),
        "zlib": features.version("zlib"),
    }


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, device and numeric settings that can shift results (TF32 shifts FID)."""
    info: dict[str, Any] = {
        "tokbench": tokbench_version(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "imaging": imaging_versions(),
        "platform": platform.platform(),
        "device": str(device),
        "dtype": "float32",
        "tf32": False,
        "autocast": False,
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
