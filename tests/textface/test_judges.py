"""The OCR and face judges on real crops, alignment, and the error paths of the online judges."""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges.face import DLIB_TEMPLATE_150, DlibResnetFace, align_face, similarity_transform
from tokbench.judges.ocr import (
    DOCTR_VERSION,
    PARSEQ_FILE,
    PARSEQ_SHA256_PREFIX,
    EasyOcrEnglish,
    check_digest,
    check_doctr_version,
    codepoints_to_strings,
    locate_parseq,
    strings_to_codepoints,
)
from tokbench.judges.registry import JUDGES
from tokbench.textface.crops import crop_text
from tokbench.textface.embedded import EmbeddedTokbenchDataset


@pytest.fixture(scope="module")
def ocr() -> EasyOcrEnglish:
    return EasyOcrEnglish()


@pytest.fixture(scope="module")
def face() -> DlibResnetFace:
    return DlibResnetFace()


def test_easyocr_reads_embedded_crops(ocr: EasyOcrEnglish) -> None:
    annotated = EmbeddedTokbenchDataset().annotated_images()[0]
    pixels = np.asarray(annotated.load())
    texts = annotated.texts[:3]
    read = ocr.read([crop_text(pixels, t.geometry) for t in texts])
    assert read == [t.text for t in texts]  # the manifest kept only what this judge reads
    assert ocr.describe()["weights_sha256"].startswith("e2272681")
    assert JUDGES.get("easyocr-en-g2") is EasyOcrEnglish


def test_vocabulary_report_and_codepoints(ocr: EasyOcrEnglish) -> None:
    assert ocr.unreadable("Café Ü-Bahn é") == "éÜ"
    assert ocr.unreadable("Exit 12B!") == ""
    codes = strings_to_codepoints(["ab", "", "é"])
    assert codes.shape == (3, 2) and codepoints_to_strings(codes) == ["ab", "", "é"]


def test_ocr_forward_reads_a_batch(ocr: EasyOcrEnglish) -> None:
    annotated = EmbeddedTokbenchDataset().annotated_images()[0]
    text = annotated.texts[4]
    crop = crop_text(np.asarray(annotated.load()), text.geometry)
    batch = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0)
    assert codepoints_to_strings(ocr(batch)["codepoints"]) == [text.text]
    with pytest.raises(ConfigError, match="uint8"):
        ocr(batch.float())


def test_similarity_transform_recovers_a_known_map() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([4.0, -9.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * points @ rotation.T + shift
    matrix = similarity_transform(points, moved)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_dlib_identity_survives_mild_compression(face: DlibResnetFace, hopper_pixels: np.ndarray) -> None:
    kps = np.array([[223.7, 192.3], [305.3, 189.2], [267.0, 238.0], [233.0, 281.0], [300.0, 277.0]])
    buffer = io.BytesIO()
    Image.fromarray(hopper_pixels).save(buffer, format="JPEG", quality=40)
    compressed = np.asarray(Image.open(buffer).convert("RGB"))
    original, same = face.embed(hopper_pixels, [kps]), face.embed(compressed, [kps])
    other = face.embed(np.ascontiguousarray(hopper_pixels[:, ::-1]), [kps])  # landmarks now off the face
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(original, same).item() > 0.97
    assert cosine(original, other).item() < cosine(original, same).item()
    chip = align_face(hopper_pixels, kps, DLIB_TEMPLATE_150, 150)
    assert chip.shape == (150, 150, 3)
    forward = face(torch.from_numpy(chip).permute(2, 0, 1).unsqueeze(0))["embedding"]
    assert torch.allclose(forward, original)


@pytest.mark.skipif(importlib.util.find_spec("doctr") is not None, reason="docTR is installed")
def test_official_ocr_names_its_install() -> None:
    with pytest.raises(ConfigError, match="pip install python-doctr"):
        JUDGES.get("doctr-parseq")()


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is not None, reason="onnxruntime is installed")
def test_official_face_model_names_its_install() -> None:
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        JUDGES.get("insightface-glintr100")()


def test_official_ocr_pins_its_docTR_release() -> None:
    check_doctr_version(DOCTR_VERSION)
    with pytest.raises(
        ConfigError, match=r"python-doctr 1\.0\.0 is installed.*pip install python-doctr==0\.11\.0"
    ):
        check_doctr_version("1.0.0")


def test_weights_digests_are_checked(tmp_path: Path) -> None:
    weights = tmp_path / PARSEQ_FILE
    weights.write_bytes(b"not the PARSeq checkpoint")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert check_digest(weights, digest[:8], "judge x") == digest
    assert check_digest(weights, digest, "judge x") == digest
    with pytest.raises(WeightsError, match=f"expected one starting with {PARSEQ_SHA256_PREFIX}"):
        check_digest(weights, PARSEQ_SHA256_PREFIX, "judge doctr-parseq")
    assert locate_parseq(weights) == weights
    with pytest.raises(WeightsError, match="does not exist"):
        locate_parseq(tmp_path / "missing.pt")


def test_crops_of_one_pixel_are_read(ocr: EasyOcrEnglish) -> None:
    assert ocr.read([np.full((1, 12, 3), 200, np.uint8)]) == [""]
    with pytest.raises(ConfigError, match="non-empty"):
        ocr.read([np.zeros((0, 12, 3), np.uint8)])
    with pytest.raises(ConfigError, match="without ground truths"):
        ocr.read([np.full((4, 12, 3), 200, np.uint8)], ["x"])
