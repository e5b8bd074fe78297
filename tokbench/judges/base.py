"""The judge contract: a pretrained network that scores images, shared by every metric that needs it.

A judge is built (and its weights resolved) in ``tokbench/judges/``, then injected into metrics, so
FID and KID on the same images run Inception once.

Every judge class also says, without being built, what it offers and what it needs: its outputs,
the width of its feature output, the weights files it may load (or where its weights come from when
another package downloads them) and the Python modules it imports. ``tokbench doctor`` reads this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from tokbench.judges.weights import WeightsSpec


class Judge(torch.nn.Module, ABC):
    """A frozen network with named outputs, fed uint8 N×3×H×W RGB images."""

    #: Registry key, e.g. ``inception-v3-tf``.
    name: ClassVar[str] = ""
    #: Names of the tensors ``forward`` returns, e.g. ``("pool3",)``.
    outputs: ClassVar[tuple[str, ...]] = ()
    #: Width of the primary (first) output when it is a fixed-width feature vector, else None (several
    #: maps, strings, or a width that depends on options: an instance may then set its own).
    feature_dim: ClassVar[int | None] = None
    #: True when every file of ``weights_specs()`` is needed, False when any one of them will do.
    weights_need_all: ClassVar[bool] = True
    #: Where the weights come from when no ``WeightsSpec`` describes them (a package downloads them at
    #: run time): one line naming the source and the command or path that provides them.
    weights_source: ClassVar[str] = ""
    #: Top-level modules the judge imports when it is built, beyond tokbench's own dependencies.
    python_modules: ClassVar[tuple[str, ...]] = ()
    #: The command that installs ``python_modules``.
    install_hint: ClassVar[str] = ""

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        """The weights files this judge may load, resolved by ``tokbench.judges.weights``."""
        return ()

    @abstractmethod
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Judge a uint8 N×3×H×W batch; one float tensor per named output, N rows each."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Name, weights sha256 and options that change the outputs (they enter the protocol hash)."""
