"""The official annotation format, per-instance errors, crops and the embedded manifest."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError, DataError
from tokbench.textface.annotations import parse_face_instance, parse_text_instance, text_box_height
from tokbench.textface.crops import crop_text
from tokbench.textface.dataset import TokbenchDataset
from tokbench.textface.embedded import MISMATCH_KEY, EmbeddedTokbenchDataset, read_manifest


def test_loader_reads_the_official_layout(official_root: Path) -> None:
    dataset = resolve_dataset(f"tokbench:{official_root}")
    assert isinstance(dataset, TokbenchDataset)
    images = {a.id: a for a in dataset.annotated_images()}
    assert set(images) == {"text/ic13/word_1.png", "text/ic13/missing.png", "face/hopper.png"}
    word = images["text/ic13/word_1.png"]
    box, polygon, empty, outside, _ = word.texts
    assert box.geometry == (14.0, 16.0, 140.0, 58.0) and not box.is_polygon and box.error is None
    assert polygon.is_polygon and polygon.geometry[2] == (356.0, 168.0) and polygon.error is None
    assert empty.error == "empty ground-truth string ('rec')"
    assert "outside the 400x200 image" in outside.error
    face = images["face/hopper.png"].faces[0]
    assert face.error is None and face.landmarks[2] == (267.0, 238.0) and face.ratio == 0.31
    assert images["face/hopper.png"].load().size == (512, 600)
    with pytest.raises(DataError, match=r"missing\.png is missing"):
        images["text/ic13/missing.png"].load()
    manifest = dataset.manifest()
    assert "text_ic15" in manifest["missing"] and len(manifest["annotations"]["text_ic13"]["sha256"]) == 64


def test_loader_needs_an_annotations_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no annotations/ folder"):
        resolve_dataset(f"tokbench:{tmp_path}")
    with pytest.raises(ConfigError, match="tokbench:PATH or tokbench:hub"):
        resolve_dataset("tokbench")


def test_bad_instances_carry_their_error() -> None:
    assert (
        "expected a string" in parse_text_instance({"rec": 3, "bbox": [0, 0, 1, 1], "ratio": 0.1}, 9, 9).error
    )
    assert "is empty" in parse_text_instance({"rec": "a", "bbox": [5, 0, 1, 1], "ratio": 0.1}, 9, 9).error
    assert "expected [x_min" in parse_text_instance({"rec": "a", "bbox": [1, 2], "ratio": 0.1}, 9, 9).error
    assert "'ratio'" in parse_text_instance({"rec": "a", "bbox": [0, 0, 1, 1], "ratio": None}, 9, 9).error
    assert "5 [x, y] points" in parse_face_instance({"kps": [[1, 1]], "ratio": 0.1}, 9, 9).error
    outside = parse_face_instance({"kps": [[1, 1]] * 4 + [[50, 1]], "ratio": 0.1}, 9, 9)
    assert "outside the 9x9 image" in outside.error


def test_crops_axis_aligned_and_rotated() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:20, 5:45] = 200
    assert crop_text(image, (5.0, 10.0, 45.0, 20.0)).shape == (10, 40, 3)
    assert (crop_text(image, (5.9, 10.2, 45.0, 20.0)) == 200).all()  # coordinates truncate
    quad = ((5.0, 10.0), (45.0, 10.0), (45.0, 20.0), (5.0, 20.0))
    rectified = crop_text(image, quad)
    assert rectified.shape == (10, 40, 3) and rectified[2:-2, 2:-2].min() == 200
    assert text_box_height(quad) == 10.0
    with pytest.raises(DataError, match="empty crop"):
        crop_text(image, (90.0, 70.0, 95.0, 75.0))


def test_embedded_manifest_spreads_instances_over_every_bucket() -> None:
    manifest = read_manifest()
    assert "reads exactly" in manifest["filter"] and manifest["font"]["sha256"]
    text_ratios = [a["ratio"] for s in manifest["images"] for a in s["annotations"]]
    face_ratios = [f["ratio"] for s in manifest["images"] for f in s["faces"]]
    text_edges = {256: (0.02, 0.03, 0.04, 1), 512: (0.01, 0.02, 0.03, 1), 1024: (0.005, 0.01, 0.02, 1)}
    face_edges = {256: (0.1, 0.2, 0.3, 1), 512: (0.05, 0.1, 0.2, 1), 1024: (0.02, 0.05, 0.1, 1)}
    for ratios, edges in ((text_ratios, text_edges), (face_ratios, face_edges)):
        for bounds in edges.values():
            for low, high in itertools.pairwise(bounds):
                assert sum(low <= r < high for r in ratios) >= 3, (low, high)
    assert any(isinstance(a["bbox"][0], list) for s in manifest["images"] for a in s["annotations"])


def test_embedded_images_render_as_the_manifest_says() -> None:
    dataset = EmbeddedTokbenchDataset()
    first = dataset.annotated_images()[0]
    image = first.load()
    assert image.size == (first.width, first.height)
    assert not image.info.get(MISMATCH_KEY)
    altered = dataset.manifest()
    altered["images"][0]["pixels_sha256"] = "0" * 64
    assert EmbeddedTokbenchDataset(altered).annotated_images()[0].load().info[MISMATCH_KEY]
    altered["images"][0]["layers"][0]["file_sha256"] = "0" * 64
    with pytest.raises(DataError, match="the manifest expects"):
        EmbeddedTokbenchDataset(altered).annotated_images()[0].load()


def test_faces_are_found_in_the_hub_layout(official_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "hub"
    shutil.copytree(official_root, root)
    (root / "images" / "face_data" / "wflw").mkdir()
    shutil.move(root / "images" / "face_data" / "hopper.png", root / "images" / "face_data" / "wflw")
    dataset = TokbenchDataset(root)
    face = next(a for a in dataset.annotated_images() if a.id == "face/hopper.png")
    assert face.load().size == (512, 600) and (face.file_name, face.subset) == ("hopper.png", "face")
    assert dataset.manifest()["annotations"]["face_meta"]["folder"] == "images/face_data/wflw"
    assert (
        TokbenchDataset(official_root).manifest()["annotations"]["face_meta"]["folder"] == "images/face_data"
    )


def test_box_coordinates_go_through_float32_before_truncation() -> None:
    image = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    # 14.999999999 is 15.0 in float32, as the official loader stores the boxes
    assert crop_text(image, (4.999999999, 10.0, 14.999999999, 20.0)).shape == (10, 10, 3)


def test_images_decode_as_the_official_scripts(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "images" / "text_data" / "ic13"
    folder.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90°": PIL's convert("RGB") ignores it, as resize_rec.py and the loader do
    Image.new("RGB", (40, 20), (9, 99, 199)).save(folder / "rotated.jpg", exif=exif)
    Image.new("RGBA", (30, 10), (200, 100, 50, 0)).save(folder / "clear.png")  # alpha dropped, not composited
    records = [
        {"file_name": "rotated.jpg", "width": 40, "height": 20, "annotations": []},
        {"file_name": "clear.png", "width": 30, "height": 10, "annotations": []},
    ]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "text_ic13.json").write_text(json.dumps(records))
    rotated, clear = TokbenchDataset(tmp_path).annotated_images()
    assert rotated.load().size == (40, 20)
    assert np.asarray(clear.load())[0, 0].tolist() == [200, 100, 50]
