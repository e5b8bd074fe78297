"""Reference statistics files: clean-fid, pytorch-fid, ADM and tokbench formats; bad files fail clearly."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.metrics.fid import FrechetInceptionDistance
from tokbench.metrics.frechet import statistics_from_features
from tokbench.stats_io import load_statistics, save_statistics

D = 12
FEATURES = np.maximum(np.random.default_rng(0).standard_normal((40, D)) + 0.3, 0.0)
STATS = statistics_from_features(FEATURES)


def test_round_trip_keeps_values_and_count(tmp_path: Path) -> None:
    path = save_statistics(tmp_path / "sub" / "ref.npz", STATS)
    loaded = load_statistics(path, feature_dim=D)
    assert np.array_equal(loaded.mean, STATS.mean) and np.array_equal(loaded.covariance, STATS.covariance)
    assert loaded.count == 40 and loaded.source == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ref.npz"]  # no temporary left behind
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"mu", "sigma", "count"}


def test_reads_clean_fid_and_pytorch_fid_files(tmp_path: Path) -> None:
    path = tmp_path / "cifar10_clean_train_32.npz"
    np.savez_compressed(path, mu=STATS.mean.astype(np.float32), sigma=STATS.covariance.astype(np.float32))
    loaded = load_statistics(path)
    assert loaded.count is None
    np.testing.assert_allclose(loaded.covariance, STATS.covariance, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(loaded.covariance, loaded.covariance.T)


def test_reads_adm_reference_batches_including_spatial_statistics(tmp_path: Path) -> None:
    path = tmp_path / "VIRTUAL_tiny_labeled.npz"
    images = np.zeros((7, 8, 8, 3), dtype=np.uint8)
    spatial = statistics_from_features(FEATURES[:, :5])
    np.savez(
        path,
        arr_0=images,
        mu=STATS.mean,
        sigma=STATS.covariance,
        mu_s=spatial.mean,
        sigma_s=spatial.covariance,
    )
    pool = load_statistics(path, feature_dim=D)
    assert pool.count == 7 and np.array_equal(pool.mean, STATS.mean)
    sfid = load_statistics(path, spatial=True)
    assert sfid.dim == 5 and sfid.count == 7


def test_reads_clean_fid_kid_features(tmp_path: Path) -> None:
    path = tmp_path / "cifar10_clean_train_32_kid.npz"
    np.savez(path, feats=FEATURES.astype(np.float32))
    loaded = load_statistics(path)
    assert loaded.count == 40 and loaded.features is not None
    np.testing.assert_allclose(loaded.mean, STATS.mean, rtol=1e-6)


def test_loaded_reference_gives_the_same_fid_as_real_features(tmp_path: Path) -> None:
    fake = torch.from_numpy(np.maximum(np.random.default_rng(1).standard_normal((30, D)) + 0.4, 0.0))
    direct = FrechetInceptionDistance(feature_dim=D)
    direct.update_real(torch.from_numpy(FEATURES))
    direct.update_fake(fake)
    with_reference = FrechetInceptionDistance(
        feature_dim=D, reference=load_statistics(save_statistics(tmp_path / "r.npz", STATS), feature_dim=D)
    )
    with_reference.update(fake)
    assert with_reference.compute()["fid"] == pytest.approx(direct.compute()["fid"], rel=1e-10)


def test_torch_fidelity_cache_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "cifar10-train-inception-v3-compat-stat-fid-2048.pt"
    torch.save({"mu": STATS.mean, "sigma": STATS.covariance, "trap": _Trap(marker)}, path)
    with pytest.raises(ConfigError, match=r"torch.save checkpoint .*never unpickles"):
        load_statistics(path)
    legacy = tmp_path / "legacy.npz"
    legacy.write_bytes(pickle.dumps({"mu": STATS.mean, "trap": _Trap(marker)}))
    with pytest.raises(ConfigError, match="is a Python pickle"):
        load_statistics(legacy)
    assert not marker.exists()


class _Trap:
    """Unpickling this creates a file: proof that a loader executed pickle code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _write(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def _asymmetric() -> np.ndarray:
    sigma = STATS.covariance.copy()
    sigma[0, 1] += 1.0
    return sigma


def _nan() -> np.ndarray:
    sigma = STATS.covariance.copy()
    sigma[2, 2] = np.nan
    return sigma


def _negative_variance() -> np.ndarray:
    sigma = STATS.covariance.copy()
    sigma[3, 3] = -1.0
    return sigma


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"mu": STATS.mean}, r"has no 'mu'/'sigma' arrays \(found \['mu'\]\)"),
        ({"arr_0": np.zeros((2, 4, 4, 3), np.uint8)}, "looks like an ADM sample batch"),
        ({"mu": STATS.mean[None], "sigma": STATS.covariance}, r"'mu' must have shape \(d,\), got \(1, 12\)"),
        ({"mu": STATS.mean, "sigma": STATS.covariance[:, :5]}, r"'sigma' must have shape \(12, 12\)"),
        ({"mu": STATS.mean, "sigma": _nan()}, "'sigma' contains NaN or Inf"),
        ({"mu": STATS.mean, "sigma": _asymmetric()}, "'sigma' is not symmetric"),
        ({"mu": STATS.mean, "sigma": _negative_variance()}, "negative variances"),
        ({"mu": STATS.mean.astype(str), "sigma": STATS.covariance}, "'mu' must be real numbers"),
        ({"mu": STATS.mean, "sigma": STATS.covariance, "count": np.array(1)}, "'count' is 1"),
        ({"mu": np.array([1.0, object()], dtype=object), "sigma": STATS.covariance}, "object arrays"),
    ],
)
def test_bad_files_raise_config_errors_naming_the_file(tmp_path: Path, arrays: dict, message: str) -> None:
    path = _write(tmp_path, **arrays)
    with pytest.raises(ConfigError, match=message) as caught:
        load_statistics(path)
    assert str(path) in str(caught.value)


def test_feature_dimension_must_match_the_judge(tmp_path: Path) -> None:
    path = save_statistics(tmp_path / "ref.npz", STATS)
    with pytest.raises(ConfigError, match="has feature dimension 12, but the judge produces 2048"):
        load_statistics(path, feature_dim=2048)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_statistics(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a numpy file at all")
    with pytest.raises(ConfigError, match=r"neither \.npz nor \.npy"):
        load_statistics(garbage)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(ConfigError, match=r"damaged|not a readable"):
        load_statistics(damaged)
    single = tmp_path / "single.npy"
    np.save(single, STATS.mean)
    with pytest.raises(ConfigError, match="holds a single array"):
        load_statistics(single)


def test_save_refuses_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"must end in \.npz"):
        save_statistics(tmp_path / "ref.pt", STATS)
