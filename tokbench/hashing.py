"""Content hashes: sha256 of canonical JSON (protocols, manifests, cache keys) and of files (weights)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_json(value: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
