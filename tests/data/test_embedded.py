"""EmbeddedDataset: the checked-in manifest pins real bundled photos, and loading verifies it."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tokbench.data import embedded
from tokbench.data.decode import rgb_pixels_sha256
from tokbench.data.embedded import EmbeddedDataset, crop_boxes
from tokbench.data.registry import resolve_dataset
from tokbench.errors import DataError
from tokbench.hashing import sha256_json

# Changes only when the checked-in manifest changes; then bump the manifest version and this value.
MANIFEST_SHA256 = "831716b47695ebab612240c501b7470dcf2e278253e2ef8c71ac66808cc64ac5"
MANIFEST_PATH = Path(embedded.__file__).with_name("manifests") / embedded.MANIFEST_NAME


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _altered(item_id: str, **changes) -> EmbeddedDataset:
    """An EmbeddedDataset over a copy of the manifest with one item changed."""
    manifest = embedded.read_checked_in_manifest()
    entry = next(entry for entry in manifest["items"] if entry["id"] == item_id)
    entry.update(changes)
    return EmbeddedDataset(manifest)


def _load(dataset: EmbeddedDataset, item_id: str):
    return next(item for item in dataset.items() if item.id == item_id).load()


def test_manifest_hash_is_pinned():
    dataset = EmbeddedDataset()
    assert dataset.manifest_hash() == MANIFEST_SHA256
    assert sha256_json(json.loads(MANIFEST_PATH.read_text("utf-8"))) == MANIFEST_SHA256
    dataset.manifest()["items"].clear()  # callers get a copy
    assert dataset.manifest_hash() == MANIFEST_SHA256


def test_manifest_content():
    manifest = EmbeddedDataset().manifest()
    items = manifest["items"]
    assert len(items) == 24
    assert len({entry["id"] for entry in items}) == len(items)
    assert set(manifest["distributions"]) == {"scikit-image", "scikit-learn", "matplotlib", "insightface"}
    assert manifest["distributions"]["insightface"]["install"] == "pip install --no-deps insightface==2.1"
    full = {entry["id"]: entry for entry in items if entry["crop_box"] is None}
    assert len(full) == 12
    for entry in items:
        assert entry["distribution"] in manifest["distributions"]
        assert entry["version_range"]
        if entry["crop_box"] is None:
            continue
        source_id, _, crop = entry["id"].partition("#crop-")
        source = full[source_id]
        assert entry["crop_box"] == list(crop_boxes(*source["size"])[int(crop)])
        assert entry["size"] == [256, 256]
        assert entry["file_sha256"] == source["file_sha256"]
    cropped = {entry["id"].partition("#")[0] for entry in items if entry["crop_box"] is not None}
    assert cropped == {key for key, entry in full.items() if min(entry["size"]) >= 512}


def test_crop_boxes_stay_inside_and_are_fixed():
    assert crop_boxes(511, 4000) == []
    assert crop_boxes(512, 512) == [(25, 25, 281, 281), (230, 230, 486, 486)]
    for width, height in [(512, 600), (1280, 886), (4000, 513)]:
        for left, top, right, bottom in crop_boxes(width, height):
            assert 0 <= left < right <= width
            assert 0 <= top < bottom <= height
            assert (right - left, bottom - top) == (256, 256)


def test_checked_in_manifest_is_reproduced_by_the_writer(tmp_path):
    missing = [
        name for name in ("scikit-image", "scikit-learn", "matplotlib", "insightface") if not _installed(name)
    ]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} installed")
    target = tmp_path / "manifest.json"
    embedded.main(["--write-manifest", str(target)])
    assert target.read_text("utf-8") == MANIFEST_PATH.read_text("utf-8")


def test_every_item_loads_the_pinned_pixels():
    dataset = EmbeddedDataset()
    entries = {entry["id"]: entry for entry in dataset.manifest()["items"]}
    loaded = 0
    for item in dataset.items():
        entry = entries[item.id]
        if not _installed(entry["distribution"]):
            continue
        image = item.load()
        assert image.mode == "RGB"
        assert list(image.size) == entry["size"]
        assert rgb_pixels_sha256(image) == entry["pixels_sha256"], item.id
        loaded += 1
    assert loaded >= 21  # everything but insightface comes with tokbench's dependencies


def test_source_file_sha_mismatch_is_detected():
    dataset = _altered("skimage/coffee.png", file_sha256="0" * 64)
    with pytest.raises(DataError) as info:
        _load(dataset, "skimage/coffee.png")
    message = str(info.value)
    assert "scikit-image" in message
    assert "skimage/data/coffee.png" in message
    assert "pip install scikit-image==" in message
    # Crops of other images are unaffected by the altered entry.
    assert _load(dataset, "skimage/astronaut.png#crop-1").size == (256, 256)


def test_missing_package_names_the_install_command():
    manifest = embedded.read_checked_in_manifest()
    manifest["distributions"]["no-such-dist-for-tokbench"] = {
        "built_with": "1.0",
        "install": "pip install x==1",
    }
    manifest["items"][0]["distribution"] = "no-such-dist-for-tokbench"
    with pytest.raises(
        DataError, match=r"no-such-dist-for-tokbench, which is not installed: pip install x==1"
    ):
        _load(EmbeddedDataset(manifest), manifest["items"][0]["id"])


def test_missing_file_in_package():
    dataset = _altered("sklearn/china.jpg", path="sklearn/datasets/images/gone.jpg")
    with pytest.raises(DataError, match=r"scikit-learn .* has no file sklearn/datasets/images/gone\.jpg"):
        _load(dataset, "sklearn/china.jpg")


def test_items_match_manifest_order_and_sources():
    dataset = resolve_dataset("embedded")
    assert isinstance(dataset, EmbeddedDataset)
    manifest = dataset.manifest()
    assert [item.id for item in dataset.items()] == [entry["id"] for entry in manifest["items"]]
    assert dataset.items()[0].source == "scikit-image:skimage/data/astronaut.png"


def test_loading_does_not_import_the_source_packages():
    code = (
        "import sys; from tokbench.data.embedded import EmbeddedDataset; "
        "[item.load() for item in EmbeddedDataset().items()[:3]]; "
        "print(sorted(m for m in ('skimage', 'sklearn', 'matplotlib', 'insightface') if m in sys.modules))"
    )
    root = Path(embedded.__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
