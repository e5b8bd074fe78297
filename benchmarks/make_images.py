"""A deterministic image set for the FID benchmarks, derived from tokbench's embedded photos.

Layout under ``--root`` (default ``/tmp/tokbench-bench``; never inside the repository):

- ``A/``: ``--count`` 256×256 RGB PNGs. Image ``i`` comes from embedded photo ``i mod 24`` (the real
  photos and fixed crops of ``tokbench.data.embedded``): a square crop of seeded random side (40–100%
  of the shorter side) and position, a seeded horizontal flip, then a PIL bicubic resize to 256×256.
- ``B/``: the same images after a JPEG round trip at quality 20 (Pillow/libjpeg, 4:2:0 chroma, what
  tokbench's ``jpeg`` model does), stored as PNG so that every reader decodes the same pixels.
- ``sweep/originals/``: the first ``--sweep-count`` images of ``A``; ``sweep/q{Q}/``: their JPEG round
  trips at each sweep quality (10, 30, 50, 70, 90), again stored as PNG.
- ``manifest.json``: the parameters and the sha256 of every file. A folder whose manifest matches
  the requested parameters (and whose files still hash the same) is reused, not regenerated.

Usage: ``python benchmarks/make_images.py [--root DIR] [--count 1000] [--sweep-count 128]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tokbench.data.embedded import EmbeddedDataset

DEFAULT_ROOT = Path("/tmp/tokbench-bench")
REPOSITORY = Path(__file__).resolve().parent.parent
SIZE = 256
SEED = 20240531
B_QUALITY = 20
SWEEP_QUALITIES = (10, 30, 50, 70, 90)
MIN_CROP_FRACTION = 0.4
VERSION = 1


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """Encode as baseline JPEG (4:2:0) at ``quality`` and decode, as tokbench's ``jpeg`` model does."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def derived_images(count: int, seed: int = SEED) -> list[Image.Image]:
    """``count`` 256×256 RGB images: seeded crops, flips and bicubic resizes of the embedded photos."""
    sources = [item.load() for item in EmbeddedDataset().items()]
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = source.size
        short = min(width, height)
        side = round(short * rng.uniform(MIN_CROP_FRACTION, 1.0))
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        crop = source.crop((left, top, left + side, top + side))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        images.append(crop.resize((SIZE, SIZE), Image.Resampling.BICUBIC))
    return images


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parameters(count: int, sweep_count: int) -> dict[str, Any]:
    return {
        "version": VERSION,
        "count": count,
        "sweep_count": sweep_count,
        "seed": SEED,
        "size": SIZE,
        "b_quality": B_QUALITY,
        "sweep_qualities": list(SWEEP_QUALITIES),
    }


def _existing(root: Path, parameters: dict[str, Any]) -> dict[str, Any] | None:
    path = root / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("parameters") != parameters:
        return None
    for relative, digest in manifest["files"].items():
        file = root / relative
        if not file.is_file() or _sha256(file) != digest:
            return None
    return manifest


def make_images(root: Path = DEFAULT_ROOT, count: int = 1000, sweep_count: int = 128) -> dict[str, Any]:
    """Write (or reuse) the image set under ``root``; return its manifest (parameters, files, folders)."""
    root = Path(root).resolve()
    if root == REPOSITORY or REPOSITORY in root.parents:
        raise ValueError(
            f"{root} is inside the repository; write benchmark images elsewhere (e.g. {DEFAULT_ROOT})"
        )
    if sweep_count > count:
        raise ValueError(f"sweep_count ({sweep_count}) cannot exceed count ({count})")
    parameters = _parameters(count, sweep_count)
    existing = _existing(root, parameters)
    if existing is not None:
        return existing
    folders = ["A", "B", "sweep"]
    for name in folders:
        shutil.rmtree(root / name, ignore_errors=True)
    files: dict[str, str] = {}

    def save(image: Image.Image, relative: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")
        files[relative] = _sha256(path)

    for index, image in enumerate(derived_images(count)):
        name = f"{index:05d}.png"
        save(image, f"A/{name}")
        save(jpeg_round_trip(image, B_QUALITY), f"B/{name}")
        if index < sweep_count:
            save(image, f"sweep/originals/{name}")
            for quality in SWEEP_QUALITIES:
                save(jpeg_round_trip(image, quality), f"sweep/q{quality}/{name}")
    manifest = {
        "parameters": parameters,
        "folders": {
            "A": "A",
            "B": "B",
            "sweep_originals": "sweep/originals",
            **{f"sweep_q{q}": f"sweep/q{q}" for q in SWEEP_QUALITIES},
        },
        "files": files,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--sweep-count", type=int, default=128)
    args = parser.parse_args()
    manifest = make_images(args.root, args.count, args.sweep_count)
    print(f"{len(manifest['files'])} files under {args.root}")


if __name__ == "__main__":
    main()
