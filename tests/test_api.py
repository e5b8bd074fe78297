"""The Python API: evaluate, stored records, deduplication, sweeps, parity with scikit-image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import tokbench
from tokbench.api import sweep_specs
from tokbench.errors import ConfigError
from tokbench.records import validate_record


def test_evaluate_returns_metrics_record_and_frame() -> None:
    result = tokbench.evaluate("webp:quality=40", limit=3)
    assert {"psnr", "psnr_ci95", "ssim", "ms_ssim", "bits_per_pixel", "bytes_per_image"} <= set(
        result.metrics
    )
    validate_record(result.record)
    record = result.record
    assert record["model"]["spec"] == "webp:method=4,quality=40"
    assert record["dataset"]["name"] == "embedded"
    assert record["dataset"]["items_used"] == 3
    assert record["environment"]["tf32"] is False
    frame = result.to_frame()
    assert len(frame) == 1 and frame.loc[0, "psnr"] == pytest.approx(result.metrics["psnr"])


def test_protocol_hash_tracks_the_protocol_not_the_model() -> None:
    a = tokbench.evaluate("jpeg:quality=20", limit=2).record
    b = tokbench.evaluate("jpeg:quality=80", limit=2).record
    c = tokbench.evaluate("jpeg:quality=20", limit=3).record
    assert a["protocol_hash"] == b["protocol_hash"] != c["protocol_hash"]
    assert a["record_id"] != b["record_id"]


def test_store_deduplicates_and_force_replaces(tmp_path: Path) -> None:
    first = tokbench.evaluate("jpeg:quality=30", limit=2, store=tmp_path)
    assert first.stored.status == "added" and first.stored.path.is_file()
    again = tokbench.evaluate("jpeg:quality=30", limit=2, store=tmp_path)
    assert again.stored.status == "exists"
    assert again.record["created_at"] == first.record["created_at"]
    forced = tokbench.evaluate("jpeg:quality=30", limit=2, store=tmp_path, force=True)
    assert forced.stored.status == "replaced"
    assert len(list(tmp_path.rglob("*.json"))) == 1


def test_sweep_specs() -> None:
    assert sweep_specs("jpeg", {"quality": ["10", "90"]}) == ["jpeg:quality=10", "jpeg:quality=90"]
    assert sweep_specs("jpeg:subsampling=4:4:4", {"quality": ["10"]}) == ["jpeg:subsampling=4:4:4,quality=10"]
    with pytest.raises(ConfigError, match="also fixed"):
        sweep_specs("jpeg:quality=5", {"quality": ["10"]})


def test_evaluate_sweep_writes_one_record_per_point(tmp_path: Path) -> None:
    results = tokbench.evaluate_sweep("jpeg", {"quality": ["10", "50", "90"]}, limit=2, store=tmp_path)
    assert [r.stored.status for r in results] == ["added"] * 3
    bpp = [r.metrics["bits_per_pixel"] for r in results]
    assert bpp == sorted(bpp)


def test_psnr_and_ssim_equal_skimage_on_the_embedded_set() -> None:
    """Acceptance: the recon means equal scikit-image's per-image values, averaged, within 1e-6."""
    from tokbench.data.embedded import EmbeddedDataset
    from tokbench.data.preprocess import build_preprocess
    from tokbench.tensors import quantize_uint8

    result = tokbench.evaluate("jpeg:quality=50")
    preprocess = build_preprocess("imagenet-center-crop", resolution=256)
    psnrs, ssims = [], []
    for item in EmbeddedDataset().items():
        original = quantize_uint8(preprocess(item.load()).image).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(original).save(buffer, format="JPEG", quality=50, subsampling="4:2:0")
        reconstruction = np.asarray(Image.open(buffer).convert("RGB"))
        psnrs.append(peak_signal_noise_ratio(original, reconstruction, data_range=255))
        ssims.append(structural_similarity(original, reconstruction, data_range=255, channel_axis=-1))
    assert result.record["dataset"]["items_used"] == len(psnrs)
    assert result.metrics["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-6)
    assert result.metrics["ssim"] == pytest.approx(np.mean(ssims), rel=1e-6)


def test_reference_statistics_replace_the_originals_for_fid(tmp_path: Path) -> None:
    import torch

    from tokbench.data.embedded import EmbeddedDataset
    from tokbench.data.preprocess import build_preprocess
    from tokbench.judges.inception import InceptionV3TF
    from tokbench.metrics.frechet import statistics_from_features
    from tokbench.stats_io import save_statistics
    from tokbench.suites import load_suite
    from tokbench.tensors import quantize_uint8

    plain = tokbench.evaluate("jpeg:quality=30", limit=4)
    preprocess = build_preprocess("imagenet-center-crop", resolution=256)
    originals = torch.stack(
        [quantize_uint8(preprocess(item.load()).image) for item in EmbeddedDataset().items()[:4]]
    )
    judge = InceptionV3TF(**load_suite("recon").judges["inception"].options)  # the suite's convention
    statistics = statistics_from_features(judge(originals)["pool3"])
    path = save_statistics(tmp_path / "originals.npz", statistics)

    with_reference = tokbench.evaluate("jpeg:quality=30", limit=4, reference=path)
    assert with_reference.metrics["fid"] == pytest.approx(plain.metrics["fid"], rel=1e-8)
    assert with_reference.record["protocol"]["reference"]["name"] == "originals.npz"
    assert with_reference.record["protocol_hash"] != plain.record["protocol_hash"]

    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"bad\.npz"):
        tokbench.evaluate("jpeg:quality=30", limit=4, reference=tmp_path / "bad.npz")
