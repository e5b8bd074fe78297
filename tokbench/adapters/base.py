"""The three adapter contracts: tokenizers, generators and pruners.

Every image tensor that crosses an adapter boundary is float32, N×3×H×W, RGB, in [0, 1]; adapters
that need another range convert inside themselves. The runner owns batching, ordering and seeds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch


class Adapter:
    """Common attributes of every adapter: a kind, a version and optional weights provenance."""

    kind: ClassVar[str] = ""
    #: Bump when the adapter's behaviour changes; it goes into the record.
    version: ClassVar[str] = "1"
    #: Constructor arguments that only say where files are (e.g. ``weights``): they are recorded but
    #: left out of the model's identity, which the weights sha256 carries instead.
    location_arguments: ClassVar[tuple[str, ...]] = ("weights",)

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the loaded weights, or None for adapters without weights."""
        return None

    def to(self, device: torch.device) -> Adapter:
        """Move any networks to ``device``; weightless adapters ignore it."""
        return self


@dataclass(frozen=True)
class Encoded:
    """What ``Tokenizer.encode`` returns for a batch.

    ``payload`` is whatever ``decode`` needs (token ids, latents, compressed byte strings).
    ``bits`` holds each image's size in bits: the real encoded size for codecs, or
    tokens × log2(codebook size) for discrete tokenizers; None when no size is defined.
    """

    payload: Any
    bits: torch.Tensor | None = None
    num_tokens: int | None = None


class Tokenizer(Adapter, ABC):
    """Turns images into a compact representation and back (VQ, 1D tokenizers, VAEs, codecs)."""

    kind: ClassVar[str] = "tokenizer"

    @abstractmethod
    def encode(self, images: torch.Tensor) -> Encoded:
        """Encode a float32 N×3×H×W batch in [0, 1]."""

    @abstractmethod
    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Decode to a float32 N×3×H×W batch in [0, 1], one image per input, in order."""


class Generator(Adapter, ABC):
    """Samples images from class labels or prompts (AR, masked, diffusion)."""

    kind: ClassVar[str] = "generator"

    @abstractmethod
    def sample(self, conditions: list[Any], seed: int) -> torch.Tensor:
        """Return one float32 3×H×W image in [0, 1] per condition, stacked as N×3×H×W."""


class Pruner(Adapter, ABC):
    """Reduces the visual tokens a vision-language model sees."""

    kind: ClassVar[str] = "pruner"

    @abstractmethod
    def select(self, visual_tokens: torch.Tensor, context: dict[str, Any], budget: int) -> torch.Tensor:
        """Return the indices (N×budget, int64) of the visual tokens to keep."""
