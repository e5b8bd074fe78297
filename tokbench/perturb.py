"""Codebook perturbation for pFID (latent robustness of discrete tokenizers).

Per token, with probability α, the code is replaced by one drawn uniformly from its δ nearest
codebook entries by squared L2 distance (index 0 of the neighbour list is the code itself, so the
expected rate of *changed* tokens is α·(δ−1)/δ). Only a fraction β of the images is perturbed.
pFID is then FID(decoded perturbed tokens, originals); with α = 0 or β = 0 it equals rFID exactly.

Randomness is keyed per image, never by batch position, so results do not depend on batch size,
batch order or sharding:

* **The key of an image** is a string. ``PerturbedTokenizer`` uses ``content_key``: the sha256 of
  the image quantised to uint8 (the bytes the metrics see) and its shape, because the tokenizer
  contract gives adapters no item ids. Identical images therefore get identical perturbations.
* **Which images** (β): image ``key`` is perturbed when ``u(seed, "image", key) < β``, with ``u`` a
  uniform number in [0, 1) from sha256. That is an independent Bernoulli(β) draw per image: about
  β·n images (Binomial(n, β)), exactly none for β = 0 and all for β = 1; not exactly ⌊β·n⌋, which
  would need every key of the dataset before the first batch. The official code instead perturbs
  the first ⌊B·β⌋ images of every batch, which depends on the batch size and order.
* **Which tokens** (α, δ): a CPU ``torch.Generator`` seeded from sha256(seed, "tokens", key) draws,
  for token position t, the t-th uniform (replace when < α) and the t-th integer in [0, δ) (which
  neighbour). Drawing both for every token keeps position t's draws fixed whatever α is.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, Tokenizer
from tokbench.adapters.discrete import DiscreteTokenizer, require_discrete
from tokbench.errors import ConfigError
from tokbench.tensors import quantize_uint8

#: Versions the key and draw rules below; it is part of ``describe()`` and so of the record.
SCHEME = "tokbench-pfid/1"
#: Float64 elements per distance block when searching neighbours (32 MiB).
NEIGHBOUR_BLOCK_ELEMENTS = 1 << 22


def _hash_int(seed: int, purpose: str, key: str) -> int:
    """A 64-bit integer from sha256 of the scheme, seed, purpose and key."""
    message = f"{SCHEME}|{seed}|{purpose}|{key}".encode()
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big")


def _describe(value: Any) -> str:
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def content_key(image: torch.Tensor) -> str:
    """The key of one float32 3×H×W image in [0, 1]: sha256 of its uint8 quantisation and shape."""
    pixels = quantize_uint8(image.detach().to("cpu")).contiguous()
    digest = hashlib.sha256("x".join(str(s) for s in pixels.shape).encode() + b"|")
    digest.update(pixels.numpy().tobytes())
    return digest.hexdigest()


def content_keys(images: torch.Tensor) -> list[str]:
    """``content_key`` of every image of an N×3×H×W batch."""
    return [content_key(image) for image in images]


@dataclass(frozen=True)
class CodebookPerturbation:
    """α (per-token replacement probability), β (fraction of images perturbed), δ (neighbourhood
    size, the code itself included) and the seed of every draw."""

    alpha: float
    beta: float
    delta: int
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"perturbation: {name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.delta, bool) or not isinstance(self.delta, int) or self.delta < 1:
            raise ConfigError(
                f"perturbation: delta must be an integer >= 1 (neighbours, the code itself included), "
                f"got {self.delta!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"perturbation: seed must be a non-negative integer, got {self.seed!r}")

    @property
    def expected_replacement_rate(self) -> float:
        """Expected fraction of tokens of a perturbed image whose code changes: α·(δ−1)/δ."""
        return self.alpha * (self.delta - 1) / self.delta

    def describe(self) -> dict[str, Any]:
        """Parameters and the scheme that uses them, for the record."""
        return {**asdict(self), "scheme": SCHEME}

    def neighbours(self, codebook: torch.Tensor) -> torch.Tensor:
        """int64 K×δ: for each entry its δ nearest entries by squared L2 distance, nearest first.

        Column 0 is the entry itself (even when another entry is identical); equal distances are
        ordered by index. Distances are computed in float64 as |a|² + |b|² − 2a·b, in row blocks;
        ties are exact ties of that computation. Pass the codebook in the space the tokenizer
        quantises in (``DiscreteTokenizer.codebook`` is already l2-normalised when it normalises).
        """
        if not isinstance(codebook, torch.Tensor) or codebook.dim() != 2 or codebook.shape[0] < 1:
            raise ConfigError(f"perturbation: the codebook must be a K×D tensor, got {_describe(codebook)}")
        size = codebook.shape[0]
        if self.delta > size:
            raise ConfigError(
                f"perturbation: delta={self.delta} exceeds the codebook size K={size}; use delta <= {size}"
            )
        entries = codebook.detach().to("cpu", torch.float64)
        squared = entries.pow(2).sum(dim=1)
        rows = max(1, NEIGHBOUR_BLOCK_ELEMENTS // size)
        result = torch.empty(size, self.delta, dtype=torch.int64)
        for start in range(0, size, rows):
            stop = min(start + rows, size)
            block = squared[start:stop, None] + squared[None, :] - 2.0 * (entries[start:stop] @ entries.T)
            block.clamp_(min=0.0)
            own = torch.arange(start, stop)
            block[own - start, own] = -1.0  # the entry itself always comes first
            result[start:stop] = torch.sort(block, dim=1, stable=True).indices[:, : self.delta]
        return result

    def images_to_perturb(self, keys: Sequence[str]) -> torch.Tensor:
        """Bool N: whether each image (by key) is perturbed, an independent Bernoulli(β) draw per key."""
        threshold = self.beta * 2.0**64
        return torch.tensor(
            [_hash_int(self.seed, "image", key) < threshold for key in keys], dtype=torch.bool
        )

    def token_draws(self, key: str, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For one image: bool T (replace this token) and int64 T (which neighbour, in [0, δ))."""
        generator = torch.Generator(device="cpu").manual_seed(_hash_int(self.seed, "tokens", key) >> 1)
        uniforms = torch.rand(num_tokens, generator=generator, dtype=torch.float64)
        choices = torch.randint(0, self.delta, (num_tokens,), generator=generator)
        return uniforms < self.alpha, choices

    def apply(self, indices: torch.Tensor, keys: Sequence[str], neighbours: torch.Tensor) -> torch.Tensor:
        """Perturbed copy of int64 N×T token ``indices`` of the images ``keys``, given ``neighbours``
        (``self.neighbours(codebook)``). Images not selected, and α = 0, leave indices unchanged."""
        if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64 or indices.dim() != 2:
            shape = _describe(indices)
            raise ConfigError(f"perturbation: indices must be an int64 N×T tensor, got {shape}")
        if len(keys) != indices.shape[0]:
            raise ConfigError(f"perturbation: {len(keys)} keys for {indices.shape[0]} images")
        if (
            not isinstance(neighbours, torch.Tensor)
            or neighbours.dim() != 2
            or neighbours.shape[1] != self.delta
        ):
            raise ConfigError(
                f"perturbation: neighbours must be int64 K×{self.delta}, got {_describe(neighbours)}"
            )
        result = indices.detach().to("cpu").clone()
        if result.numel() and not 0 <= int(result.min()) <= int(result.max()) < neighbours.shape[0]:
            raise ConfigError(f"perturbation: token indices must lie in [0, {neighbours.shape[0]})")
        if self.alpha == 0.0:
            return result.to(indices.device)
        selected = self.images_to_perturb(keys)
        for row, key in enumerate(keys):
            if not selected[row]:
                continue
            replace, choices = self.token_draws(key, result.shape[1])
            swapped = neighbours[result[row], choices]
            result[row] = torch.where(replace, swapped, result[row])
        return result.to(indices.device)


class PerturbedTokenizer(Tokenizer):
    """A discrete tokenizer whose ``encode`` perturbs the token indices (pFID).

    Images are keyed by content (``content_key``), so no item ids are needed and the perturbation of
    an image does not depend on the batch it arrives in. ``decode`` is the wrapped tokenizer's
    decode from indices. Building it on a continuous tokenizer raises ``ConfigError``
    ("not applicable: continuous tokenizer").
    """

    version: ClassVar[str] = "1"

    def __init__(self, base: Tokenizer, perturbation: CodebookPerturbation) -> None:
        self.base: DiscreteTokenizer = require_discrete(base, "pfid")
        self.perturbation = perturbation
        self.neighbours = perturbation.neighbours(self.base.codebook())
        self.bits_per_token = math.log2(self.neighbours.shape[0])

    @property
    def weights_sha256(self) -> str | None:
        return self.base.weights_sha256  # type: ignore[attr-defined]

    def to(self, device: torch.device) -> PerturbedTokenizer:
        self.base.to(device)  # type: ignore[attr-defined]
        return self

    def describe(self) -> dict[str, Any]:
        """The perturbation and how images are keyed, for the protocol."""
        return {**self.perturbation.describe(), "image_key": "sha256-uint8-content"}

    def encode(self, images: torch.Tensor) -> Encoded:
        indices = self.base.encode_indices(images)
        perturbed = self.perturbation.apply(indices, content_keys(images), self.neighbours)
        count = perturbed.shape[1]
        bits = torch.full((perturbed.shape[0],), count * self.bits_per_token, dtype=torch.float64)
        return Encoded(payload=perturbed, bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return self.base.decode_indices(encoded.payload)
