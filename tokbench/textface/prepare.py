"""A TokBench image prepared for the model (in a loader worker, ``tokbench.tracks.loading``): the
save-format check, the decoded pixels, the annotation-size flag and the letterbox canvas per side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tokbench.data.base import Preprocessed
from tokbench.data.preprocess import LetterboxLanczos
from tokbench.textface.annotations import AnnotatedImage
from tokbench.textface.embedded import MISMATCH_KEY
from tokbench.textface.saving import save_format

#: An image's pixels (H×W×3 uint8), whether its size disagreed with the annotation, and its letterbox
#: canvas per side (none for reconstructions made elsewhere).
PreparedImage = tuple[np.ndarray, bool, dict[int, Preprocessed]]


@dataclass(frozen=True)
class PrepareImage:
    """Per image: the checks, the decoding and the letterboxing of ``PreparedImage`` (it pickles)."""

    save: str
    sides: tuple[int, ...]

    def __call__(self, annotated: AnnotatedImage) -> PreparedImage:
        """The image prepared; a ``DataError`` (unsavable name, unreadable file) names the image."""
        if self.save == "as-original":
            save_format(annotated.file_name)
        image = annotated.load()
        pixels = np.asarray(image)
        canvases = {side: LetterboxLanczos(side)(Image.fromarray(pixels)) for side in self.sides}
        return pixels, bool(image.info.get(MISMATCH_KEY)), canvases
