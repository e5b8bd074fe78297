"""Codebook perturbation for pFID (latent robustness of discrete tokenizers).

The rule of the official ``add_perturbation`` (lxa9867/ImageFolder, "Robust Latent Matters"): per
token, with probability α, the code is replaced by one drawn uniformly from the δ codebook entries
nearest the token's **continuous encoder output z** (squared L2; z and the codebook l2-normalised
when the tokenizer normalises). The first of those δ candidates is the token's own code, so the
expected rate of *changed* tokens is α·(δ−1)/δ. pFID is then FID(decoded perturbed tokens,
originals); with α = 0 or β = 0 it equals rFID exactly.

* **Candidates** (``CodebookPerturbation.candidates``): the token's own code, then the δ−1 other
  entries nearest z, nearest first. Distances are |z|² + |e|² − 2z·e in float64 (the official code
  uses float32; ranking agrees on the reference data); equal distances are ordered by index (the
  official order of ties is torch ``topk``'s). The official first candidate is the argmin, which is
  the token's own code whenever the tokenizer's own search agrees with it.
* **Which images** (β), by ``rule``:

  - ``per-image`` (default): image ``key`` is perturbed when ``u(seed, "image", key) < β``, ``u``
    a uniform number in [0, 1) from sha256: an independent Bernoulli(β) draw per image, so about
    β·n images (Binomial(n, β)), none for β = 0 and all for β = 1, whatever the batching;
  - ``per-batch-official``: the first ⌊B·β⌋ images of every batch of B images that ``encode``
    receives (``int(B * beta)`` in float64, as the official code), which depends on the batch size,
    the order and the sharding.
* **Which tokens** (α, δ): a CPU ``torch.Generator`` seeded from sha256(seed, "tokens", key) draws,
  for token position t, the t-th uniform (replace when < α) and the t-th integer in [0, δ) (which
  candidate). Both are drawn for every token, so position t's draws are fixed whatever α is.

**The key of an image** is a string. ``PerturbedTokenizer`` uses ``content_key``: the sha256 of the
image quantised to uint8 (the bytes the metrics see) and its shape, because the tokenizer contract
gives adapters no item ids. Identical images therefore get identical perturbations.
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

#: Versions how images are keyed and how the random numbers are drawn from (seed, key); part of
#: ``describe()`` and so of the record.
SCHEME = "tokbench-pfid/1"
#: The candidate set, recorded in ``describe()``: the δ entries nearest the continuous latent z.
CANDIDATES = "nearest-to-latent"
#: Values of ``rule`` (which images of a batch are perturbed); the first is the default.
RULES = ("per-image", "per-batch-official")
#: Float64 elements per distance block when searching candidates (32 MiB).
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
    """α (per-token replacement probability), β (fraction of images perturbed), δ (candidates, the
    code itself included), the seed of every draw and the ``rule`` choosing the images (``RULES``)."""

    alpha: float
    beta: float
    delta: int
    seed: int = 0
    rule: str = RULES[0]

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"perturbation: {name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.delta, bool) or not isinstance(self.delta, int) or self.delta < 1:
            raise ConfigError(
                f"perturbation: delta must be an integer >= 1 (candidates, the code itself included), "
                f"got {self.delta!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"perturbation: seed must be a non-negative integer, got {self.seed!r}")
        if self.rule not in RULES:
            raise ConfigError(
                f"perturbation: rule must be one of {', '.join(RULES)} (which images are perturbed), "
                f"got {self.rule!r}"
            )

    @property
    def expected_replacement_rate(self) -> float:
        """Expected fraction of tokens of a perturbed image whose code changes: α·(δ−1)/δ."""
        return self.alpha * (self.delta - 1) / self.delta

    def describe(self) -> dict[str, Any]:
        """Parameters, the candidate set and the scheme that uses them, for the record."""
        return {**asdict(self), "candidates": CANDIDATES, "scheme": SCHEME}

    def prepare_codebook(self, codebook: torch.Tensor) -> torch.Tensor:
        """The K×D ``codebook`` as float64 on the CPU, after checking that K >= δ."""
        if not isinstance(codebook, torch.Tensor) or codebook.dim() != 2 or codebook.shape[0] < 1:
            raise ConfigError(f"perturbation: the codebook must be a K×D tensor, got {_describe(codebook)}")
        size = codebook.shape[0]
        if self.delta > size:
            raise ConfigError(
                f"perturbation: delta={self.delta} exceeds the codebook size K={size}; use delta <= {size}"
            )
        return codebook.detach().to("cpu", torch.float64)

    def candidates(self, latents: torch.Tensor, codes: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """int64 M×δ: for each of M latents (M×D) its own code (``codes``, M), then the δ−1 other
        entries of ``codebook`` (K×D, in the latents' space) nearest the latent, nearest first.

        Squared distances |z|² + |e|² − 2z·e in float64, in row blocks; equal distances are ordered
        by index.
        """
        entries = self.prepare_codebook(codebook)
        size, width = entries.shape
        if not isinstance(latents, torch.Tensor) or latents.dim() != 2 or latents.shape[1] != width:
            raise ConfigError(f"perturbation: latents must be M×{width}, got {_describe(latents)}")
        if (
            not isinstance(codes, torch.Tensor)
            or codes.dtype != torch.int64
            or tuple(codes.shape) != (latents.shape[0],)
        ):
            raise ConfigError(
                f"perturbation: codes must be int64 of shape ({latents.shape[0]},), got {_describe(codes)}"
            )
        codes = codes.to("cpu")
        if codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < size:
            raise ConfigError(f"perturbation: codes must lie in [0, {size})")
        vectors = latents.detach().to("cpu", torch.float64)
        squared = entries.pow(2).sum(dim=1)
        rows = max(1, NEIGHBOUR_BLOCK_ELEMENTS // size)
        result = torch.empty(vectors.shape[0], self.delta, dtype=torch.int64)
        for start in range(0, vectors.shape[0], rows):
            block = vectors[start : start + rows]
            distances = block.pow(2).sum(dim=1, keepdim=True) + squared - 2.0 * (block @ entries.T)
            own = codes[start : start + rows]
            distances[torch.arange(own.shape[0]), own] = -math.inf  # the code itself comes first
            order = torch.sort(distances, dim=1, stable=True).indices
            result[start : start + rows] = order[:, : self.delta]
        return result

    def images_to_perturb(self, keys: Sequence[str]) -> torch.Tensor:
        """Bool N: whether each image of a batch (by key) is perturbed, by ``rule``."""
        if self.rule == "per-batch-official":
            return torch.arange(len(keys)) < int(len(keys) * self.beta)
        threshold = self.beta * 2.0**64
        return torch.tensor(
            [_hash_int(self.seed, "image", key) < threshold for key in keys], dtype=torch.bool
        )

    def token_draws(self, key: str, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For one image: bool T (replace this token) and int64 T (which candidate, in [0, δ))."""
        generator = torch.Generator(device="cpu").manual_seed(_hash_int(self.seed, "tokens", key) >> 1)
        uniforms = torch.rand(num_tokens, generator=generator, dtype=torch.float64)
        choices = torch.randint(0, self.delta, (num_tokens,), generator=generator)
        return uniforms < self.alpha, choices

    def apply(
        self, indices: torch.Tensor, latents: torch.Tensor, keys: Sequence[str], codebook: torch.Tensor
    ) -> torch.Tensor:
        """Perturbed copy of int64 N×T token ``indices`` of the images ``keys`` (one batch), given
        their N×T×D ``latents`` and the K×D ``codebook``. Unselected images, tokens not replaced and
        replacements by the code itself (candidate 0), and α = 0, keep their indices."""
        if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64 or indices.dim() != 2:
            shape = _describe(indices)
            raise ConfigError(f"perturbation: indices must be an int64 N×T tensor, got {shape}")
        if len(keys) != indices.shape[0]:
            raise ConfigError(f"perturbation: {len(keys)} keys for {indices.shape[0]} images")
        if (
            not isinstance(latents, torch.Tensor)
            or not latents.is_floating_point()
            or latents.dim() != 3
            or latents.shape[:2] != indices.shape
        ):
            raise ConfigError(
                f"perturbation: latents must be a floating N×T×D tensor with N×T = {tuple(indices.shape)}, "
                f"got {_describe(latents)}"
            )
        result = indices.detach().to("cpu").clone()
        if self.alpha == 0.0:
            return result.to(indices.device)
        rows = self.images_to_perturb(keys).nonzero().flatten().tolist()
        if not rows:
            return result.to(indices.device)
        draws = [self.token_draws(keys[row], result.shape[1]) for row in rows]
        replace = torch.stack([r for r, _ in draws])
        choices = torch.stack([c for _, c in draws])
        moving = replace & (choices > 0)  # candidate 0 is the code itself
        chosen = result[rows][moving]
        found = self.candidates(latents[rows].to("cpu")[moving], chosen, codebook)
        picked = result[rows]
        picked[moving] = found.gather(1, choices[moving][:, None]).squeeze(1)
        result[rows] = picked
        return result.to(indices.device)


class PerturbedTokenizer(Tokenizer):
    """A discrete tokenizer whose ``encode`` perturbs the token indices (pFID).

    Images are keyed by content (``content_key``), so no item ids are needed; with the default
    ``per-image`` rule the perturbation of an image does not depend on the batch it arrives in.
    ``decode`` is the wrapped tokenizer's decode from indices. Building it on a continuous tokenizer
    raises ``ConfigError`` ("not applicable: continuous tokenizer").
    """

    version: ClassVar[str] = "2"

    def __init__(self, base: Tokenizer, perturbation: CodebookPerturbation) -> None:
        self.base: DiscreteTokenizer = require_discrete(base, "pfid")
        self.perturbation = perturbation
        self.codebook = perturbation.prepare_codebook(self.base.codebook())
        self.bits_per_token = math.log2(self.codebook.shape[0])

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
        indices, latents = self.base.encode_latents(images)
        perturbed = self.perturbation.apply(indices, latents, content_keys(images), self.codebook)
        count = perturbed.shape[1]
        bits = torch.full((perturbed.shape[0],), count * self.bits_per_token, dtype=torch.float64)
        return Encoded(payload=perturbed, bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return self.base.decode_indices(encoded.payload)
