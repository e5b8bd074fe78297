"""Face identity judges for TokBench's F-Sim: embed faces aligned on ground-truth 5-point landmarks.

Landmarks follow the convention of TokBench's ``face_meta.json`` (insightface's): left eye centre,
right eye centre, nose tip, left mouth corner, right mouth corner, in image pixels. Both judges align
with the least-squares similarity transform (Umeyama) from those five points to a fixed template and
a bilinear warp, so the original and its reconstruction are cropped identically.

- ``dlib-resnet-v1`` (offline default): dlib's 128-d ResNet (``dlib_face_recognition_resnet_model_v1``)
  on 150×150 chips, weights from ``face-recognition-models``; dlib runs on the CPU whatever the device.
- ``insightface-glintr100`` (TokBench's official judge): antelopev2's ``glintr100.onnx`` (ArcFace,
  512-d, 112×112 ``norm_crop`` template) through onnxruntime; weights downloaded when online. Upstream
  publishes no digest, so the suite pins one with the judge option ``sha256`` (checked when given).
"""

from __future__ import annotations

import io
import os
import urllib.request
import zipfile
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError, DataError, WeightsError
from tokbench.judges.base import Judge
from tokbench.judges.ocr import check_digest
from tokbench.judges.weights import (
    WEIGHTS_DIR_ENV,
    BundledFile,
    WeightsSpec,
    cache_dir,
    file_sha256,
    offline,
    resolve_weights,
)

# ArcFace's 112×112 destination landmarks (insightface ``arcface_dst``, used by ``norm_crop``).
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
# Where dlib's own chips (``get_face_chip``, size 150, padding 0.25) put these five points: measured
# with dlib's 68-point predictor on the chips of the eight embedded faces (eye centres = mean of the
# six eye points, nose tip = point 30, mouth corners = 48 and 54), averaged and made left-right
# symmetric (``tokbench.textface.build.measure_dlib_template`` re-measures it).
DLIB_TEMPLATE_150 = np.array([[49.3, 45.8], [100.7, 45.8], [75.0, 78.2], [50.0, 101.4], [100.0, 101.4]])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2×3 least-squares similarity (rotation, uniform scale, translation) mapping ``source``
    points onto ``target`` (Umeyama 1991, no reflection)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ConfigError(
            f"similarity_transform needs two K×2 point sets, got {source.shape} and {target.shape}"
        )
    source_mean, target_mean = source.mean(0), target.mean(0)
    a, b = source - source_mean, target - target_mean
    variance = (a**2).sum() / len(a)
    if variance == 0:
        raise DataError("face landmarks are all at one point; the alignment is undefined")
    u, singular, vt = np.linalg.svd(b.T @ a / len(a))
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / variance
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = target_mean - scale * rotation @ source_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The size×size chip of ``image`` (H×W×3 uint8) with ``landmarks`` moved onto ``template``."""
    import cv2

    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise DataError(f"face landmarks must be 5 finite (x, y) points, got shape {points.shape}")
    matrix = similarity_transform(points, template)
    return cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0
    )


class FaceEmbedder(Judge):
    """A face judge: ``embed`` aligns faces on landmarks and returns one float64 embedding per face."""

    outputs = ("embedding",)
    chip_size: ClassVar[int] = 0
    template: ClassVar[np.ndarray] = ARCFACE_TEMPLATE_112

    @abstractmethod
    def embed_chips(self, chips: Sequence[np.ndarray]) -> torch.Tensor:
        """Embed aligned chip_size×chip_size×3 uint8 RGB chips: an N×D float64 tensor."""

    def embed(self, image: np.ndarray, landmarks: Sequence[np.ndarray]) -> torch.Tensor:
        """Embed every face of one RGB uint8 image given its 5-point landmarks."""
        chips = [align_face(image, points, self.template, self.chip_size) for points in landmarks]
        return self.embed_chips(chips)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embed a uint8 N×3×S×S batch of chips already aligned to this judge's template."""
        expected = (3, self.chip_size, self.chip_size)
        if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ConfigError(
                f"{self.name}: expects uint8 N×3×{self.chip_size}×{self.chip_size} chips, "
                f"got {tuple(images.shape)}"
            )
        return {"embedding": self.embed_chips([chip.permute(1, 2, 0).cpu().numpy() for chip in images])}


DLIB_RESNET = WeightsSpec(
    name="dlib-face-recognition-resnet-v1",
    filename="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    bundled=(
        BundledFile(
            "face-recognition-models",
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        ),
    ),
    install_hint="pip install face-recognition-models==0.3.0 dlib-bin==20.0.1.post1",
    licence="CC0-1.0 (dlib model)",
    paper="dlib face recognition ResNet (King, 2017), 99.38% on LFW",
)


class DlibResnetFace(FaceEmbedder):
    """dlib's ResNet-29 face descriptor (128-d) on 150×150 chips."""

    name = "dlib-resnet-v1"
    feature_dim = 128
    chip_size = 150
    template = DLIB_TEMPLATE_150
    python_modules = ("dlib", "cv2")
    install_hint = "pip install dlib-bin==20.0.1.post1 opencv-python-headless"

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        """dlib's ResNet model file, bundled in ``face-recognition-models``."""
        return (DLIB_RESNET,)

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        try:
            import dlib
        except ImportError:
            raise ConfigError(f"judge dlib-resnet-v1 needs dlib: {self.install_hint}") from None
        self.resolved = resolve_weights(DLIB_RESNET, None if weights is None else Path(weights))
        self.model = dlib.face_recognition_model_v1(str(self.resolved.path))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights_sha256": self.resolved.spec.sha256,
            "chip_size": self.chip_size,
            "template": self.template.tolist(),
            "interpolation": "bilinear",
        }

    def embed_chips(self, chips: Sequence[np.ndarray]) -> torch.Tensor:
        if not chips:
            return torch.zeros((0, 128), dtype=torch.float64)
        vectors = self.model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips], 0)
        return torch.tensor(np.array([np.array(v) for v in vectors]), dtype=torch.float64)


ANTELOPEV2_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip"
GLINTR100_FILE = "glintr100.onnx"


class InsightfaceGlintr100(FaceEmbedder):
    """insightface antelopev2's ArcFace ``glintr100`` (512-d) via onnxruntime, as TokBench runs it.

    The file is looked for at ``weights``, ``$TOKBENCH_WEIGHTS_DIR/glintr100.onnx``, insightface's
    ``~/.insightface/models/antelopev2/`` and tokbench's cache, else downloaded (antelopev2.zip) when
    online. Its sha256 is recorded, and checked against ``sha256`` (a full digest or a prefix) when the
    suite pins one (upstream publishes none).
    """

    name = "insightface-glintr100"
    feature_dim = 512
    chip_size = 112
    template = ARCFACE_TEMPLATE_112
    weights_source = (
        f"{GLINTR100_FILE} of insightface's antelopev2 pack, downloaded into the tokbench cache on first "
        f"use ({ANTELOPEV2_URL}), or found in ${WEIGHTS_DIR_ENV} or ~/.insightface/models/antelopev2"
    )
    python_modules = ("onnxruntime", "cv2")
    install_hint = "pip install onnxruntime opencv-python-headless"

    def __init__(self, weights: str | None = None, sha256: str | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                "judge insightface-glintr100 (TokBench's official face model) needs onnxruntime: "
                f"{self.install_hint} (offline, use the default judge dlib-resnet-v1)"
            ) from None
        self.path = locate_glintr100(None if weights is None else Path(weights))
        self.pinned = sha256 is not None
        if sha256 is None:
            self.weights_sha256 = file_sha256(self.path)
        else:
            self.weights_sha256 = check_digest(self.path, sha256, "judge insightface-glintr100")
        self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "pinned": self.pinned,
            "chip_size": 112,
        }

    def embed_chips(self, chips: Sequence[np.ndarray]) -> torch.Tensor:
        if not chips:
            return torch.zeros((0, 512), dtype=torch.float64)
        batch = (np.stack(chips).astype(np.float32) - 127.5) / 127.5  # RGB, as insightface after swapRB
        output = self.session.run(None, {self.input_name: batch.transpose(0, 3, 1, 2)})[0]
        return torch.tensor(output, dtype=torch.float64)


def locate_glintr100(explicit: Path | None) -> Path:
    """Find ``glintr100.onnx`` locally, or download antelopev2.zip into the cache when allowed."""
    candidates = [explicit] if explicit is not None else []
    if os.environ.get(WEIGHTS_DIR_ENV):
        candidates.append(Path(os.environ[WEIGHTS_DIR_ENV]) / GLINTR100_FILE)
    cached = cache_dir() / "weights" / "antelopev2" / GLINTR100_FILE
    candidates += [Path.home() / ".insightface" / "models" / "antelopev2" / GLINTR100_FILE, cached]
    for path in candidates:
        if path.is_file():
            return path
        if path is explicit:
            raise WeightsError(f"judge insightface-glintr100: weights file {path} does not exist")
    hint = (
        f"download {ANTELOPEV2_URL}, unzip it and pass weights=PATH/glintr100.onnx or put glintr100.onnx "
        f"in ${WEIGHTS_DIR_ENV}"
    )
    if offline():
        raise WeightsError(f"judge insightface-glintr100: glintr100.onnx is not available offline; {hint}")
    try:
        with urllib.request.urlopen(ANTELOPEV2_URL, timeout=60) as response:
            archive = zipfile.ZipFile(io.BytesIO(response.read()))
        member = next(n for n in archive.namelist() if n.endswith(GLINTR100_FILE))
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(".partial")
        temporary.write_bytes(archive.read(member))
        temporary.replace(cached)
    except (OSError, StopIteration, zipfile.BadZipFile) as error:
        raise WeightsError(f"judge insightface-glintr100: download failed ({error}); {hint}") from None
    return cached
