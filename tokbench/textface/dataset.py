"""``tokbench:PATH`` and ``tokbench:hub``: the official TokBench image set (hub ``Junfeng5/TokBench``).

Layout (as downloaded): ``annotations/text_<set>.json`` for the eight text sets with images in
``images/text_data/<set>/<file_name>``, and ``annotations/face_meta.json`` with images in
``images/face_data/wflw/<image_name>`` (the hub layout, which the official ``image_eval.sh`` reads) or
``images/face_data/<image_name>``. Sets whose annotation file is absent are listed in the manifest as
missing. The manifest pins the annotation files by sha256 and the images by name and byte size
(hashing tens of thousands of images would dominate a run). Images are decoded as the official
scripts decode them (PIL, ``convert("RGB")``, no EXIF rotation). ``tokbench:hub`` downloads the
dataset with ``huggingface_hub`` when online.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from PIL import Image

from tokbench.data.decode import file_sha256
from tokbench.errors import ConfigError, DataError
from tokbench.textface.annotations import AnnotatedImage, parse_face_instance, parse_text_instance
from tokbench.textface.embedded import TextFaceDataset

TEXT_SETS = ("ic13", "ic15", "tt", "textocr", "cord", "sroie", "infograph", "docvqa")
HUB_REPO = "Junfeng5/TokBench"
#: Where the face images may live under ``images/``, first match wins.
FACE_FOLDERS = ("face_data/wflw", "face_data")


class TokbenchDataset(TextFaceDataset):
    """The official annotations under ``root`` (read once, instance problems kept per instance)."""

    name = "tokbench"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        annotations = self.root / "annotations"
        if not annotations.is_dir():
            raise ConfigError(
                f"dataset tokbench:{root}: no annotations/ folder; expected the layout of the hub dataset "
                f"{HUB_REPO} (annotations/text_<set>.json, annotations/face_meta.json, images/...)"
            )
        self._files = {f"text_{s}": annotations / f"text_{s}.json" for s in TEXT_SETS}
        self._files["face_meta"] = annotations / "face_meta.json"
        self.face_folder = next(
            (self.root / "images" / f for f in FACE_FOLDERS if (self.root / "images" / f).is_dir()),
            self.root / "images" / FACE_FOLDERS[-1],
        )
        present = {key: path for key, path in self._files.items() if path.is_file()}
        if not present:
            raise ConfigError(f"dataset tokbench:{root}: annotations/ holds none of {sorted(self._files)}")
        self._images = self._read(present)

    @classmethod
    def from_spec_argument(cls, argument: str | None) -> TokbenchDataset:
        """``tokbench:PATH`` (a local copy) or ``tokbench:hub`` (download ``Junfeng5/TokBench``)."""
        if not argument:
            raise ConfigError("dataset tokbench needs a location: tokbench:PATH or tokbench:hub")
        if argument == "hub":
            try:
                from huggingface_hub import snapshot_download
            except ImportError:
                raise ConfigError(
                    "dataset tokbench:hub needs huggingface_hub: pip install huggingface_hub"
                ) from None
            try:
                return cls(Path(snapshot_download(HUB_REPO, repo_type="dataset")))
            except Exception as error:  # the hub client raises many types (offline, HTTP, auth)
                raise ConfigError(
                    f"dataset tokbench:hub: cannot download {HUB_REPO} ({type(error).__name__}: {error}); "
                    "download it elsewhere and use tokbench:PATH"
                ) from None
        return cls(Path(argument))

    def annotated_images(self) -> list[AnnotatedImage]:
        return list(self._images)

    def manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)

    def _read(self, present: dict[str, Path]) -> list[AnnotatedImage]:
        images: list[AnnotatedImage] = []
        pinned: dict[str, Any] = {}
        for key, path in present.items():
            records = _load_json_list(path)
            if key == "face_meta":
                images += [self._face_image(r, n) for n, r in enumerate(records)]
                folder = self.face_folder
            else:
                subset = key.removeprefix("text_")
                images += [self._text_image(subset, r, n) for n, r in enumerate(records)]
                folder = self.root / "images" / "text_data" / subset
            names = sorted({a.source for a in images if Path(a.source).parent == folder})
            pinned[key] = {
                "sha256": file_sha256(path)[0],
                "folder": folder.relative_to(self.root).as_posix(),
                "images": [
                    [Path(n).name, Path(n).stat().st_size if Path(n).is_file() else None] for n in names
                ],
            }
        self._manifest = {
            "name": "tokbench",
            "source": HUB_REPO,
            "annotations": pinned,
            "missing": sorted(set(self._files) - set(present)),
        }
        return images

    def _text_image(self, subset: str, record: Any, index: int) -> AnnotatedImage:
        name, width, height = _image_fields(record, "file_name", "width", "height")
        path = self.root / "images" / "text_data" / subset / name
        raws = record.get("annotations") if isinstance(record, dict) else None
        texts = tuple(parse_text_instance(r, width, height) for r in (raws if isinstance(raws, list) else []))
        return AnnotatedImage(
            id=f"text/{subset}/{name or index}",
            source=str(path),
            width=width,
            height=height,
            load=functools.partial(_load_checked, path, width, height),
            texts=texts,
            file_name=name,
            subset=subset,
        )

    def _face_image(self, record: Any, index: int) -> AnnotatedImage:
        name, width, height = _image_fields(record, "image_name", "img_width", "img_height")
        path = self.face_folder / name
        raws = record.get("faces") if isinstance(record, dict) else None
        faces = tuple(parse_face_instance(r, width, height) for r in (raws if isinstance(raws, list) else []))
        return AnnotatedImage(
            id=f"face/{name or index}",
            source=str(path),
            width=width,
            height=height,
            load=functools.partial(_load_checked, path, width, height),
            faces=faces,
            file_name=name,
            subset="face",
        )


def _load_json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"annotation file {path} cannot be read as JSON: {error}") from None
    if not isinstance(data, list):
        raise ConfigError(
            f"annotation file {path} must hold a list of image records, got {type(data).__name__}"
        )
    return data


def _image_fields(record: Any, name_key: str, width_key: str, height_key: str) -> tuple[str, int, int]:
    """The file name and declared size; a malformed record gives an empty name and size 0."""
    if not isinstance(record, dict):
        return "", 0, 0
    name = record.get(name_key)
    width, height = record.get(width_key), record.get(height_key)
    valid = isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0
    return (name if isinstance(name, str) else ""), (width if valid else 0), (height if valid else 0)


def _load_checked(path: Path, width: int, height: int) -> Image.Image:
    """Decode the image as the official scripts do (``Image.open(path).convert("RGB")``: no EXIF
    rotation, alpha dropped) and check it has the annotated size."""
    if not path.is_file():
        raise DataError(f"image file {path} is missing")
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"image {path} cannot be decoded: {error}") from None
    if image.size != (width, height):
        raise DataError(f"image {path} is {image.width}x{image.height}, its annotation says {width}x{height}")
    return image
