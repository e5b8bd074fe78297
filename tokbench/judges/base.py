"""The judge contract: a pretrained network that scores images, shared by every metric that needs it.

A judge is built (and its weights resolved) in ``tokbench/judges/``, then injected into metrics, so
FID and KID on the same images run Inception once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch


class Judge(torch.nn.Module, ABC):
    """A frozen network with named outputs, fed uint8 N×3×H×W RGB images."""

    #: Registry key, e.g. ``inception-v3-tf``.
    name: ClassVar[str] = ""
    #: Names of the tensors ``forward`` returns, e.g. ``("pool3",)``.
    outputs: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Judge a uint8 N×3×H×W batch; one float tensor per named output, N rows each."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Name, weights sha256 and options that change the outputs (they enter the protocol hash)."""
