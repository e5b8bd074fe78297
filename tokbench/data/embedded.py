"""``embedded``: the default dataset, real photos shipped inside installed packages.

The photos are located through package metadata (``importlib.metadata``), never by importing the
packages. A checked-in manifest (``manifests/embedded-v1.json``) pins every item: the distribution and
file it comes from, the crop box, the sha256 of the source file and of the resulting RGB pixels.
Loading verifies the source file against the manifest. Regenerate the manifest with
``python -m tokbench.data.embedded --write-manifest``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from tokbench.data.base import Dataset, ImageItem
from tokbench.data.decode import file_sha256, load_rgb, rgb_pixels_sha256
from tokbench.errors import ConfigError, DataError

MANIFEST_NAME = "embedded-v1.json"

# Images whose shorter side is at least CROP_MIN_SHORT_SIDE also give square CROP_SIDE crops centred
# at these fractions (numerator, denominator) of the width and of the height, kept inside the image.
CROP_SIDE = 256
CROP_MIN_SHORT_SIDE = 512
CROP_CENTRES = ((3, 10), (7, 10))


@dataclass(frozen=True)
class EmbeddedSource:
    """One bundled photo: the distribution shipping it, its path there, and the checked versions."""

    distribution: str
    path: str
    # Versions whose file bytes were compared with the manifest (both ends checked by hand).
    version_range: str
    install_flags: str = ""

    @property
    def item_id(self) -> str:
        """``<top-level package>/<file name>``, e.g. ``skimage/astronaut.png``."""
        parts = PurePosixPath(self.path).parts
        return f"{parts[0]}/{parts[-1]}"


_SKIMAGE_RANGE = ">=0.22.0,<=0.26.0"
SOURCES = (
    EmbeddedSource("scikit-image", "skimage/data/astronaut.png", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/chelsea.png", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/coffee.png", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/rocket.jpg", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/motorcycle_left.png", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/hubble_deep_field.jpg", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/retina.jpg", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-image", "skimage/data/ihc.png", _SKIMAGE_RANGE),
    EmbeddedSource("scikit-learn", "sklearn/datasets/images/china.jpg", ">=1.3.0,<=1.9.1"),
    EmbeddedSource("scikit-learn", "sklearn/datasets/images/flower.jpg", ">=1.3.0,<=1.9.1"),
    EmbeddedSource("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", ">=3.7.0,<=3.11.2"),
    EmbeddedSource("insightface", "insightface/data/images/t1.jpg", "==2.1", install_flags="--no-deps "),
)


class EmbeddedDataset(Dataset):
    """The embedded photos and their fixed crops, in manifest order, verified against the manifest."""

    name = "embedded"

    def __init__(self, manifest: dict[str, Any] | None = None) -> None:
        """``manifest`` defaults to the checked-in one; tests pass altered copies."""
        self._manifest = read_checked_in_manifest() if manifest is None else manifest

    def items(self) -> list[ImageItem]:
        """One lazily loaded item per manifest entry."""
        return [
            ImageItem(
                id=entry["id"],
                source=f"{entry['distribution']}:{entry['path']}",
                load=functools.partial(_load_entry, entry, self._manifest["distributions"]),
            )
            for entry in self._manifest["items"]
        ]

    def manifest(self) -> dict[str, Any]:
        """The manifest JSON as checked in (a copy), so its hash pins the data."""
        return copy.deepcopy(self._manifest)


def read_checked_in_manifest() -> dict[str, Any]:
    """The manifest shipped in ``tokbench/data/manifests``."""
    text = resources.files("tokbench.data").joinpath("manifests").joinpath(MANIFEST_NAME).read_text("utf-8")
    return json.loads(text)


def _load_entry(entry: dict[str, Any], distributions: dict[str, Any]) -> Image.Image:
    """Locate the source file, check its sha256 against the manifest, decode it and apply the crop."""
    name = entry["distribution"]
    install = distributions[name]["install"]
    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise DataError(
            f"embedded item {entry['id']} needs the package {name}, which is not installed: {install}"
        ) from None
    path = Path(str(distribution.locate_file(entry["path"])))
    if not path.is_file():
        raise DataError(
            f"embedded item {entry['id']}: {name} {distribution.version} has no file {entry['path']}: "
            f"{install}"
        )
    sha256, _ = file_sha256(path)
    if sha256 != entry["file_sha256"]:
        raise DataError(
            f"embedded item {entry['id']}: {entry['path']} from {name} {distribution.version} has sha256 "
            f"{sha256[:16]}…, the manifest expects {entry['file_sha256'][:16]}…: {install}"
        )
    image = load_rgb(path, entry["id"])
    return image if entry["crop_box"] is None else image.crop(tuple(entry["crop_box"]))


def crop_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The fixed (left, top, right, bottom) crops of an image: none if its shorter side is small."""
    if min(width, height) < CROP_MIN_SHORT_SIDE:
        return []
    boxes = []
    for numerator, denominator in CROP_CENTRES:
        left = _crop_start(width * numerator // denominator, width)
        top = _crop_start(height * numerator // denominator, height)
        boxes.append((left, top, left + CROP_SIDE, top + CROP_SIDE))
    return boxes


def _crop_start(centre: int, extent: int) -> int:
    """First pixel of a CROP_SIDE window centred at ``centre``, moved inside [0, extent)."""
    return min(max(centre - CROP_SIDE // 2, 0), extent - CROP_SIDE)


def build_manifest() -> dict[str, Any]:
    """Describe the embedded set from the installed packages (hashing every file and crop)."""
    distributions: dict[str, Any] = {}
    items: list[dict[str, Any]] = []
    for source in SOURCES:
        try:
            distribution = metadata.distribution(source.distribution)
        except metadata.PackageNotFoundError:
            raise ConfigError(
                f"cannot build the embedded manifest: {source.distribution} is not installed"
            ) from None
        version = distribution.version
        distributions[source.distribution] = {
            "built_with": version,
            "install": f"pip install {source.install_flags}{source.distribution}=={version}",
        }
        path = Path(str(distribution.locate_file(source.path)))
        image = load_rgb(path, source.item_id)
        file_digest, _ = file_sha256(path)
        crops: list[tuple[str, tuple[int, int, int, int] | None]] = [(source.item_id, None)]
        crops += [(f"{source.item_id}#crop-{n}", box) for n, box in enumerate(crop_boxes(*image.size))]
        for item_id, box in crops:
            pixels = image if box is None else image.crop(box)
            items.append(
                {
                    "id": item_id,
                    "distribution": source.distribution,
                    "version_range": source.version_range,
                    "path": source.path,
                    "crop_box": None if box is None else list(box),
                    "size": list(pixels.size),
                    "file_sha256": file_digest,
                    "pixels_sha256": rgb_pixels_sha256(pixels),
                }
            )
    return {
        "name": "embedded",
        "version": "1",
        "crop_rule": (
            f"images with shorter side >= {CROP_MIN_SHORT_SIDE} px also give {CROP_SIDE}x{CROP_SIDE} "
            "crops centred at 3/10 and 7/10 of width and height (floor), shifted inside the image"
        ),
        "pixels_sha256": "sha256 of ASCII 'H,W,3;' followed by the row-major uint8 RGB bytes",
        "distributions": distributions,
        "items": items,
    }


def write_manifest(path: Path) -> None:
    """Write ``build_manifest()`` as indented JSON."""
    path.write_text(json.dumps(build_manifest(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """``python -m tokbench.data.embedded --write-manifest [PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m tokbench.data.embedded", description=main.__doc__)
    parser.add_argument(
        "--write-manifest",
        metavar="PATH",
        type=Path,
        nargs="?",
        const=Path(__file__).with_name("manifests") / MANIFEST_NAME,
        required=True,
        help="regenerate the manifest from the installed packages (default: the checked-in file)",
    )
    target = parser.parse_args(argv).write_manifest
    write_manifest(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
