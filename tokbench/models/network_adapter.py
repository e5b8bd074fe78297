"""What the tokenizer adapters over one torch network (``self.model``) share: the weights' sha256,
``to()``, the device, the random-init guard and the one-line description of a wrong input.

Used by TiTok, LlamaGen VQ, VAR VQVAE, Open-MAGVIT2 and the transformers VQ-VAEs; each keeps its own
input checks, payload layout and ``_setup`` extras (VAE sampling, hub commit, EMA copy).
"""

from __future__ import annotations

import logging
from typing import Any, Self

import torch

from tokbench.errors import ConfigError

logger = logging.getLogger(__name__)

#: The seed of ``random_init`` weights (tests only); recorded in the adapter's ``source``.
RANDOM_INIT_SEED = 0
RANDOM_INIT_SOURCE = f"random_init(seed={RANDOM_INIT_SEED})"


def check_random_init(family: str, label: str, weights: Any, revision: Any) -> None:
    """Refuse ``weights=``/``revision=`` beside ``random_init=True`` and warn that the weights are random."""
    if weights is not None or revision is not None:
        raise ConfigError(f"{family}: random_init=True builds random weights; drop weights= and revision=")
    logger.warning("%s: random weights (seed %d), for tests only", label, RANDOM_INIT_SEED)


def describe(value: Any) -> str:
    """A tensor's dtype and shape, or another value's type name, for error messages."""
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


class NetworkAdapter:
    """Mixin for a tokenizer adapter whose network is ``self.model`` and whose weights file's sha256
    is ``self._sha256`` (None for random or in-memory weights)."""

    model: torch.nn.Module
    _sha256: str | None

    def _adopt(self, model: torch.nn.Module, name: str, sha256: str | None, source: str) -> None:
        """Hold ``model`` in eval mode without gradients, its config, name, source and sha256."""
        self.model = model.eval().requires_grad_(False)
        self.config = model.config
        self.name = name
        self.source = source
        self._sha256 = sha256

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the loaded checkpoint file; None for random or in-memory weights."""
        return self._sha256

    def to(self, device: torch.device | str) -> Self:
        """Move the network to ``device``; returns the adapter."""
        self.model.to(device)
        return self

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device
