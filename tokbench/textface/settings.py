"""The ``tokbench`` track's settings, validated, and the units its processes share.

Settings (all required):

- ``resolutions``: ``[{resolution, text: [4 edges], face: [4 edges]}, ...]``;
- ``bucket_edges``: the official ``compute_all_metrics.py`` release the edges follow (``855802d``, the
  later one, or ``a77070c``, the first; checked against its table), or ``custom``;
- ``save``: ``as-original`` (the official scripts save the restored image under the original's name
  with PIL's defaults and score that file: JPEG originals get a quality-75 generation loss) or
  ``lossless`` (score the restored array);
- ``ocr_batches``: ``per-instance`` (each readable instance is read on its own; an instance whose
  ground truth leaves the judge's vocabulary is not scored) or ``official`` (``eval_text.py``: batches
  of 64 crops in annotation order within each annotation file, read with the ground truths, which
  caps PARSeq's decoding at the batch's longest one; a batch holding a character outside the
  vocabulary is dropped whole). Instances the track cannot crop still take their official slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokbench.errors import ConfigError
from tokbench.metrics.text_face import OFFICIAL_EDGES, check_edges
from tokbench.textface.annotations import AnnotatedImage
from tokbench.textface.saving import check_save_mode

OCR_BATCH_MODES = ("per-instance", "official")
#: ``eval_text.py``'s DataLoader batch size (``image_eval.sh``: ``--batch_size 64``).
OFFICIAL_OCR_BATCH = 64
BUCKET_EDGE_VERSIONS = (*OFFICIAL_EDGES, "custom")
SETTINGS_KEYS = ("resolutions", "bucket_edges", "save", "ocr_batches")


@dataclass(frozen=True)
class Resolution:
    """One evaluation resolution with its text and face bucket edges."""

    side: int
    text: tuple[float, ...]
    face: tuple[float, ...]


@dataclass(frozen=True)
class Settings:
    """The track's settings, validated."""

    resolutions: tuple[Resolution, ...]
    bucket_edges: str
    save: str
    ocr_batches: str


def settings_from(settings: dict[str, Any], suite: str) -> Settings:
    """``settings``: ``resolutions``, ``bucket_edges``, ``save`` and ``ocr_batches`` (see the module)."""
    check_keys(settings, SETTINGS_KEYS, suite)
    check_choice(settings["ocr_batches"], "ocr_batches", OCR_BATCH_MODES, suite)
    resolutions = resolutions_from(settings["resolutions"], suite)
    check_bucket_edges(settings["bucket_edges"], resolutions, suite)
    return Settings(
        resolutions,
        settings["bucket_edges"],
        check_save_mode(settings["save"], suite),
        settings["ocr_batches"],
    )


def check_keys(settings: dict[str, Any], keys: tuple[str, ...], suite: str) -> None:
    """``settings`` must hold exactly ``keys``: a ``ConfigError`` names the unknown and missing ones."""
    unknown = sorted(set(settings) - set(keys))
    missing = [key for key in keys if key not in settings]
    if unknown or missing:
        raise ConfigError(
            f"suite {suite!r}: settings must hold {list(keys)}"
            + (f"; unknown key(s) {unknown}" if unknown else "")
            + (f"; missing {missing}" if missing else "")
        )


def check_choice(value: Any, key: str, choices: tuple[str, ...], suite: str) -> None:
    """``value``, the setting ``key``, must be one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"suite {suite!r}: settings.{key} must be one of {list(choices)}, got {value!r}")


def resolutions_from(entries: Any, suite: str) -> tuple[Resolution, ...]:
    """``settings.resolutions``: a list of ``{resolution, text: [4 edges], face: [4 edges]}``."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"suite {suite!r}: settings.resolutions must be a list of {{resolution, text, face}}"
        )
    parsed = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"resolution", "text", "face"}:
            raise ConfigError(
                f"suite {suite!r}: each resolution needs exactly resolution, text, face: {entry!r}"
            )
        side = entry["resolution"]
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise ConfigError(f"suite {suite!r}: resolution must be a positive integer, got {side!r}")
        text = check_edges(entry["text"], f"suite {suite!r} text edges at {side}")
        face = check_edges(entry["face"], f"suite {suite!r} face edges at {side}")
        parsed.append(Resolution(side, text, face))
    return tuple(parsed)


def check_bucket_edges(version: Any, resolutions: tuple[Resolution, ...], suite: str) -> None:
    """With an official ``version``, every resolution's edges must be that release's."""
    check_choice(version, "bucket_edges", BUCKET_EDGE_VERSIONS, suite)
    if version != "custom":
        check_official_edges(OFFICIAL_EDGES[version], version, resolutions, suite)


def check_official_edges(
    table: Mapping[str, Mapping[int, tuple[float, ...]]],
    version: str,
    resolutions: tuple[Resolution, ...],
    suite: str,
    what: str = "",
    side: str = "resolution",
) -> None:
    """Every resolution's text and face edges must be ``table``'s (release ``version``) at its side;
    ``what`` and ``side`` word the error (e.g. ``"video "``, ``"short side"``)."""
    for resolution in resolutions:
        for kind, edges in (("text", resolution.text), ("face", resolution.face)):
            official = table[kind].get(resolution.side)
            if official != edges:
                raise ConfigError(
                    f"suite {suite!r}: {what}{kind} edges at {resolution.side} are {list(edges)}, TokBench "
                    f"{version} has {list(official) if official else f'none at this {side}'} "
                    "(set them, or bucket_edges: custom)"
                )


def ocr_units(images: list[AnnotatedImage], mode: str) -> list[list[int]]:
    """Image indices grouped into the units processes share: one image each, or with official OCR
    batches, runs of images that fill whole 64-crop batches of one annotation file."""
    if mode == "per-instance":
        return [[index] for index in range(len(images))]
    units: list[list[int]] = []
    subset, count = None, 0
    for index, annotated in enumerate(images):
        boundary = annotated.subset != subset or count % OFFICIAL_OCR_BATCH == 0
        if annotated.subset != subset:
            subset, count = annotated.subset, 0
        if boundary or not units:
            units.append([])
        units[-1].append(index)
        count += len(annotated.texts)
    return units


def subset_ends(images: list[AnnotatedImage]) -> frozenset[str]:
    """Ids of the last image of each annotation file (where a partial official OCR batch is read)."""
    return frozenset(
        a.id
        for a, after in zip(images, [*images[1:], None], strict=True)
        if after is None or after.subset != a.subset
    )


@dataclass(frozen=True)
class OcrSlot:
    """One text instance in an OCR batch; ``crop`` None keeps an official slot the track cannot read."""

    annotated: AnnotatedImage
    index: int
    crop: np.ndarray | None


#: What an unreadable official slot shows the judge (its prediction is discarded).
BLANK_CROP = np.zeros((32, 128, 3), np.uint8)
