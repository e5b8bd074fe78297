"""FolderDataset: recursive discovery, deterministic order, lazy loading, manifest, and folder errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tokbench.data.folder import FolderDataset
from tokbench.data.registry import DATASETS, resolve_dataset
from tokbench.errors import ConfigError, DataError


def _write_image(path: Path, value: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), (value, value, value)).save(path, format=fmt)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    _write_image(root / "b.png", 10)
    _write_image(root / "a" / "z.JPG", 20, "JPEG")
    _write_image(root / "a" / "nested" / "deep.TIFF", 30, "TIFF")
    _write_image(root / "B.webp", 40, "WEBP")
    _write_image(root / "a.bmp", 50)
    _write_image(root / ".hidden.png", 60)
    _write_image(root / ".cache" / "thumb.png", 70)
    _write_image(root / "a" / "image.gif", 80)  # a GIF: its first frame
    (root / "notes.txt").write_text("not an image")
    return root


def test_recursive_sorted_by_posix_path_and_hidden_skipped(tree):
    ids = [item.id for item in FolderDataset(tree).items()]
    assert ids == ["B.webp", "a.bmp", "a/image.gif", "a/nested/deep.TIFF", "a/z.JPG", "b.png"]


def test_items_point_at_absolute_files_and_load_lazily(tree):
    items = FolderDataset(tree).items()
    by_id = {item.id: item for item in items}
    source = Path(by_id["a/nested/deep.TIFF"].source)
    assert source.is_absolute()
    assert source == (tree / "a" / "nested" / "deep.TIFF").resolve()
    image = by_id["a/nested/deep.TIFF"].load()
    assert image.mode == "RGB"
    assert image.size == (6, 4)
    assert np.asarray(image)[0, 0].tolist() == [30, 30, 30]


def test_broken_file_fails_only_when_loaded(tree):
    (tree / "c.png").write_bytes(b"")
    dataset = FolderDataset(tree)
    broken = next(item for item in dataset.items() if item.id == "c.png")
    with pytest.raises(DataError, match=r"c\.png.*empty file"):
        broken.load()


def test_manifest_hashes_files_once_and_names_only_the_folder(tree, monkeypatch):
    dataset = FolderDataset(tree)
    manifest = dataset.manifest()
    assert manifest["name"] == "folder"
    assert manifest["root"] == "photos"
    assert [entry["id"] for entry in manifest["items"]] == [item.id for item in dataset.items()]
    entry = manifest["items"][-1]
    data = (tree / "b.png").read_bytes()
    assert entry == {"id": "b.png", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def fail(_path):
        raise AssertionError("hashed twice")

    monkeypatch.setattr("tokbench.data.folder.file_sha256", fail)
    assert dataset.manifest() == manifest


def test_manifest_hash_is_location_independent_and_tracks_content(tmp_path):
    for parent in ("one", "two"):
        _write_image(tmp_path / parent / "set" / "x.png", 1)
    first = FolderDataset(tmp_path / "one" / "set").manifest_hash()
    assert first == FolderDataset(tmp_path / "two" / "set").manifest_hash()
    _write_image(tmp_path / "two" / "set" / "x.png", 2)
    assert first != FolderDataset(tmp_path / "two" / "set").manifest_hash()


def test_missing_root(tmp_path):
    with pytest.raises(ConfigError, match=r"does-not-exist does not exist"):
        FolderDataset(tmp_path / "does-not-exist")


def test_root_that_is_a_file(tmp_path):
    path = _write_image(tmp_path / "single.png", 1)
    with pytest.raises(ConfigError, match="not a directory"):
        FolderDataset(path)


def test_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path} contains no images")):
        FolderDataset(tmp_path)


def test_folder_with_only_hidden_or_other_files(tmp_path):
    _write_image(tmp_path / ".hidden" / "x.png", 1)
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path} contains no images with extensions .jpg")):
        FolderDataset(tmp_path)


def test_resolve_folder_spec(tree):
    dataset = resolve_dataset(f"folder:{tree}")
    assert isinstance(dataset, FolderDataset)
    assert len(dataset.items()) == 6
    with pytest.raises(ConfigError, match="folder:PATH"):
        resolve_dataset("folder")


def test_resolve_unknown_dataset_lists_names():
    assert {"embedded", "folder", "classfolder"} <= set(DATASETS.names())
    with pytest.raises(ConfigError, match="embedded, folder"):
        resolve_dataset("imagenet")
    with pytest.raises(ConfigError, match="takes no argument"):
        resolve_dataset("embedded:extra")
