"""Build the ``tokbench-embedded`` manifest from installed packages: ``python -m tokbench.textface.build``.

Text scenes: eight photos resized (LANCZOS) to a 1024-px longer side, each with eight strings drawn on
plates (text box + margin) at box heights 0.0098, 0.0195, 0.029, 0.039 and 0.06 of that side (two
rotated, the smallest twice), so every resolution's three text buckets are populated; plus the six
printed lines of scikit-image's ``page.png`` (boxes from its row profile). Face scenes: the eight
faces dlib's HOG detector finds in astronaut, grace_hopper and insightface's t1 (68-point landmarks
reduced to eye centres, nose tip and mouth corners), each pasted twice at face heights among 0.04,
0.08, 0.15, 0.25 and 0.4 of a 1024-px side on 1024×1200 background photos. Like TokBench, only instances the
default judges handle on the original are kept: the exact string from ``easyocr-en-g2``, and a face
whose ``dlib-resnet-v1`` descriptor stays within 0.6 (dlib's same-person threshold) of the source's.
"""

from __future__ import annotations

import argparse
import json
import random
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageFont

from tokbench.data.decode import file_sha256, load_rgb, rgb_pixels_sha256
from tokbench.errors import ConfigError
from tokbench.textface.annotations import text_box_height
from tokbench.textface.crops import crop_text
from tokbench.textface.embedded import MANIFEST_NAME, render_layers, text_tile, tile_corners

#: 1024: at the 1024 resolution the text scenes' letterbox is a 1:1 copy, so ``identity`` scores what
#: the judge reads on the originals there (TokBench's Resize row: 97.61 T-ACC at 1024), while 512 and
#: 256 downsample them 2× and 4×. A 1600-px version put the 1024 small-bucket text at ≈ 10 px after a
#: 0.64× downsample, where EasyOCR misread 4 of the 16 strings it read on the originals.
LONG_SIDE = 1024
TEXT_LEVELS = (0.0098, 0.0195, 0.029, 0.039, 0.06)
FACE_LEVELS = (0.04, 0.08, 0.15, 0.25, 0.4)
FACE_CONTEXT = 1.5  # pasted region = face box grown by this factor
SAME_PERSON = 0.6
FONT = ("matplotlib", "matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf")
TEXT_BACKGROUNDS = (
    ("scikit-image", "skimage/data/chelsea.png"),
    ("scikit-image", "skimage/data/coffee.png"),
    ("scikit-image", "skimage/data/rocket.jpg"),
    ("scikit-learn", "sklearn/datasets/images/china.jpg"),
    ("scikit-learn", "sklearn/datasets/images/flower.jpg"),
    ("scikit-image", "skimage/data/motorcycle_left.png"),
    ("scikit-image", "skimage/data/hubble_deep_field.jpg"),
    ("scikit-image", "skimage/data/retina.jpg"),
)
FACE_SOURCES = (
    ("scikit-image", "skimage/data/astronaut.png"),
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    ("insightface", "insightface/data/images/t1.jpg"),
)
FACE_BACKGROUNDS = (
    ("scikit-learn", "sklearn/datasets/images/china.jpg"),
    ("scikit-image", "skimage/data/coffee.png"),
)
PAGE = ("scikit-image", "skimage/data/page.png")
PAGE_LINES = (
    "Region-based segmentation",
    "Let us first determine markers of the coins and the",
    "background. These markers are pixels that we can label",
    "unambiguously as either object or background. Here,",
    "the markers are found at the two extreme parts of the",
    "histogram of grey values:",
)
STRINGS = (
    "Coffee Shop", "Route 66", "Open 24/7", "Tel: 555-0199", "Kitten & Co.", "Quick brown fox",
    "Sale 50% off", "Main St.", "Exit 12B", "Gate A7", "Hello, World!", "Platform 9", "Dr. Smith",
    "Room 204", "Bakery", "Fresh Bread", "Welcome!", "No Parking", "Since 1987", "Price: $4.99",
    "Mon-Fri 9-5", "Apt. 3C", "Zone 5", "Lunar Module", "Space Center", "Flight 815", "Garden Tours",
    "Tea & Cake", "Parcel #42", "Bus Stop", "Hotel Regina", "Museum", "Book Store", "Check-in",
    "Ticket 7788", "Level 3", "Jazz Night", "Pizza Express", "Fast WiFi", "Cafe Rouge", "Order #1205",
    "Bike Lane", "Summer 2024", "Ocean View", "Pharmacy", "Car Wash", "Taxi Rank", "Post Office",
    "City Hall", "Art Gallery", "Star Map", "Deep Field", "Eye Clinic", "Red Door", "Track 2",
    "West Wing", "Cat Cafe", "Moto GP", "Harbour", "Green Tea",
)  # fmt: skip


def _file(distribution: str, path: str) -> tuple[Path, dict[str, Any]]:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ConfigError(f"cannot build {MANIFEST_NAME}: {distribution} is not installed") from None
    located = Path(str(dist.locate_file(path)))
    sha, _ = file_sha256(located)
    return located, {"distribution": distribution, "path": path, "file_sha256": sha}


def _photo_layer(
    distribution: str, path: str, box: list[int], crop: list[int] | None = None
) -> dict[str, Any]:
    _, info = _file(distribution, path)
    return {"kind": "photo", **info, "crop": crop, "box": box}


def _canvas_size(width: int, height: int) -> list[int]:
    scale = LONG_SIDE / max(width, height)
    return [round(width * scale), round(height * scale)]


def _font_size_for(text: str, font_path: Path, target_height: float) -> int:
    """The largest font size whose padded box is not taller than ``target_height`` (so a level never
    spills into the next bucket)."""

    def tile_height(size: int) -> int:
        font = ImageFont.truetype(str(font_path), size)
        _, top, _, bottom = font.getbbox(text)
        return bottom - top + 2 * round(0.08 * size)

    return max([size for size in range(6, 200) if tile_height(size) <= target_height], default=6)


def _text_scene(
    index: int, background: tuple[str, str], font_path: Path, rng: random.Random
) -> dict[str, Any]:
    path, _ = _file(*background)
    width, height = _canvas_size(*load_rgb(path).size)
    layers = [_photo_layer(*background, box=[0, 0, width, height])]
    levels = [*TEXT_LEVELS, TEXT_LEVELS[0], TEXT_LEVELS[1 + index % 2], TEXT_LEVELS[3 + index % 2]]
    angles = [0, 0, 0, 0, 0, 0, rng.choice((-9, -6, 7, 11)), rng.choice((-8, 5, 9))]
    y = 40
    annotations = []
    for n, (level, angle) in enumerate(zip(levels, angles, strict=True)):
        text = STRINGS[(index * 8 + n) % len(STRINGS)]
        size = _font_size_for(text, font_path, level * LONG_SIDE)
        dark = rng.random() < 0.5
        layer = {
            "kind": "text", "text": text, "font_size": size, "pad": round(0.08 * size),
            "margin": round(0.4 * size), "angle": angle,
            "fill": [20, 20, 30] if dark else [250, 250, 245],
            "plate": [rng.randint(215, 250), rng.randint(215, 250), rng.randint(200, 240)] if dark
            else [rng.randint(10, 60), rng.randint(20, 70), rng.randint(40, 90)],
        }  # fmt: skip
        tile = text_tile(layer, font_path)
        unrotated = text_tile({**layer, "angle": 0}, font_path)
        x = rng.randint(30, max(31, width - tile.width - 30))
        if y + tile.height > height - 20:
            break
        layer["position"] = [x, y]
        layers.append(layer)
        inset = layer["margin"]
        if angle:
            corners = tile_corners(unrotated.size, inset, angle, tile.size)
            geometry: Any = [[round(x + cx, 1), round(y + cy, 1)] for cx, cy in corners]
        else:
            geometry = [x + inset, y + inset, x + tile.width - inset, y + tile.height - inset]
        annotations.append({"rec": text, "bbox": geometry, "ratio": 0.0})
        y += tile.height + 24
    return {"id": f"text-{Path(background[1]).stem}", "canvas": [width, height], "layers": layers,
            "annotations": annotations, "faces": []}  # fmt: skip


def _page_scene() -> dict[str, Any]:
    """page.png at its own size with its six printed lines, boxes from the dark-pixel row profile."""
    path, _ = _file(*PAGE)
    from scipy.ndimage import uniform_filter

    grey = np.asarray(load_rgb(path).convert("L"), dtype=np.float64)
    height, width = grey.shape
    dark = grey < uniform_filter(grey, 25) - 20  # ink: darker than its 25-px neighbourhood
    ink = dark.sum(axis=1) > 4
    runs, start = [], None
    for row, value in enumerate([*ink.tolist(), False]):
        if value and start is None:
            start = row
        elif not value and start is not None:
            if row - start >= 6:
                runs.append((start, row))
            start = None
    annotations = []
    for text, (top, bottom) in zip(PAGE_LINES, runs, strict=False):
        columns = np.nonzero(dark[top:bottom].sum(axis=0) > 0)[0]
        box = [
            max(int(columns[0]) - 3, 0),
            max(top - 3, 0),
            min(int(columns[-1]) + 4, width),
            min(bottom + 3, height),
        ]
        annotations.append({"rec": text, "bbox": box, "ratio": 0.0})
    layers = [_photo_layer(*PAGE, box=[0, 0, width, height])]
    return {
        "id": "text-page",
        "canvas": [width, height],
        "layers": layers,
        "annotations": annotations,
        "faces": [],
    }


def _source_faces() -> list[dict[str, Any]]:
    """Faces of the source photos: box and five landmarks from dlib (HOG detector, 68-point model)."""
    import dlib

    predictor_path, _ = _file(
        "face-recognition-models", "face_recognition_models/models/shape_predictor_68_face_landmarks.dat"
    )
    predictor, detector = dlib.shape_predictor(str(predictor_path)), dlib.get_frontal_face_detector()
    faces = []
    for source in FACE_SOURCES:
        path, _ = _file(*source)
        image = np.asarray(load_rgb(path))
        rects, scores, _ = detector.run(image, 1, 0.0)
        for rect, score in sorted(zip(rects, scores, strict=True), key=lambda r: r[0].left()):
            if score < 0.3:
                continue
            shape = predictor(image, rect)
            p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
            points = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
            box = [rect.left(), rect.top(), rect.right(), rect.bottom()]
            faces.append(
                {"source": source, "size": list(image.shape[1::-1]), "box": box, "kps": points.tolist()}
            )
    return faces


def _face_scenes(faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paste each face twice at two levels, shelf-packed onto background canvases."""
    pastes = []
    for n, face in enumerate(faces):
        for level in (FACE_LEVELS[n % 5], FACE_LEVELS[(n + 2) % 5]):
            x0, y0, x1, y1 = face["box"]
            side = (y1 - y0) * FACE_CONTEXT
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            w, h = face["size"]
            crop = [max(0, round(cx - side / 2)), max(0, round(cy - side / 2)), min(w, round(cx + side / 2)),
                    min(h, round(cy + side / 2))]  # fmt: skip
            scale = level * LONG_SIDE / (y1 - y0)
            pastes.append((face, level, crop, scale))
    pastes.sort(key=lambda p: -(p[2][3] - p[2][1]) * p[3])
    scenes, shelves = [], []
    for face, level, crop, scale in pastes:
        size = (round((crop[2] - crop[0]) * scale), round((crop[3] - crop[1]) * scale))
        for scene in shelves:
            if scene["x"] + size[0] <= LONG_SIDE and scene["shelf_y"] + size[1] <= scene["height"]:
                break
            if scene["shelf_y"] + scene["shelf_h"] + 10 + size[1] <= scene["height"] and size[0] <= LONG_SIDE:
                scene["shelf_y"] += scene["shelf_h"] + 10
                scene["x"], scene["shelf_h"] = 0, 0
                break
        else:
            scene = {"x": 0, "shelf_y": 0, "shelf_h": 0, "height": 1200, "pastes": []}
            shelves.append(scene)
        box = [scene["x"], scene["shelf_y"], scene["x"] + size[0], scene["shelf_y"] + size[1]]
        scene["pastes"].append((face, level, crop, box))
        scene["x"] += size[0] + 10
        scene["shelf_h"] = max(scene["shelf_h"], size[1])
    for n, scene in enumerate(shelves):
        background = FACE_BACKGROUNDS[n % len(FACE_BACKGROUNDS)]
        layers = [_photo_layer(*background, box=[0, 0, LONG_SIDE, scene["height"]])]
        annotations = []
        for face, _level, crop, box in scene["pastes"]:
            layers.append(_photo_layer(*face["source"], box=box, crop=crop))
            sx = (box[2] - box[0]) / (crop[2] - crop[0])
            sy = (box[3] - box[1]) / (crop[3] - crop[1])
            kps = [
                [round(box[0] + (x - crop[0]) * sx, 2), round(box[1] + (y - crop[1]) * sy, 2)]
                for x, y in face["kps"]
            ]
            fx0, fy0, fx1, fy1 = face["box"]
            face_box = [
                round(box[0] + (fx0 - crop[0]) * sx, 2),
                round(box[1] + (fy0 - crop[1]) * sy, 2),
                round(box[0] + (fx1 - crop[0]) * sx, 2),
                round(box[1] + (fy1 - crop[1]) * sy, 2),
            ]
            annotations.append({"kps": kps, "box": face_box, "ratio": 0.0, "source": face})
        scenes.append({"id": f"faces-{n}", "canvas": [LONG_SIDE, scene["height"]], "layers": layers,
                       "annotations": [], "faces": annotations})  # fmt: skip
    return scenes


def build_manifest() -> dict[str, Any]:
    """Render every scene, measure ratios and keep the instances the default judges handle."""
    from tokbench.judges.face import DlibResnetFace
    from tokbench.judges.ocr import EasyOcrEnglish

    font_path, font_info = _file(*FONT)
    rng = random.Random(20250523)
    scenes = [_text_scene(i, bg, font_path, rng) for i, bg in enumerate(TEXT_BACKGROUNDS)]
    scenes += [_page_scene(), *_face_scenes(_source_faces())]
    distributions = {}
    used = {layer["distribution"] for s in scenes for layer in s["layers"] if layer["kind"] == "photo"}
    for name in sorted(used | {FONT[0]}):
        version = metadata.version(name)
        flags = "--no-deps " if name == "insightface" else ""
        distributions[name] = {"built_with": version, "install": f"pip install {flags}{name}=={version}"}
    installs = {name: d["install"] for name, d in distributions.items()}
    ocr, face_judge = EasyOcrEnglish(), DlibResnetFace()
    dropped: list[dict[str, Any]] = []
    for scene in scenes:
        image = render_layers(scene["canvas"], scene["layers"], font_path, installs)
        scene["pixels_sha256"] = rgb_pixels_sha256(image)
        pixels, long_side = np.asarray(image), max(scene["canvas"])
        kept = []
        for annotation in scene["annotations"]:
            geometry = annotation["bbox"]
            geometry = tuple(tuple(p) for p in geometry) if isinstance(geometry[0], list) else tuple(geometry)
            annotation["ratio"] = round(text_box_height(geometry) / long_side, 6)
            read = ocr.read([crop_text(pixels, geometry)])[0]
            if read == annotation["rec"]:
                kept.append(annotation)
            else:
                dropped.append({"image": scene["id"], "instance": annotation["rec"], "judge_read": read})
        scene["annotations"] = kept
        kept_faces = []
        for face in scene["faces"]:
            source = face.pop("source")
            face["ratio"] = round((face["box"][3] - face["box"][1]) / long_side, 6)
            here = face_judge.embed(pixels, [np.array(face["kps"])])
            there = face_judge.embed(
                np.asarray(load_rgb(_file(*source["source"])[0])), [np.array(source["kps"])]
            )
            distance = float((here - there).norm())
            if distance < SAME_PERSON:
                kept_faces.append(face)
            else:
                dropped.append(
                    {"image": scene["id"], "instance": "face", "descriptor_distance": round(distance, 3)}
                )
        scene["faces"] = kept_faces
    return {
        "name": "tokbench-embedded",
        "version": "1",
        "ratio": "instance height / longer image side (text: box height, mean side-edge length for a "
        "quadrilateral; face: box height); see tokbench/textface/embedded.py",
        "filter": "kept only text the easyocr-en-g2 judge reads exactly on the original and faces whose "
        f"dlib-resnet-v1 descriptor is within {SAME_PERSON} of the source photo's; dropped instances "
        "are listed",
        "builder": "python -m tokbench.textface.build (tokbench/textface/build.py)",
        "font": {"distribution": FONT[0], "path": FONT[1], "sha256": font_info["file_sha256"]},
        "pixels_sha256": "sha256 of ASCII 'H,W,3;' followed by the row-major uint8 RGB bytes",
        "distributions": distributions,
        "images": scenes,
        "dropped": dropped,
    }


def measure_dlib_template() -> list[list[float]]:
    """Where dlib's 150×150 chips (padding 0.25) put the five points, averaged over the source faces."""
    import dlib

    predictor_path, _ = _file(
        "face-recognition-models", "face_recognition_models/models/shape_predictor_68_face_landmarks.dat"
    )
    predictor = dlib.shape_predictor(str(predictor_path))
    measured = []
    for face in _source_faces():
        image = np.asarray(load_rgb(_file(*face["source"])[0]))
        rect = dlib.rectangle(*face["box"])
        chip = dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25)
        shape = predictor(chip, dlib.rectangle(0, 0, 149, 149))
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
        measured.append(np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]))
    return np.mean(measured, axis=0).round(2).tolist()


def main(argv: list[str] | None = None) -> None:
    """``python -m tokbench.textface.build [--out PATH]``: rebuild the embedded TokBench manifest."""
    parser = argparse.ArgumentParser(prog="python -m tokbench.textface.build", description=main.__doc__)
    default = Path(__file__).resolve().parent.parent / "data" / "manifests" / MANIFEST_NAME
    parser.add_argument("--out", type=Path, default=default, help="where to write the manifest")
    out = parser.parse_args(argv).out
    manifest = build_manifest()
    out.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    texts = sum(len(s["annotations"]) for s in manifest["images"])
    faces = sum(len(s["faces"]) for s in manifest["images"])
    print(f"wrote {out}: {len(manifest['images'])} images, {texts} text and {faces} face instances, "
          f"{len(manifest['dropped'])} dropped")  # fmt: skip


if __name__ == "__main__":
    main()
