"""Files in, numbers out: ``reconstructions:DIR`` scores reconstructions made elsewhere exactly as the
model itself would score; missing, extra and misshapen files are counted with their reasons."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

import tokbench
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.errors import ConfigError, DataError
from tokbench.models.files import item_stem

LIMIT = 6
FIDELITY = ("psnr", "ssim", "ms_ssim", "lpips", "fid", "kid", "kid_std", "psnr_ci95", "lpips_ci95")


def reconstruct_elsewhere(out: Path, quality: int = 30, limit: int = LIMIT) -> list[str]:
    """What a user's own script does: the suite's preprocessed image, JPEG at ``quality`` with Pillow,
    decoded and saved as PNG at the item's path. Returns the item ids written."""
    preprocess = build_preprocess("imagenet-center-crop", resolution=256)
    ids = []
    for item in resolve_dataset("embedded").items()[:limit]:
        pixels = preprocess(item.load()).image.mul(255).round().byte().permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
        path = out / f"{item_stem(item.id)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").save(path)
        ids.append(item.id)
    return ids


@pytest.fixture(scope="module")
def jpeg_saved(tmp_path_factory) -> tuple[dict, Path]:
    """The jpeg run's record and the folder it saved its reconstructions in (``--save-reconstructions``)."""
    out = tmp_path_factory.mktemp("jpeg") / "out"
    run = tokbench.evaluate(
        "jpeg:quality=30", "recon", limit=LIMIT, cache_features=False, save_reconstructions=out
    )
    return run.record, out


@pytest.fixture(scope="module")
def jpeg_record(jpeg_saved: tuple[dict, Path]) -> dict:
    return jpeg_saved[0]


def test_reconstructions_score_like_the_model_itself(tmp_path: Path, jpeg_record: dict) -> None:
    reconstruct_elsewhere(tmp_path / "rec")
    record = tokbench.evaluate(f"reconstructions:{tmp_path / 'rec'}", "recon", limit=LIMIT).record
    metrics, expected = record["metrics"], jpeg_record["metrics"]
    for key in FIDELITY:
        assert metrics[key] == expected[key], key
    assert "bits_per_pixel" in record["not_applicable"]
    assert record["outputs"]["ran_elsewhere"] is True
    assert record["model"]["spec"].startswith("reconstructions@")
    assert record["outputs"]["content_sha256"] == record["model"]["weights_sha256"]
    assert "encode_seconds_per_image" not in metrics
    assert record["dataset"]["items_used"] == LIMIT and not record["skipped"]


def test_saved_reconstructions_give_the_numbers_of_the_run_that_saved_them(
    jpeg_saved: tuple[dict, Path],
) -> None:
    """``--save-reconstructions``: the model's own uint8 outputs as PNG at each item's stem."""
    saved, out = jpeg_saved
    items = resolve_dataset("embedded").items()[:LIMIT]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        f"{item_stem(item.id)}.png" for item in items
    )
    record = tokbench.evaluate(f"reconstructions:{out}", "recon", limit=LIMIT, cache_features=False).record
    for key in FIDELITY:
        assert record["metrics"][key] == saved["metrics"][key], key
    assert "bits_per_pixel" in record["not_applicable"] and saved["metrics"]["bits_per_pixel"] > 0
    assert record["protocol_hash"] == saved["protocol_hash"]  # saving is an output option


def test_a_rate_sidecar_gives_bits_per_pixel(tmp_path: Path, jpeg_record: dict) -> None:
    ids = reconstruct_elsewhere(tmp_path / "rec")
    bits = {i: 8.0 * 1000 for i in ids}
    (tmp_path / "rec" / "tokbench_rate.json").write_text(json.dumps({"bits": bits, "num_tokens": 256}))
    record = tokbench.evaluate(f"reconstructions:{tmp_path / 'rec'}", "recon", limit=LIMIT).record
    assert record["metrics"]["bits_per_pixel"] == pytest.approx(8000 / 256**2)
    assert record["metrics"]["num_tokens"] == 256


def test_missing_resized_and_extra_files_are_counted_with_reasons(tmp_path: Path) -> None:
    ids = reconstruct_elsewhere(tmp_path / "rec")
    root = tmp_path / "rec"
    (root / f"{item_stem(ids[1])}.png").unlink()
    resized = root / f"{item_stem(ids[2])}.png"
    Image.open(resized).resize((128, 128)).save(resized)
    Image.new("RGB", (256, 256)).save(root / "not-an-item.png")
    record = tokbench.evaluate(f"reconstructions:{root}", "recon").record
    reasons = {entry["item"]: entry["reason"] for entry in record["skipped"]}
    assert "no reconstruction" in reasons[ids[1]]
    assert "is 128×128, expected 256×256" in reasons[ids[2]]
    assert "matches no item" in reasons["extra file not-an-item"]
    items = resolve_dataset("embedded").items()
    missing = [i.id for i in items if i.id not in ids]  # the dataset items nobody reconstructed
    assert all("no reconstruction" in reasons[i] for i in missing)
    assert record["dataset"]["items_used"] == LIMIT - 2


def test_on_error_fail_stops_at_a_missing_file(tmp_path: Path) -> None:
    reconstruct_elsewhere(tmp_path / "rec", limit=2)
    with pytest.raises(DataError, match="no reconstruction"):
        tokbench.evaluate(f"reconstructions:{tmp_path / 'rec'}", "recon", limit=3, on_error="fail")


def test_pfid_refuses_files_made_elsewhere(tmp_path: Path) -> None:
    reconstruct_elsewhere(tmp_path / "rec", limit=1)
    with pytest.raises(ConfigError, match="made elsewhere"):
        tokbench.evaluate(f"reconstructions:{tmp_path / 'rec'}", "pfid", limit=1)


def test_identity_is_the_content_not_the_path(tmp_path: Path) -> None:
    from tokbench.adapters.registry import build_model

    reconstruct_elsewhere(tmp_path / "a", limit=2)
    reconstruct_elsewhere(tmp_path / "b", limit=2)
    first, second = (
        build_model(f"reconstructions:{tmp_path / 'a'}"),
        build_model(f"reconstructions:path={tmp_path / 'b'}"),
    )
    assert first.spec == second.spec
    reconstruct_elsewhere(tmp_path / "b", quality=31, limit=2)
    assert build_model(f"reconstructions:{tmp_path / 'b'}").spec != first.spec


def test_bad_folders_are_refused(tmp_path: Path) -> None:
    from tokbench.adapters.registry import build_model

    with pytest.raises(ConfigError, match="not a directory"):
        build_model(f"reconstructions:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        build_model(f"reconstructions:{tmp_path / 'empty'}")
    (tmp_path / "empty" / "tokbench_rate.json").write_text("{}")
    Image.new("RGB", (4, 4)).save(tmp_path / "empty" / "a.png")
    with pytest.raises(ConfigError, match=r"tokbench_rate\.json"):
        build_model(f"reconstructions:{tmp_path / 'empty'}")


def resize_rec_elsewhere(out: Path, layout: str, limit: int) -> None:
    """What TokBench's ``resize_rec.py`` writes for the resize baseline: letterbox, restore, save under
    the original file name; ``official`` layout ``<set>_<R>/``, ``native`` layout ``<R>/``."""
    from tokbench.data.preprocess import LetterboxLanczos, undo_letterbox
    from tokbench.textface.embedded import EmbeddedTokbenchDataset

    for annotated in EmbeddedTokbenchDataset().annotated_images()[:limit]:
        original = annotated.load()
        for side in (256, 512, 1024):
            boxed = LetterboxLanczos(side)(original)
            folder = out / (f"text_{side}" if layout == "official" else str(side))
            folder.mkdir(parents=True, exist_ok=True)
            undo_letterbox(boxed.image, boxed.geometry).save(folder / annotated.file_name)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["official", "native"])
def test_tokbench_reads_both_layouts_like_the_model_itself(tmp_path: Path, layout: str) -> None:
    resize_rec_elsewhere(tmp_path / "rec", layout, limit=2)
    files = tokbench.evaluate(f"reconstructions:{tmp_path / 'rec'}", "tokbench", limit=2).record
    model = tokbench.evaluate("identity", "tokbench", limit=2).record
    assert files["metrics"] == model["metrics"]
    assert files["outputs"]["ran_elsewhere"] is True
    assert files["tokbench"]["not_scored"] == model["tokbench"]["not_scored"]


def test_tokbench_counts_a_wrong_size_and_an_extra_file(tmp_path: Path) -> None:
    from tokbench.textface.embedded import EmbeddedTokbenchDataset

    resize_rec_elsewhere(tmp_path / "rec", "native", limit=1)
    first = EmbeddedTokbenchDataset().annotated_images()[0]
    wrong = tmp_path / "rec" / "512" / first.file_name
    Image.open(wrong).resize((7, 5)).save(wrong)
    Image.new("RGB", (8, 8)).save(tmp_path / "rec" / "256" / "stray.png")
    record = tokbench.evaluate(f"reconstructions:{tmp_path / 'rec'}", "tokbench", limit=1).record
    reasons = [entry["reason"] for entry in record["skipped"]]
    assert any("@512px" in r and "is 7×5" in r for r in reasons)
    assert any("256/stray.*: matches no image" in r for r in reasons)
