"""The discrete-tokenizer capability: a codebook, token indices, and decoding from indices.

Suites that act on tokens (pFID's codebook perturbation) need more than ``encode``/``decode``: they
read and rewrite the token indices and search the codebook for the entries nearest the continuous
latents the tokenizer quantised. A tokenizer
offers that by also subclassing ``DiscreteTokenizer``. One adapter class can cover discrete and
continuous variants (TiTok VQ and VAE): ``is_discrete`` says which, and ``require_discrete`` turns
"not discrete" into one clear error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from tokbench.adapters.base import Tokenizer
from tokbench.errors import ConfigError

NOT_APPLICABLE = "not applicable: continuous tokenizer"


class DiscreteTokenizer(ABC):
    """Mixin for tokenizers whose representation is integer indices into one codebook.

    ``encode_indices`` and ``decode_indices`` must agree with ``encode``/``decode``: decoding the
    indices that ``encode_indices`` returned gives, bit for bit, what ``decode(encode(images))``
    gives. Indices are int64 N×T, images float32 N×3×H×W in [0, 1].
    """

    @property
    def is_discrete(self) -> bool:
        """True when this instance has a codebook (a class may also have continuous variants)."""
        return True

    @abstractmethod
    def codebook(self) -> torch.Tensor:
        """The K×D codebook in the space where the tokenizer searches nearest entries: already
        l2-normalised row by row when the tokenizer normalises before quantising."""

    @abstractmethod
    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Token indices (int64 N×T, values in [0, K)) of a float32 N×3×H×W batch in [0, 1]."""

    @abstractmethod
    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token indices (as ``encode_indices``) and the latents z they quantise, from one encoding.

        z is a floating N×T×D tensor: z[n, t] is the pre-quantisation encoder output of token
        [n, t], in the space of ``codebook()`` (l2-normalised when the tokenizer normalises before
        its nearest-entry search), so its nearest ``codebook()`` row is token [n, t]'s index up to
        ties and rounding. pFID draws replacement codes among the entries nearest z.
        """

    @abstractmethod
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images (float32 N×3×H×W in [0, 1]) from int64 N×T token indices."""


def require_discrete(tokenizer: object, purpose: str = "this suite") -> DiscreteTokenizer:
    """``tokenizer`` as a ``DiscreteTokenizer``, or a ``ConfigError`` saying it is not applicable."""
    if not isinstance(tokenizer, Tokenizer):
        raise ConfigError(
            f"{purpose} evaluates tokenizers; got {type(tokenizer).__name__}, "
            "which is not a tokbench.Tokenizer"
        )
    if not isinstance(tokenizer, DiscreteTokenizer) or not tokenizer.is_discrete:
        raise ConfigError(
            f"{purpose}: {NOT_APPLICABLE} ({type(tokenizer).__name__} has no codebook of token "
            "indices here: a continuous variant, or not a tokbench.adapters.discrete.DiscreteTokenizer)"
        )
    return tokenizer
