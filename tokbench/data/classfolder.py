"""``classfolder:PATH``: an image folder whose first-level subfolders are the classes (labels for
zero-shot accuracy).

Two layouts are recognised:

- ImageNet by synset: every subfolder is an ImageNet-1k WordNet id (``n01440764``, the layout of the
  ImageNet-val folders). Labels are the ImageNet labels (0..999) and the class names are all 1,000
  ImageNet names, so a subset of the classes is still classified among all 1,000, as in the standard
  evaluation.
- any other names: the classes are the subfolders in sorted order, named by the folder name with
  underscores read as spaces (``golden_retriever`` → "golden retriever").

Images are found recursively below each class folder, as ``folder:PATH`` finds them (hidden files and
folders skipped). A class folder without images, or an image directly in ``PATH``, is an error.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tokbench.data.base import ImageItem
from tokbench.data.decode import SUPPORTED_EXTENSIONS, display_path, load_rgb
from tokbench.data.folder import FolderDataset
from tokbench.errors import ConfigError

LAYOUTS = ("imagenet-synsets", "subfolders")


class ClassFolderDataset(FolderDataset):
    """Labelled images: ``PATH/<class>/**/<image>``; labels and class names from the subfolders."""

    name = "classfolder"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        loose = [item_id for item_id in self._paths if "/" not in item_id]
        if loose:
            raise ConfigError(
                f"dataset classfolder {display_path(root)}: images must sit in one subfolder per class, but "
                f"{len(loose)} lie directly in it (e.g. {loose[0]}); move them into a class folder"
            )
        folders = sorted(  # escaped as item ids are, for a folder name that is not UTF-8
            display_path(entry.name)
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )
        counts = dict.fromkeys(folders, 0)
        for item_id in self._paths:
            counts[item_id.split("/", 1)[0]] += 1
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise ConfigError(
                f"dataset classfolder {display_path(root)}: class folder(s) {', '.join(empty)} contain no "
                f"images with extensions {', '.join(SUPPORTED_EXTENSIONS)}; add images or remove the "
                "folder(s)"
            )
        self.layout, self._class_names, self._label_of = _labels(folders)

    def class_names(self) -> tuple[str, ...]:
        """Class names by label (all 1,000 ImageNet names for the synset layout)."""
        return self._class_names

    def items(self) -> list[ImageItem]:
        """One lazily loaded, labelled item per image file."""
        return [
            ImageItem(
                id=item_id,
                source=display_path(path),
                load=functools.partial(load_rgb, path, item_id),
                label=self._label_of[item_id.split("/", 1)[0]],
            )
            for item_id, path in self._paths.items()
        ]

    def manifest(self) -> dict[str, Any]:
        """The folder manifest plus the layout, the class names and each item's label."""
        if self._manifest is None:
            manifest = super().manifest()
            labels = {item.id: item.label for item in self.items()}
            for entry in manifest["items"]:
                entry["label"] = labels[entry["id"]]
            manifest.update({"name": self.name, "layout": self.layout, "classes": list(self._class_names)})
            self._manifest = manifest
        return self._manifest


def _labels(folders: list[str]) -> tuple[str, tuple[str, ...], dict[str, int]]:
    """(layout, class names by label, folder → label) for the class folder names."""
    from tokbench.vocabulary.imagenet import imagenet_class_names, imagenet_synset_index

    synsets = imagenet_synset_index()
    if all(name in synsets for name in folders):
        return "imagenet-synsets", imagenet_class_names(), {name: synsets[name] for name in folders}
    names = tuple(name.replace("_", " ") for name in folders)
    return "subfolders", names, {name: index for index, name in enumerate(folders)}
