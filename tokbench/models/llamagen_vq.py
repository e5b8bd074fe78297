"""The LlamaGen VQ image tokenizer of "Autoregressive Model Beats Diffusion: Llama for Scalable Image
Generation" (Sun et al., 2024; code ``FoundationVision/LlamaGen``): the three released checkpoints,
weight resolution and the ``LlamaGenVQ`` discrete-tokenizer adapter.

The network is our own implementation (``tokbench.models.llamagen_vq_modules``), checked against the
official code's outputs on tiny models (``shared/reference/llamagen_vq``). Weights come from an
explicit file, a folder or hub cache, or the Hugging Face hub (``huggingface_hub``, imported lazily);
random weights only on request.

Images enter as float32 [0, 1] and are mapped to [-1, 1] (``2x − 1``, the official ``ToTensor`` +
``Normalize(0.5, 0.5)``); the raw decoder output x is returned as ``clamp((x + 1) / 2, 0, 1)``, whose
rounding to uint8 (the recon protocol) is the official ``clamp(127.5x + 128, 0, 255)`` truncation up
to exact ties. The published numbers use ADM's centre crop (preprocess ``adm-center-crop``).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.checkpoints import HubFile, check_sha256, read_state_dict, resolve_hub_file
from tokbench.models.llamagen_vq_modules import (  # noqa: F401  (re-exported)
    LlamaGenVQConfig,
    LlamaGenVQModel,
    config_from_official,
)
from tokbench.models.network_adapter import (
    RANDOM_INIT_SEED,
    RANDOM_INIT_SOURCE,
    NetworkAdapter,
    check_random_init,
    describe,
)

PAPER = (
    "Sun, Jiang, Chen, Zhang, Peng, Luo, Yuan. Autoregressive Model Beats Diffusion: Llama for Scalable "
    "Image Generation. arXiv:2406.06525, 2024"
)
LICENCE = (
    "MIT (FoundationVision/LlamaGen: 'the majority of this project'); its README states no separate "
    "licence for the checkpoints"
)
#: Where the architecture and the checkpoint layout were read from.
SOURCE = "FoundationVision/LlamaGen@ce98ec4 tokenizer/tokenizer_image/vq_model.py (VQ_16 / VQ_8)"
#: FoundationVision/LlamaGen's hub commit at which vq_ds16_c2i.pt is linked (hustvl/ControlAR issue
#: 10, 2025, confirmed by its maintainers); the ds8 file was uploaded with it in June 2024.
LLAMAGEN_HUB_REVISION = "a86ad643a5bde5b5657a8aed7d5c9e2fc6f8c60f"
#: Checkpoint containers: the reconstruction script reads the first of these keys that is present.
CONTAINER_KEYS = ("ema", "model", "state_dict")
VERIFICATION = "golden: reference/llamagen_vq"


@dataclass(frozen=True)
class LlamaGenVQVariant:
    """One released tokenizer: its config and where its weights come from."""

    name: str
    config: LlamaGenVQConfig
    hub_id: str
    filename: str
    #: Hub commit downloads default to; None: the repository's main branch (the commit of the
    #: snapshot used is recorded in the adapter's ``commit``).
    revision: str | None
    num_parameters: int
    training_data: str
    #: rFID on ImageNet val 50k at 256 (LlamaGen README); None where unpublished.
    reported_rfid: float | None
    resolution: int = 256
    #: Not pinned: the checkpoints could not be fetched here to hash them. The loaded file's sha256
    #: is always computed and recorded.
    sha256: str | None = None
    licence: str = LICENCE
    paper: str = PAPER
    source: str = SOURCE

    @property
    def url(self) -> str:
        """The file's download address."""
        return f"https://huggingface.co/{self.hub_id}/resolve/{self.revision or 'main'}/{self.filename}"

    @property
    def tokens(self) -> int:
        """Tokens per image at ``resolution``."""
        return (self.resolution // self.config.downsampling) ** 2


DS16 = LlamaGenVQConfig(encoder_ch_mult=(1, 1, 2, 2, 4), decoder_ch_mult=(1, 1, 2, 2, 4))
DS8 = LlamaGenVQConfig(encoder_ch_mult=(1, 2, 2, 4), decoder_ch_mult=(1, 2, 2, 4))

#: The released tokenizers; parameter counts from the full-size manifests (buffer excluded).
VARIANTS: dict[str, LlamaGenVQVariant] = {
    v.name: v
    for v in (
        LlamaGenVQVariant(
            "ds16-c2i", DS16, "FoundationVision/LlamaGen", "vq_ds16_c2i.pt", LLAMAGEN_HUB_REVISION,
            71_883_403, "ImageNet-1k", 2.19,
        ),
        LlamaGenVQVariant(
            "ds8-c2i", DS8, "FoundationVision/LlamaGen", "vq_ds8_c2i.pt", LLAMAGEN_HUB_REVISION,
            70_109_835, "ImageNet-1k", 0.59,
        ),
        LlamaGenVQVariant(
            "ds16-t2i", DS16, "peizesun/llamagen_t2i", "vq_ds16_t2i.pt", None, 71_883_403,
            "50M LAION-COCO + 10M internal images (fine-tuned from ds16-c2i)", None,
        ),
    )
}  # fmt: skip


def how_to_supply(variant: LlamaGenVQVariant) -> str:
    """The ways to give LlamaGen VQ weights, for error messages."""
    return (
        f"Supply the weights as a file with --weights PATH (model spec llamagen-vq:variant={variant.name},"
        f"weights=PATH; the official {variant.filename} from {variant.url}, or a safetensors state dict), "
        f"or as a downloaded hub snapshot of {variant.hub_id}: set HF_HOME (or HF_HUB_CACHE) to the cache "
        "that holds it, or pass weights=<the folder or hub cache directory>."
    )


def hub_file(variant: LlamaGenVQVariant) -> HubFile:
    """The variant's checkpoint as a hub file (a plain folder may hold it as .pt or .safetensors)."""
    return HubFile(
        f"llamagen-vq {variant.name}",
        variant.hub_id,
        variant.filename,
        how_to_supply(variant),
        variant.revision,
        (variant.filename, Path(variant.filename).with_suffix(".safetensors").name),
    )


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """The checkpoint file found, where (``file:…``, ``directory:…``, ``hub:…``) and its hub commit."""

    path: Path
    source: str
    commit: str | None = None


def resolve_checkpoint(
    variant: LlamaGenVQVariant, weights: str | os.PathLike | None = None, revision: str | None = None
) -> ResolvedCheckpoint:
    """Find the checkpoint: a file, a folder holding it, a hub cache (offline), or the hub."""
    found = resolve_hub_file(hub_file(variant), weights, revision)
    if found.kind == "file":
        return ResolvedCheckpoint(found.path, f"file:{found.path}")
    if found.kind == "directory":
        return ResolvedCheckpoint(found.path, f"directory:{found.path.parent}")
    return ResolvedCheckpoint(found.path, f"hub:{variant.hub_id}/{variant.filename}", found.commit)


def load_checkpoint(path: Path, sha256: str | None = None) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict in ``path`` and the container key it sat under (None for a flat file).

    Read by ``read_state_dict`` with ``argparse.Namespace`` (the training script's ``args`` entry,
    attributes only) the one class allowed beyond tensors and containers. A container dict gives its
    ``ema``, ``model`` or ``state_dict`` entry, in that order, as the official reconstruction script
    reads it.
    """
    return read_state_dict(path, sha256, CONTAINER_KEYS, [argparse.Namespace])


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] to the model's [-1, 1]: ``2x − 1`` (the official ``Normalize(0.5, 0.5)``)."""
    return images * 2.0 - 1.0


def from_model_range(raw: torch.Tensor) -> torch.Tensor:
    """Raw decoder output to [0, 1]: ``clamp((x + 1) / 2, 0, 1)``; rounding it to uint8 gives the
    official ``clamp(127.5x + 128, 0, 255)`` truncation (a round half up) except on exact ties."""
    return ((raw + 1.0) / 2.0).clamp(0.0, 1.0)


class LlamaGenVQ(NetworkAdapter, Tokenizer, DiscreteTokenizer):
    """LlamaGen's VQ tokenizer: images in [0, 1] → a grid of codebook indices (one per f×f patch) →
    images.

    ``variant`` names a release (``VARIANTS``: ``ds16-c2i``, ``ds8-c2i``, ``ds16-t2i``). ``weights``
    is the official ``.pt`` checkpoint, a safetensors state dict, a folder holding the checkpoint or
    a hub cache; without it the file comes from the hub (``revision`` overrides the pinned commit).
    ``random_init`` builds the real architecture with seeded random weights, for tests only.

    Any H, W that are multiples of the downsampling factor work (the released models were trained at
    256). The payload is the int64 N×(H/f)×(W/f) index grid; ``bits`` = tokens × log2(16384).
    ``encode_indices``/``encode_latents`` give N×T rows in raster order, and ``decode_indices`` takes
    N×T indices of a square grid, or an N×h×w grid.
    """

    version: ClassVar[str] = "1"
    config: LlamaGenVQConfig

    def __init__(
        self,
        variant: str = "ds16-c2i",
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"llamagen-vq: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        if random_init:
            check_random_init("llamagen-vq", f"llamagen-vq {variant}", weights, revision)
            model = LlamaGenVQModel.random_init(spec.config, seed=RANDOM_INIT_SEED)
            self._setup(model, variant, None, RANDOM_INIT_SOURCE, None)
            return
        resolved = resolve_checkpoint(spec, weights, revision)
        sha256 = check_sha256(f"llamagen-vq {variant}", resolved.path, spec.sha256, how_to_supply(spec))
        state, key = load_checkpoint(resolved.path, sha256)
        try:
            model = LlamaGenVQModel.from_state_dict(spec.config, state)
        except WeightsError as exc:
            raise WeightsError(
                f"llamagen-vq {variant}: {resolved.path}: {exc}. " + how_to_supply(spec)
            ) from None
        source = resolved.source + (f"[{key}]" if key else "")
        self._setup(model, variant, sha256, source, resolved.commit)

    @classmethod
    def from_model(
        cls, model: LlamaGenVQModel, name: str = "custom", weights_sha256: str | None = None
    ) -> LlamaGenVQ:
        """Wrap a ``LlamaGenVQModel`` built elsewhere (a custom config, a golden test model)."""
        adapter = cls.__new__(cls)
        adapter._setup(model, name, weights_sha256, "model", None)
        return adapter

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per released checkpoint."""
        return tuple(
            ModelCard(
                family="LlamaGen VQ",
                spec=f"llamagen-vq:variant={v.name}",
                kind="discrete",
                tokens=v.tokens,
                codebook=v.config.codebook_size,
                downsampling=v.config.downsampling,
                resolution=v.resolution,
                hub_id=v.hub_id,
                verification=VERIFICATION,
                note=f"{v.filename}; training data: {v.training_data}",
            )
            for v in VARIANTS.values()
        )

    def _setup(
        self, model: LlamaGenVQModel, name: str, sha256: str | None, source: str, commit: str | None
    ) -> None:
        self._adopt(model, name, sha256, source)
        #: The hub commit of the snapshot the weights came from (None when not from a hub cache).
        self.commit = commit

    def _latent(self, images: torch.Tensor) -> torch.Tensor:
        """The pre-quantisation latent [N, D, H/f, W/f] of images in [0, 1]."""
        f = self.config.downsampling
        if not (
            isinstance(images, torch.Tensor)
            and images.dtype == torch.float32
            and images.ndim == 4
            and images.shape[1] == 3
            and images.shape[2] % f == 0
            and images.shape[3] % f == 0
        ):
            raise ConfigError(
                f"llamagen-vq {self.name}: encode expects float32 images [N, 3, H, W] in [0, 1] with H and W "
                f"multiples of {f} (e.g. preprocess adm-center-crop at 256), got {describe(images)}"
            )
        with torch.inference_mode():
            return self.model.encode_latent(to_model_range(images.to(self._device)))

    def _encode_grid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The int64 N×h×w token grid and the searched rows (l2-normalised latents), N×h·w×D."""
        latent = self._latent(images)
        with torch.inference_mode():
            grid = self.model.quantize(latent)[1]
            rows = self.model.quantize.search_vectors(latent)
        return grid.clone(), rows.reshape(grid.shape[0], -1, rows.shape[1]).clone()

    def _decode_grid(self, grid: torch.Tensor) -> torch.Tensor:
        k = self.config.codebook_size
        if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= k):
            raise ConfigError(f"llamagen-vq {self.name}: token indices must be in [0, {k})")
        with torch.inference_mode():
            pixels = from_model_range(self.model.decode_grid(grid.to(self._device)))
        return pixels.clone()  # outside inference mode: an ordinary tensor

    def encode(self, images: torch.Tensor) -> Encoded:
        grid = self._encode_grid(images)[0]
        count = grid.shape[1] * grid.shape[2]
        bits = torch.full((grid.shape[0],), count * self.config.bits_per_token, dtype=torch.float64)
        return Encoded(payload=grid, bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        grid = encoded.payload
        if not (isinstance(grid, torch.Tensor) and grid.dtype == torch.int64 and grid.ndim == 3):
            raise ConfigError(
                f"llamagen-vq {self.name}: decode expects the int64 [N, h, w] index grid of encode, "
                f"got {describe(grid)}"
            )
        return self._decode_grid(grid)

    def codebook(self) -> torch.Tensor:
        """The K×8 codebook as the model searches it: each stored row l2-normalised."""
        with torch.inference_mode():
            return self.model.quantize.codebook().clone()

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Token indices int64 N×(h·w), in raster order."""
        return self._encode_grid(images)[0].flatten(1)

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices int64 N×(h·w) and the l2-normalised pre-quantisation latents each one quantises,
        float32 N×(h·w)×8, in raster order."""
        grid, rows = self._encode_grid(images)
        return grid.flatten(1), rows

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from int64 N×T indices of a square grid (h = w = √T) or an N×h×w grid."""
        ok = isinstance(indices, torch.Tensor) and indices.dtype == torch.int64 and indices.ndim in (2, 3)
        if ok and indices.ndim == 2:
            side = math.isqrt(indices.shape[1])
            ok = side * side == indices.shape[1]
            indices = indices.reshape(-1, side, side) if ok else indices
        if not ok:
            raise ConfigError(
                f"llamagen-vq {self.name}: decode_indices expects int64 [N, T] indices of a square token "
                f"grid (T = h·w with h = w) or an [N, h, w] grid, got {describe(indices)}"
            )
        return self._decode_grid(indices)
