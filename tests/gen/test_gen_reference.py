"""Reference batches: found or explained, checked before sampling, arr_0 streamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gen_fixtures import write_reference

from tokbench.data.image_sets import iter_npz_images as iter_images
from tokbench.errors import ConfigError
from tokbench.gen.reference import find_reference, load_reference


def test_adm_reference_is_read_with_its_images(tmp_path: Path) -> None:
    path = write_reference(tmp_path / "ref.npz", images=5)
    reference = load_reference(path, 2048)
    assert reference.activations == "arr_0" and reference.image_shape == (5, 32, 32)
    assert reference.statistics.count == 5 and not reference.spatial
    chunks = list(iter_images(path, 2))
    assert [c.shape[0] for c in chunks] == [2, 2, 1]
    with np.load(path) as data:
        assert np.array_equal(np.concatenate([c.permute(0, 2, 3, 1).numpy() for c in chunks]), data["arr_0"])


def test_spatial_statistics_and_feats(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(6, 2048))
    with np.load(write_reference(tmp_path / "a.npz")) as data:
        arrays = dict(data)
    np.savez(tmp_path / "spatial.npz", **arrays, mu_s=arrays["mu"], sigma_s=arrays["sigma"])
    assert load_reference(tmp_path / "spatial.npz", 2048).spatial
    np.savez(tmp_path / "feats.npz", feats=feats)
    reference = load_reference(tmp_path / "feats.npz", 2048)
    assert reference.activations == "feats" and reference.statistics.count == 6


@pytest.mark.parametrize(
    ("keys", "width", "match"),
    [
        (("mu", "arr_0"), 2048, "no 'mu'/'sigma'"),
        (("mu", "sigma"), 64, "feature dimension 64"),
    ],
)
def test_bad_references_are_named(tmp_path: Path, keys, width, match) -> None:
    path = write_reference(tmp_path / "bad.npz", width=width, keys=keys)
    with pytest.raises(ConfigError, match=match):
        load_reference(path, 2048)


def test_missing_default_reference_says_where_to_download(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"imagenet/256/VIRTUAL_imagenet256_labeled\.npz.*--reference"):
        find_reference(None, "VIRTUAL_imagenet256_labeled.npz")
    with pytest.raises(ConfigError, match="pass --reference"):
        find_reference(None, None)
    (tmp_path / "cache" / "references").mkdir(parents=True)
    placed = write_reference(tmp_path / "cache" / "references" / "VIRTUAL_imagenet256_labeled.npz")
    assert find_reference(None, "VIRTUAL_imagenet256_labeled.npz") == placed
