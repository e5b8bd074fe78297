"""A hand-written copy of TokBench's official annotation layout, with real rendered text and a face."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont


def _font() -> ImageFont.FreeTypeFont:
    path = metadata.distribution("matplotlib").locate_file("matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf")
    return ImageFont.truetype(str(path), 28)


@pytest.fixture(scope="session")
def official_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``annotations/text_ic13.json`` (box, polygon, empty string, box outside, non-vocabulary char,
    missing image) and ``annotations/face_meta.json`` (grace_hopper with dlib-style landmarks)."""
    root = tmp_path_factory.mktemp("tokbench-official")
    (root / "annotations").mkdir()
    text_dir = root / "images" / "text_data" / "ic13"
    text_dir.mkdir(parents=True)
    image = Image.new("RGB", (400, 200), (235, 235, 225))
    draw = ImageDraw.Draw(image)
    draw.text((20, 20), "Exit 12", font=_font(), fill=(20, 20, 30))
    rotated = Image.new("RGBA", (160, 50), (235, 235, 225, 255))
    ImageDraw.Draw(rotated).text((10, 5), "Gate 7", font=_font(), fill=(20, 20, 30, 255))
    image.paste(rotated.rotate(0), (200, 120))
    image.save(text_dir / "word_1.png")
    text = [
        {
            "file_name": "word_1.png",
            "height": 200,
            "width": 400,
            "annotations": [
                {"rec": "Exit 12", "bbox": [14, 16, 140, 58], "ratio": 0.105},
                {"rec": "Gate 7", "bbox": [[204, 120], [356, 120], [356, 168], [204, 168]], "ratio": 0.12},
                {"rec": "", "bbox": [0, 0, 10, 10], "ratio": 0.05},
                {"rec": "Far", "bbox": [390, 150, 480, 190], "ratio": 0.1},
                {"rec": "Café", "bbox": [14, 16, 140, 58], "ratio": 0.105},
            ],
        },
        {
            "file_name": "missing.png",
            "height": 50,
            "width": 50,
            "annotations": [{"rec": "x", "bbox": [0, 0, 9, 9], "ratio": 0.2}],
        },
    ]  # fmt: skip
    (root / "annotations" / "text_ic13.json").write_text(json.dumps(text))
    face_dir = root / "images" / "face_data"
    face_dir.mkdir(parents=True)
    hopper = metadata.distribution("matplotlib").locate_file(
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg"
    )
    Image.open(str(hopper)).convert("RGB").save(face_dir / "hopper.png")
    kps = [[223.7, 192.3], [305.3, 189.2], [267.0, 238.0], [233.0, 281.0], [300.0, 277.0]]
    face = {"kps": kps, "box": [180, 139, 367, 326], "ratio": 0.31, "gt": 1}
    faces = [{"image_name": "hopper.png", "img_height": 600, "img_width": 512, "faces": [face]}]
    (root / "annotations" / "face_meta.json").write_text(json.dumps(faces))
    return root


@pytest.fixture(scope="session")
def hopper_pixels() -> np.ndarray:
    path = metadata.distribution("matplotlib").locate_file("matplotlib/mpl-data/sample_data/grace_hopper.jpg")
    return np.asarray(Image.open(str(path)).convert("RGB"))
