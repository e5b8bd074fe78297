"""``tokbench doctor``: what is installed, and what resolves offline."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from tokbench.errors import TokbenchError
from tokbench.judges.weights import locate_weights


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str


def run_checks(store_root: Path | None = None) -> list[Check]:
    """Check the runtime, the devices, the embedded dataset, the suites and the store."""
    from tokbench.provenance import tokbench_version

    return [
        Check("tokbench", True, tokbench_version()),
        Check("torch", True, f"{torch.__version__}; cuda available: {torch.cuda.is_available()}"),
        _embedded_check(),
        _suites_check(),
        *_judge_checks(),
        _store_check(store_root),
    ]


def _judge_checks() -> list[Check]:
    """Each judge's weights: where they resolve offline, or how to get them."""
    from tokbench.judges import inception, lpips
    from tokbench.judges.face import DLIB_RESNET
    from tokbench.judges.ocr import EASYOCR_ENGLISH_G2

    judges = {  # name: (weights files, whether every file is needed or any one will do)
        "judge inception-v3-tf": (inception.WEIGHTS_SPECS, False),
        "judge lpips (alex, vgg16)": (lpips.weights_specs(), True),
        "judge easyocr-en-g2": ((EASYOCR_ENGLISH_G2,), True),
        "judge dlib-resnet-v1": ((DLIB_RESNET,), True),
    }
    checks = []
    for name, (specs, needs_all) in judges.items():
        found = {spec.name: locate_weights(spec) for spec in specs}
        resolved = [f"{n} ({where[0]}: {where[1]})" for n, where in found.items() if where]
        missing = [spec for spec in specs if found[spec.name] is None]
        ok = not missing if needs_all else bool(resolved)
        if ok:
            checks.append(Check(name, True, "; ".join(resolved)))
        else:
            hints = sorted({s.install_hint or f"put {s.filename} in $TOKBENCH_WEIGHTS_DIR" for s in missing})
            checks.append(Check(name, False, "missing weights; " + " and ".join(hints)))
    return checks


def _embedded_check() -> Check:
    from tokbench.data.embedded import EmbeddedDataset

    try:
        dataset = EmbeddedDataset()
        for item in dataset.items():
            item.load()
    except TokbenchError as error:
        return Check("embedded dataset", False, str(error))
    return Check("embedded dataset", True, f"{len(dataset.items())} images, sources verified by sha256")


def _suites_check() -> Check:
    from tokbench.suites import list_suites, load_suite

    names = list_suites()
    try:
        for name in names:
            load_suite(name)
    except TokbenchError as error:
        return Check("suites", False, str(error))
    return Check("suites", True, ", ".join(names))


def _store_check(store_root: Path | None) -> Check:
    from tokbench.store import default_store_root

    root = store_root or default_store_root()
    probe_dir = root if root.exists() else root.parent
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir):
            pass
    except OSError as error:
        return Check("store", False, f"{root} is not writable: {error}")
    exists = "exists" if root.exists() else f"will be created in {os.fspath(probe_dir)}"
    return Check("store", True, f"{root} ({exists})")
