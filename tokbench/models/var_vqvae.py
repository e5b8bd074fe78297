"""VAR's multi-scale residual VQVAE, the image tokenizer of "Visual Autoregressive Modeling: Scalable
Image Generation via Next-Scale Prediction" (Tian et al., NeurIPS 2024; code ``FoundationVision/VAR``):
the released checkpoint ``vae_ch160v4096z32.pth`` at its two scale schedules, weight resolution and the
``VarVqvae`` tokenizer adapter.

The network is our own implementation (``tokbench.models.var_vqvae_modules``) whose state dict keys
equal the official checkpoint's. Weights come from an explicit file, a folder or hub cache, or the
Hugging Face hub (``huggingface_hub``, imported lazily); random weights only on request.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.checkpoints import HubFile, check_sha256, load_checkpoint, resolve_hub_file
from tokbench.models.network_adapter import (
    RANDOM_INIT_SEED,
    RANDOM_INIT_SOURCE,
    NetworkAdapter,
    check_random_init,
    describe,
)
from tokbench.models.var_vqvae_modules import VarVqvaeConfig, VarVqvaeModel

PAPER = (
    "Tian, Jiang, Yuan, Peng, Wang. Visual Autoregressive Modeling: Scalable Image Generation via "
    "Next-Scale Prediction. NeurIPS 2024, arXiv:2404.02905"
)
LICENCE = "MIT (FoundationVision/VAR code and the FoundationVision/var hub repository)"
HUB_ID = "FoundationVision/var"
CHECKPOINT_FILENAME = "vae_ch160v4096z32.pth"
#: sha256 of ``vae_ch160v4096z32.pth`` (436,075,834 bytes): the hub's git-lfs oid as quoted by two
#: independent public projects that load this file; not hashed here (no download). Every loaded
#: file's sha256 is computed and checked against it.
CHECKPOINT_SHA256 = "7c3ec27ae28a3f87055e83211ea8cc8558bd1985d7b51742d074fb4c2fcf186c"


@dataclass(frozen=True)
class VarVqvaeVariant:
    """The released checkpoint at one image resolution: its scale schedule and where its weights are."""

    resolution: int
    config: VarVqvaeConfig
    #: The VAR transformers that decode through it, with their generation FID (official README).
    used_by: str
    num_parameters: int = 108_948_355
    checkpoint_filename: str = CHECKPOINT_FILENAME
    hub_id: str = HUB_ID
    #: No hub commit is pinned (only its short form 2fc3ff1, "[init up]", 2024-04-04, is known; the
    #: file has not changed since); the sha256 pins the file's content instead.
    revision: str | None = None
    sha256: str | None = CHECKPOINT_SHA256
    licence: str = LICENCE
    paper: str = PAPER
    source: str = (
        "FoundationVision/VAR@78b9539 models/__init__.py build_vae_var: VQVAE(vocab_size=4096, "
        "z_channels=32, ch=160, share_quant_resi=4, v_patch_nums=<schedule>, test_mode=True)"
    )

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hub_id}/resolve/main/{self.checkpoint_filename}"


#: The one released checkpoint, at the two schedules the official code uses it with.
VARIANTS: dict[int, VarVqvaeVariant] = {
    256: VarVqvaeVariant(
        256,
        VarVqvaeConfig(patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16)),
        "VAR-d16 (FID 3.55), d20 (2.95), d24 (2.33), d30 (1.97), d30-re (1.80)",
    ),
    512: VarVqvaeVariant(
        512, VarVqvaeConfig(patch_nums=(1, 2, 3, 4, 6, 9, 13, 18, 24, 32)), "VAR-d36 (FID 2.63 at 512 px)"
    ),
}


def how_to_supply(variant: VarVqvaeVariant) -> str:
    """The ways to give the VAR VQVAE weights, for error messages."""
    return (
        f"Supply the weights as a file with --weights PATH (model spec var-vqvae:resolution="
        f"{variant.resolution},weights=PATH; the official {variant.checkpoint_filename} from "
        f"{variant.url}, or a safetensors copy of its state dict), or as a downloaded hub snapshot of "
        f"{variant.hub_id}: set HF_HOME (or HF_HUB_CACHE) to the cache that holds it, or pass "
        "weights=<the folder or hub cache directory>."
    )


def resolve_checkpoint(
    variant: VarVqvaeVariant, weights: str | os.PathLike | None = None, revision: str | None = None
) -> tuple[Path, str]:
    """The checkpoint file to load and where it was found (``file``, ``directory``, ``hub-cache`` or
    ``hub``)."""
    checkpoint = HubFile(
        f"var-vqvae {variant.resolution}",
        variant.hub_id,
        variant.checkpoint_filename,
        how_to_supply(variant),
        variant.revision,
    )
    found = resolve_hub_file(checkpoint, weights, revision)
    return found.path, found.kind


class VarVqvae(NetworkAdapter, Tokenizer, DiscreteTokenizer):
    """VAR's VQVAE as a tokbench tokenizer: images in [0, 1] → token maps of every scale → images.

    ``resolution`` picks the schedule the released checkpoint is used with (256: 10 scales up to 16×16,
    680 tokens; 512: up to 32×32, 2240 tokens); images must be exactly that size. ``weights`` is a local
    checkpoint file or a folder / hub cache; without it the file comes from the Hugging Face hub
    (``revision`` pins a commit). ``random_init`` builds the real architecture with seeded random
    weights, for tests only.

    Tokens are the per-scale maps (row-major) concatenated from the coarsest scale, VAR's sequence;
    ``bits`` = tokens × log2(4096). Pixels go in as 2x − 1 and come out clamped to [−1, 1], then
    (x + 1)/2, as the official code. ``encode_latents`` gives, per token, the residual map its scale
    quantised (see its docstring).
    """

    version: ClassVar[str] = "1"
    config: VarVqvaeConfig

    def __init__(
        self,
        resolution: int = 256,
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
    ) -> None:
        if resolution not in VARIANTS:
            raise ConfigError(
                f"var-vqvae: resolution must be one of {', '.join(map(str, VARIANTS))}, got {resolution!r}"
            )
        spec = VARIANTS[resolution]
        name = f"vae_ch160v4096z32@{resolution}"
        if random_init:
            check_random_init("var-vqvae", f"var-vqvae {name}", weights, revision)
            model = VarVqvaeModel.random_init(spec.config, seed=RANDOM_INIT_SEED)
            self._setup(model, name, None, RANDOM_INIT_SOURCE)
            return
        path, source = resolve_checkpoint(spec, weights, revision)
        sha256 = check_sha256(f"var-vqvae {name}", path, spec.sha256, how_to_supply(spec))
        try:
            model = VarVqvaeModel.from_state_dict(spec.config, load_checkpoint(path, sha256))
        except WeightsError as exc:
            raise WeightsError(f"var-vqvae {name}: {path}: {exc}. " + how_to_supply(spec)) from None
        self._setup(model, name, sha256, f"{source}:{path}")

    @classmethod
    def from_model(
        cls, model: VarVqvaeModel, name: str = "custom", weights_sha256: str | None = None
    ) -> VarVqvae:
        """Wrap a ``VarVqvaeModel`` built elsewhere (a custom config, a golden test model)."""
        adapter = cls.__new__(cls)
        adapter._setup(model, name, weights_sha256, "model")
        return adapter

    def _setup(self, model: VarVqvaeModel, name: str, sha256: str | None, source: str) -> None:
        self._adopt(model, name, sha256, source)

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """The released checkpoint at 256 px (VAR-d16…d30) and at 512 px (VAR-d36)."""
        return tuple(
            ModelCard(
                family="VAR VQVAE",
                spec=f"var-vqvae:resolution={v.resolution}",
                kind="discrete",
                tokens=v.config.num_tokens,
                codebook=v.config.vocab_size,
                downsampling=v.config.downsampling,
                resolution=v.resolution,
                hub_id=v.hub_id,
                verification="golden: reference/var_vqvae",
                note=f"multi-scale residual VQ, {len(v.config.patch_nums)} scales; decodes {v.used_by}",
            )
            for v in VARIANTS.values()
        )

    @property
    def num_tokens(self) -> int:
        """Tokens per image, all scales."""
        return self.config.num_tokens

    def _check_images(self, images: Any) -> None:
        size = self.config.image_size
        if not (
            isinstance(images, torch.Tensor)
            and images.dtype == torch.float32
            and images.dim() == 4
            and tuple(images.shape[1:]) == (3, size, size)
        ):
            raise ConfigError(
                f"var-vqvae {self.name}: encode expects float32 images [N, 3, {size}, {size}] in [0, 1] "
                f"(its scale schedule ends at {self.config.patch_nums[-1]}×{self.config.patch_nums[-1]}), "
                f"got {describe(images)}"
            )

    def _quantize(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        self._check_images(images)
        with torch.inference_mode():
            latent = self.model.encode_latent(images.to(self._device) * 2 - 1)
            tokens, residuals, _ = self.model.quantize.quantize(latent)
        return tokens, residuals

    def encode(self, images: torch.Tensor) -> Encoded:
        tokens = torch.cat(self._quantize(images)[0], dim=1).clone()
        bits = torch.full(
            (tokens.shape[0],), self.num_tokens * math.log2(self.config.vocab_size), dtype=torch.float64
        )
        return Encoded(payload=tokens, bits=bits, num_tokens=self.num_tokens)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        payload, n, vocab = encoded.payload, self.num_tokens, self.config.vocab_size
        if not (
            isinstance(payload, torch.Tensor)
            and payload.dtype == torch.int64
            and payload.dim() == 2
            and payload.shape[1] == n
            and (payload.numel() == 0 or 0 <= int(payload.min()) <= int(payload.max()) < vocab)
        ):
            raise ConfigError(
                f"var-vqvae {self.name}: decode expects int64 token ids [N, {n}] in [0, {vocab}) (every "
                f"scale of {self.config.patch_nums}, coarsest first), got {describe(payload)}"
            )
        per_scale = payload.to(self._device).split([pn * pn for pn in self.config.patch_nums], dim=1)
        with torch.inference_mode():
            pixels = self.model.decode_tokens(per_scale).clamp_(-1.0, 1.0).add_(1.0).mul_(0.5)
        return pixels.clone()  # outside inference mode: an ordinary tensor

    def codebook(self) -> torch.Tensor:
        """The 4096×32 codebook (l2-normalised rows for a cosine-search config; the release is L2)."""
        return self.model.quantize.codebook().detach().clone()

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Token ids int64 [N, Σ pn²]: the payload of ``encode``."""
        return self.encode(images).payload

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids int64 [N, Σ pn²] and, for each token, the vector its nearest-entry search compared:
        float32 [N, Σ pn², 32].

        Residual multi-scale VQ has no single encoder output per token. What is well defined is the map
        each scale quantises: the residual f − f̂ (after the coarser scales) area-pooled to that scale's
        side, the full residual at the last scale (the official ``residual_pooled_s{k}``). Its nearest
        ``codebook()`` row is the token. pFID draws replacement codes among the entries nearest it; the
        finer scales' tokens are kept as encoded (not re-quantised after a coarse-scale replacement).
        """
        tokens, residuals = self._quantize(images)
        vectors = [self.model.quantize.search_vectors(r.permute(0, 2, 3, 1).flatten(1, 2)) for r in residuals]
        return torch.cat(tokens, dim=1).clone(), torch.cat(vectors, dim=1).clone()

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from token ids, exactly as ``decode`` would give them."""
        return self.decode(Encoded(payload=indices))
