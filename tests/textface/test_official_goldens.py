"""TokBench conformance: the pipeline, scoring and aggregation against outputs of the official code.

Reference data: ``shared/reference/protocols/tokbench`` (see ``shared/reference/protocols/README.md``,
Part 1: every file there was produced by running wjf5203/TokBench's own scripts).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import pytest
import torch
from PIL import Image

from tokbench.data.preprocess import LetterboxLanczos, undo_letterbox
from tokbench.metrics.text_face import OFFICIAL_EDGES, bucket_counts, bucket_means, edit_distance
from tokbench.metrics.text_face import normalized_edit_similarity as ned
from tokbench.tensors import quantize_uint8, tensor_to_pil, uint8_to_float
from tokbench.textface.annotations import parse_text_instance
from tokbench.textface.saving import saved_pixels
from tokbench.tracks.tokbench import QUANTIZATION

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "protocols" / "tokbench"
pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"reference data {GOLDEN} is absent")


def _json(relative: str) -> Any:
    return json.loads((GOLDEN / relative).read_text(encoding="utf-8"))


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _records() -> list[dict[str, Any]]:
    return _json("resize_baseline/manifest.json")["records"] if GOLDEN.is_dir() else []


def _pillow_mismatches() -> tuple[set[str], dict[str, dict[str, int]]]:
    """Records the installed Pillow computes differently from the reference (Pillow 11.3.0), as the
    reference re-run under that Pillow found them, with its read-back differences per saved file."""
    path = GOLDEN / "resize_baseline" / "pillow_versions" / f"pillow_{PIL.__version__}.json"
    if not path.is_file():
        pytest.skip(
            f"no reference re-run for Pillow {PIL.__version__} (have {sorted(path.parent.iterdir())})"
        )
    run = json.loads(path.read_text())
    differing = set(run["mismatch_examples"].get("restored_before_save_rgb_sha256", []))
    return differing, {d["file"]: d for d in run["readback_pixel_diffs"]}


@pytest.mark.parametrize("record", _records(), ids=lambda r: f"{r['source']}@{r['R']}")
def test_letterbox_restore_save_reproduce_the_official_resize_baseline(record: dict[str, Any]) -> None:
    """smart_padding → identity → restore_original → save(original name) → read back, at 256/512/1024."""
    differing, diffs = _pillow_mismatches()
    source = Image.open(GOLDEN / "sources" / record["source"]).convert("RGB")
    prepared = LetterboxLanczos(record["R"])(source)
    geometry = prepared.geometry
    left, top, width, height = geometry["content_box"]
    assert {
        "original_size": geometry["original_size"],
        "scaled_size": [width, height],
        "paste_position": [left, top],
        "target_size": geometry["canvas_size"],
    } == record["meta"]  # the float ceil included: 364x273 at 256 is scaled to 256x193
    restored = undo_letterbox(prepared.image, geometry)
    saved = saved_pixels(restored, record["source"], "as-original")
    key = f"{record['source']}@{record['R']}"
    if key not in differing:
        assert _sha(np.asarray(tensor_to_pil(prepared.image))) == record["padded_rgb_sha256"]
        assert _sha(np.asarray(restored)) == record["restored_before_save_rgb_sha256"]
        assert _sha(saved) == record["saved_readback_pil_rgb_sha256"]
        return
    # Pillow 13 resizes some tall images vertically first: the official file differs exactly as the
    # reference re-run under this Pillow measured it.
    official = np.asarray(Image.open(GOLDEN / "resize_baseline" / record["saved_file"]).convert("RGB"))
    official = official.astype(int)
    difference = np.abs(saved.astype(int) - official)
    expected = diffs[record["saved_file"]]
    assert (int(difference.max()), int((difference != 0).sum())) == (expected["max_abs"], expected["n_diff"])


def test_lossless_save_keeps_the_restored_array_and_jpegs_read_the_same_with_cv2() -> None:
    import cv2

    source = Image.open(GOLDEN / "sources" / "img8_364x273.jpg").convert("RGB")
    prepared = LetterboxLanczos(256)(source)
    restored = undo_letterbox(prepared.image, prepared.geometry)
    lossless = saved_pixels(restored, "img8_364x273.jpg", "lossless")
    as_original = saved_pixels(restored, "img8_364x273.jpg", "as-original")
    assert np.array_equal(lossless, np.asarray(restored))
    error = np.abs(as_original.astype(int) - lossless.astype(int))
    assert error.max() > 0  # the quality-75 generation loss of the official save
    for path in sorted(GOLDEN.glob("resize_baseline/R*/*.jpg")):  # faces are read with cv2 (BGR)
        assert np.array_equal(cv2.imread(str(path))[:, :, ::-1], np.asarray(Image.open(path).convert("RGB")))


def test_t_acc_and_t_ned_equal_the_official_scoring() -> None:
    pairs = _json("metrics/metric_pairs.json")
    scored = []
    for pair in pairs["pairs"]:
        gt, pred = pair["gt"], pair["pred"]
        if "error" in pair:  # both empty: ZeroDivisionError officially; tokbench never scores an empty gt
            assert parse_text_instance({"rec": gt, "bbox": [0, 0, 1, 1], "ratio": 0.1}, 9, 9).error
            continue
        assert edit_distance(gt, pred) == pair["nltk_edit_distance"]
        assert float(gt == pred) == pair["tokbench_accuracy"]
        assert math.isclose(ned(gt, pred), pair["tokbench_ned"], rel_tol=0, abs_tol=1e-12)
        scored.append((float(gt == pred), ned(gt, pred)))
    aggregate = pairs["aggregate_over_pairs_without_error"]
    assert len(scored) == aggregate["instances"]
    assert abs(sum(a for a, _ in scored) / len(scored) - aggregate["avg_exact_match"]) <= 1e-12
    assert abs(sum(n for _, n in scored) / len(scored) - aggregate["avg_exact_ned"]) <= 1e-12


def test_t_ned_equals_the_official_outputs_on_real_ocr() -> None:
    data = _json("metrics/official_example_outputs_ic13_ic15_tt_cord.json")
    rows = [dict(zip(d["columns"], row, strict=True)) for d in data.values() for row in d["rows"]]
    assert len(rows) == 5277
    for row in rows:
        assert float(row["gt"] == row["pred"]) == row["accuracy"]
        assert ned(row["gt"], row["pred"]) == row["ned"]  # bitwise


_TEXT_FILES = ("ic13", "ic15", "tt", "textocr", "sroie", "cord", "infograph", "docvqa")


def _instances(folder: str, names: tuple[str, ...], method: str, setting: str) -> list[dict[str, Any]]:
    """A method/setting's instances over the result files, in the official order (first file's methods)."""
    files = [GOLDEN / "aggregation" / folder / f"{n}.json" for n in names]
    files = [f for f in files if f.is_file()]
    methods = json.loads(files[0].read_text())
    assert method in methods
    rows: list[dict[str, Any]] = []
    for path in files:
        for key, run in json.loads(path.read_text()).get(method, {}).items():
            if key.rsplit("_", 1)[-1] == setting:
                rows += [i for detail in run["details"].values() for i in detail["results"]]
    return rows


def _aggregation_cases() -> list[tuple[str, dict[str, Any]]]:
    if not GOLDEN.is_dir():
        return []
    runs = _json("aggregation/aggregation_results.json")["runs"]
    return [(f"{r['version']}-{r['function']}-{r['data_type']}-{r['setting']}", r) for r in runs]


@pytest.mark.parametrize(("name", "run"), _aggregation_cases(), ids=[n for n, _ in _aggregation_cases()])
def test_bucket_aggregation_equals_compute_all_metrics(name: str, run: dict[str, Any]) -> None:
    """Bucket means and their unweighted mean, both face-edge releases (NaN = bucket or mean absent)."""
    table = _json("aggregation/aggregation_results.json")["bucket_edges_read_from_code"]
    release = "a77070c" if run["version"].startswith("first") else "855802d"
    text, setting = run["function"] == "summarize_text", run["setting"]
    if run["data_type"] == "video":
        edges = table["text_video" if text else "face_video"][setting]
        folder, names = "inputs_video", ("ch3", "ds") if text else ("face",)
    else:
        edges = OFFICIAL_EDGES[release]["text" if text else "face"][int(setting)]
        assert (
            list(edges)
            == table[
                "text_image_all_versions"
                if text
                else f"face_image_{'first_release' if release == 'a77070c' else 'later'}"
            ][setting]
        )
        folder, names = "inputs_image", _TEXT_FILES if text else ("face",)
    for row in run["tables"][0]["rows"]:
        instances = _instances(folder, names, row["cells"][0], setting)
        ratios = torch.tensor([i["ratio"] for i in instances], dtype=torch.float64)
        counts = bucket_counts(ratios, edges)
        assert [counts[b] for b in ("small", "medium", "large")] == row["bucket_counts"]
        outputs = (("accuracy", "acc"), ("ned", "ned")) if text else (("similarity", "similarity"),)
        for field, label in outputs:
            values = torch.tensor([float(i[field]) for i in instances], dtype=torch.float64)
            means = bucket_means(values, ratios, edges, "m", 1.0)
            for bucket, expected in zip(
                ("small", "medium", "large"), row[f"{label}_bucket_means"], strict=True
            ):
                _close(means.get(f"m_{bucket}"), expected)
            _close(means.get("m_mean"), row[f"mean_{label}" if text else "mean_similarity"])


def _close(value: float | None, expected: float | str) -> None:
    if expected == "NaN":
        assert value is None
    else:
        assert value is not None and abs(value - expected) <= 1e-12


def test_quantisation_is_the_official_round_half_even_rule() -> None:
    """The protocol's uint8 rule (QUANTIZATION) equals sdxl_vae_rec.py's on the official vector test and
    full-image variant; it is lossless for the identity (the resize baseline has no float step)."""
    reference = _json("quantisation/quantisation.json")
    assert QUANTIZATION["name"] == "round-half-even-01"
    inputs = torch.from_numpy(np.load(GOLDEN / "quantisation" / "vector_inputs.npz")["inputs_01"])
    expected = reference["vector_test"]["outputs"]["sdxl_round_half_even01"]["outputs"]
    assert quantize_uint8(inputs).tolist() == expected
    levels = torch.arange(256, dtype=torch.uint8)
    assert quantize_uint8(uint8_to_float(levels)).tolist() == reference["identity_round_trip"]["sdxl"]["lut"]
    padded = np.asarray(Image.open(GOLDEN / "resize_baseline" / "padded_R256" / "img3_123x457.png.png"))
    y, x, c = np.meshgrid(np.arange(256), np.arange(256), np.arange(3), indexing="ij")
    k = 16 * padded.astype(np.int32) + ((131 * y + 71 * x + 29 * c) % 81) - 40
    x01 = torch.from_numpy(k.astype(np.float32) / 4096).permute(2, 0, 1)
    arrays = np.load(GOLDEN / "quantisation" / "quantised_R256_img3_123x457_png.npz")
    assert np.array_equal(np.asarray(tensor_to_pil(x01)), arrays["sdxl_round_half_even01"])
