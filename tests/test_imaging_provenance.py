"""Pillow and its codec libraries change pixels, so records state them and image protocols hash them."""

from __future__ import annotations

import PIL
import pytest

from tokbench.data import base
from tokbench.data.preprocess import build_preprocess
from tokbench.provenance import environment, imaging_versions, protocol_hash
from tokbench.tracks.scoring import resolve_device


def test_records_state_the_imaging_libraries() -> None:
    versions = environment(resolve_device("cpu"))["imaging"]
    assert versions["pillow"] == PIL.__version__
    assert versions["libjpeg"] and versions["libwebp"]


def test_a_preprocessing_protocol_changes_with_the_pillow_version(monkeypatch: pytest.MonkeyPatch) -> None:
    preprocess = build_preprocess("imagenet-center-crop", resolution=256)
    today = protocol_hash({"preprocess": preprocess.describe()})
    monkeypatch.setattr(
        base, "imaging_versions", lambda: {**imaging_versions(), "pillow": "0.0.0-another-release"}
    )
    assert protocol_hash({"preprocess": preprocess.describe()}) != today
