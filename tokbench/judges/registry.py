"""The judge registry: lazily imported built-in judges, by kebab-case key."""

from __future__ import annotations

from tokbench.judges.base import Judge
from tokbench.registry import Registry

JUDGES: Registry[type[Judge]] = Registry("judge", base=Judge, entry_point_group="tokbench.judges")
for _key, _target in {
    "inception-v3-tf": "tokbench.judges.inception:InceptionV3TF",
    "lpips-alex": "tokbench.judges.lpips:LpipsAlex",
    "lpips-vgg16": "tokbench.judges.lpips:LpipsVgg16",
    "easyocr-en-g2": "tokbench.judges.ocr:EasyOcrEnglish",
    "doctr-parseq": "tokbench.judges.ocr:DoctrParseq",
    "dlib-resnet-v1": "tokbench.judges.face:DlibResnetFace",
    "insightface-glintr100": "tokbench.judges.face:InsightfaceGlintr100",
    "clip": "tokbench.judges.clip:ClipJudge",
    "i3d-kinetics-400": "tokbench.judges.i3d:I3DKinetics400",
}.items():
    JUDGES.register(_key, _target)
