"""``classfolder:PATH``: labels from first-level subfolders; the ImageNet synset layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tokbench.data.classfolder import ClassFolderDataset
from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError


def _image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def test_subfolder_classes(tmp_path: Path) -> None:
    _image(tmp_path / "golden_retriever" / "a.png")
    _image(tmp_path / "golden_retriever" / "deeper" / "b.jpg")
    _image(tmp_path / "cat" / "c.png")
    dataset = resolve_dataset(f"classfolder:{tmp_path}")
    assert isinstance(dataset, ClassFolderDataset) and dataset.layout == "subfolders"
    assert dataset.class_names() == ("cat", "golden retriever")
    assert [(i.id, i.label) for i in dataset.items()] == [
        ("cat/c.png", 0),
        ("golden_retriever/a.png", 1),
        ("golden_retriever/deeper/b.jpg", 1),
    ]
    manifest = dataset.manifest()
    assert manifest["name"] == "classfolder" and manifest["classes"] == ["cat", "golden retriever"]
    assert [entry["label"] for entry in manifest["items"]] == [0, 1, 1]


def test_imagenet_synset_folders_use_imagenet_labels(tmp_path: Path) -> None:
    _image(tmp_path / "n02123045" / "ILSVRC2012_val_00000001.JPEG")
    _image(tmp_path / "n01440764" / "ILSVRC2012_val_00000002.JPEG")
    dataset = ClassFolderDataset(tmp_path)
    assert dataset.layout == "imagenet-synsets" and len(dataset.class_names()) == 1000
    assert [i.label for i in dataset.items()] == [0, 281]
    assert dataset.class_names()[281] == "tabby cat"


def test_labels_change_the_manifest_hash(tmp_path: Path) -> None:
    _image(tmp_path / "a" / "x.png")
    _image(tmp_path / "b" / "y.png")
    labelled = ClassFolderDataset(tmp_path).manifest_hash()
    assert labelled != resolve_dataset(f"folder:{tmp_path}").manifest_hash()


def test_a_class_folder_without_images_is_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "cat" / "c.png")
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match=r"class folder\(s\) dog contain no images"):
        ClassFolderDataset(tmp_path)


def test_images_outside_class_folders_are_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "cat" / "c.png")
    _image(tmp_path / "loose.png")
    with pytest.raises(ConfigError, match=r"1 lie directly in it \(e\.g\. loose\.png\)"):
        ClassFolderDataset(tmp_path)


def test_unlabelled_datasets_have_no_class_names(tmp_path: Path) -> None:
    _image(tmp_path / "x.png")
    assert resolve_dataset(f"folder:{tmp_path}").class_names() is None
    assert all(item.label is None for item in resolve_dataset(f"folder:{tmp_path}").items())
