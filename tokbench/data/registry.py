"""The dataset registry and ``resolve_dataset``: from a spec (``embedded``, ``folder:PATH``) to a Dataset."""

from __future__ import annotations

from tokbench.data.base import Dataset
from tokbench.registry import Registry

_BUILTIN_DATASETS = {
    "embedded": "tokbench.data.embedded:EmbeddedDataset",
    "folder": "tokbench.data.folder:FolderDataset",
    "classfolder": "tokbench.data.classfolder:ClassFolderDataset",
    "tokbench-embedded": "tokbench.textface.embedded:EmbeddedTokbenchDataset",
    "tokbench": "tokbench.textface.dataset:TokbenchDataset",
    "tokbench-video": "tokbench.textface.video_dataset:TokbenchVideoDataset",
    "videofolder": "tokbench.data.video:VideoFolderDataset",
    "video-embedded": "tokbench.data.video_embedded:EmbeddedVideoDataset",
}

DATASETS: Registry[type[Dataset]] = Registry("dataset", base=Dataset, entry_point_group="tokbench.datasets")
for _name, _target in _BUILTIN_DATASETS.items():
    DATASETS.register(_name, _target)


def resolve_dataset(spec: str) -> Dataset:
    """Build the dataset a spec names: ``NAME`` or ``NAME:ARGUMENT`` (``folder:PATH``).

    An unknown name raises ``ConfigError`` listing the available ones.
    """
    name, separator, argument = spec.partition(":")
    return DATASETS.get(name).from_spec_argument(argument if separator else None)
