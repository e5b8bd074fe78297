"""``samples:PATH``: an ADM sample batch or a folder of images drawn elsewhere, scored by the gen track
exactly as the generator that drew them (same gFID, IS, precision and recall)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tokbench
from tokbench.errors import ConfigError, DataError

METRICS = ("gfid", "gfid_count", "inception_score", "inception_score_std", "precision", "recall")


def _run(env: Path, model, work: str, **options):
    return tokbench.evaluate(model, "tinyproj", reference=env / "ref.npz", work_dir=env / work, **options)


def _drawn(env: Path, tiny_dit) -> tuple[dict, np.ndarray, np.ndarray]:
    """The tiny generator's run and the samples it drew (uint8 N×H×W×3) with their labels."""
    result = _run(env, tiny_dit(), "drawn", save_samples=True, batch_size=8)
    (run,) = [p for p in (env / "drawn").iterdir() if p.is_dir()]
    files = sorted(run.glob("samples-*.npz"))
    images = np.concatenate([np.load(f)["arr_0"] for f in files])
    labels = np.arange(len(images)) % 4  # the suite's round-robin classes
    return result.metrics, images, labels


def _write_folder(folder: Path, images: np.ndarray) -> Path:
    """The samples as numbered PNGs (uint8 N×H×W×3) in a new folder."""
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return folder


@pytest.fixture
def proj_env(gen_env: Path, projection_judge, reference_writer) -> Path:
    reference_writer(gen_env / "ref.npz", images=5)
    return gen_env


def test_an_adm_batch_scores_like_its_generator(proj_env: Path, tiny_dit) -> None:
    expected, images, labels = _drawn(proj_env, tiny_dit)
    np.savez(proj_env / "samples.npz", arr_0=images, arr_1=labels)
    for batch_size in (8, 3):
        result = _run(
            proj_env, f"samples:{proj_env / 'samples.npz'}", f"files{batch_size}", batch_size=batch_size
        )
        assert {k: result.metrics[k] for k in METRICS} == {k: expected[k] for k in METRICS}
    generation = result.record["generation"]
    assert generation["source"]["ran_elsewhere"] is True and generation["source"]["count"] == 8
    assert generation["weights_sha256"] == result.record["model"]["weights_sha256"]
    assert "checked" in generation["class_balance"]


def test_a_folder_of_images_scores_like_its_generator(proj_env: Path, tiny_dit) -> None:
    expected, images, _ = _drawn(proj_env, tiny_dit)
    folder = _write_folder(proj_env / "folder", images)
    for workers, batch_size in ((0, 8), (2, 3)):  # decoded here, then in two worker processes
        result = _run(
            proj_env, f"samples:{folder}", f"files{workers}", batch_size=batch_size, num_workers=workers
        )
        assert {k: result.metrics[k] for k in METRICS} == {k: expected[k] for k in METRICS}
        assert result.record["run"]["num_workers"] == workers
    assert "not checked" in result.record["generation"]["class_balance"]


def test_an_unreadable_sample_file_stops_the_run_naming_it(proj_env: Path, tiny_dit) -> None:
    _, images, _ = _drawn(proj_env, tiny_dit)
    folder = _write_folder(proj_env / "folder", images)
    (folder / "00005.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"00005\.png"):
        _run(proj_env, f"samples:{folder}", "broken", batch_size=3, num_workers=2)


def test_unbalanced_or_mislabelled_samples_are_refused(proj_env: Path) -> None:
    images = np.zeros((8, 8, 8, 3), dtype=np.uint8)
    np.savez(proj_env / "unbalanced.npz", arr_0=images, arr_1=np.array([0, 0, 0, 1, 1, 2, 2, 3]))
    with pytest.raises(ConfigError, match="class 0 has 3 samples"):
        _run(proj_env, f"samples:{proj_env / 'unbalanced.npz'}", "w")
    np.savez(proj_env / "outside.npz", arr_0=images, arr_1=np.array([0, 1, 2, 3, 4, 5, 6, 7]))
    with pytest.raises(ConfigError, match="label 4 is not one of the suite's 4 classes"):
        _run(proj_env, f"samples:{proj_env / 'outside.npz'}", "w")
    np.savez(proj_env / "floats.npz", arr_0=images.astype(np.float32))
    with pytest.raises(ConfigError, match="must be uint8 images"):
        _run(proj_env, f"samples:{proj_env / 'floats.npz'}", "w")
    np.savez(proj_env / "eight.npz", arr_0=images)
    with pytest.raises(ConfigError, match="holds 8 samples"):
        _run(proj_env, f"samples:{proj_env / 'eight.npz'}", "w", num_samples=4)
