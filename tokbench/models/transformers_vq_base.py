"""The shared part of the transformers-backed VQ tokenizers (``tokbench.models.transformers_vq``):
the release record, weight loading into the library's module, and the tokenizer and discrete
contracts over four model-specific steps (``latent``, ``quantise``, ``codebook``, ``pixels``).

Images in [0, 1] enter the model as ``2x - 1`` and leave as ``(x + 1) / 2`` clamped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.errors import ConfigError
from tokbench.models.diffusers_loading import load_state_strictly
from tokbench.models.network_adapter import (
    RANDOM_INIT_SEED,
    RANDOM_INIT_SOURCE,
    NetworkAdapter,
    check_random_init,
    describe,
)
from tokbench.models.transformers_vq_weights import VqSource, VqState, read_vq_state

TESTED_TRANSFORMERS = "5.23.0"


@dataclass(frozen=True)
class VqRelease:
    """One released VQ-VAE: its transformers class, full-size config, weights and provenance."""

    key: str
    family: str
    class_name: str
    config: Mapping[str, Any] = field(hash=False)
    hub_id: str
    #: Key prefixes of the VQ part in the hub checkpoint and in other known layouts.
    prefixes: tuple[str, ...]
    resolution: int
    paper: str
    verification: str
    note: str = ""
    gated: bool = False
    licence: str = "see the hub model card"

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


def how_to_supply(release: VqRelease) -> str:
    """The ways to give a release's weights, for error messages."""
    return (
        f"Supply the weights with --weights PATH (model spec {release.key}:weights=PATH): a safetensors "
        "file, a folder with model.safetensors or model.safetensors.index.json and its shards (only the "
        f"VQ-VAE keys are read), a pickle checkpoint, or a hub cache holding {release.hub_id}; or set "
        f"HF_HOME (or HF_HUB_CACHE) to a cache that holds {release.hub_id}."
    )


def import_transformers(name: str) -> Any:
    """A class of the transformers package, or a ConfigError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            f"{name} needs the transformers package: pip install transformers=={TESTED_TRANSFORMERS}"
        ) from None
    if not hasattr(transformers, name):
        raise ConfigError(
            f"transformers {transformers.__version__} has no {name}: "
            f"pip install transformers=={TESTED_TRANSFORMERS}"
        )
    return getattr(transformers, name)


def _check_images(owner: str, images: Any, factor: int) -> None:
    if not (
        isinstance(images, torch.Tensor)
        and images.dtype == torch.float32
        and images.ndim == 4
        and images.shape[1] == 3
        and images.shape[2] % factor == 0
        and images.shape[3] % factor == 0
        and images.shape[2] > 0
    ):
        raise ConfigError(
            f"{owner}: encode expects float32 images [N, 3, H, W] in [0, 1] with H and W multiples of "
            f"{factor}, got {describe(images)}"
        )


class TransformersVq(NetworkAdapter, Tokenizer, DiscreteTokenizer):
    """A transformers VQ-VAE as a discrete tokenizer: images in [0, 1] → codebook indices → images.

    ``weights`` is a checkpoint file, a model folder (sharded or not), or a hub cache; without it the
    VQ keys are read from the hub checkpoint (``revision`` pins a commit). ``random_init`` builds the
    real full-size architecture with seeded random weights, for tests only. The payload is the int64
    N×h×w index grid; ``decode_indices`` takes N×T indices of a square grid (h = w = √T).
    """

    version: ClassVar[str] = "1"
    release: ClassVar[VqRelease]

    def __init__(self, weights: str | None = None, revision: str | None = None, random_init: bool = False):
        self._setup({}, weights, revision, random_init)

    @classmethod
    def from_config(
        cls, overrides: Mapping[str, Any], weights: str | None = None, random_init: bool = False
    ) -> TransformersVq:
        """The architecture with ``overrides`` on the full-size config (tiny models for tests, golden
        checks), random or with ``weights``."""
        adapter = cls.__new__(cls)
        adapter._setup(dict(overrides), weights, None, random_init)
        return adapter

    def _setup(
        self, overrides: dict[str, Any], weights: str | None, revision: str | None, random_init: bool
    ) -> None:
        release = self.release
        self.config = {**release.config, **overrides}
        self.commit: str | None = None
        if random_init:
            check_random_init(release.key, release.key, weights, revision)
            model = self.build(device="cpu")
            self._sha256, self.source = None, RANDOM_INIT_SOURCE
        else:
            import_transformers(release.class_name)  # a missing package fails before any weights
            loaded = self._read_weights(weights, revision)
            state = self.state_to_model_keys(loaded.state)
            model = load_state_strictly(
                self.build(device="meta"),
                state,
                release.key,
                loaded.files,
                f"the {release.class_name} weights of {release.key}",
                how_to_supply(release),
            )
            self._sha256, self.source, self.commit = loaded.sha256, loaded.source, loaded.commit
        self.model = model.eval().requires_grad_(False)

    def _read_weights(self, weights: str | None, revision: str | None) -> VqState:
        release = self.release
        source = VqSource(
            release.key, release.hub_id, release.prefixes, how_to_supply(release), release.gated
        )
        return read_vq_state(source, weights, revision)

    def build(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The architecture of ``self.config`` with seeded random float32 weights (``meta``: shapes only)."""
        config_class = import_transformers(self.release.class_name + "Config")
        model_class = import_transformers(self.release.class_name)
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = model_class(config_class(**self.config))
        return model.float()

    @classmethod
    def architecture(
        cls, overrides: Mapping[str, Any] | None = None, device: str | torch.device = "meta"
    ) -> torch.nn.Module:
        """The module of the full-size config (with ``overrides``), without loading weights."""
        adapter = cls.__new__(cls)
        adapter.config = {**cls.release.config, **(overrides or {})}
        return adapter.build(device)

    def state_to_model_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Checkpoint keys (prefix stripped) → the keys of ``build()``'s module."""
        return state

    @property
    def codebook_size(self) -> int:
        return int(self.config.get("num_embeddings", self.config.get("codebook_size", 0)))

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.config["channel_multiplier"]) - 1)

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        release = cls.release
        config = release.config
        factor = 2 ** (len(config["channel_multiplier"]) - 1)
        return (
            ModelCard(
                family=release.family,
                spec=release.key,
                kind="discrete",
                tokens=(release.resolution // factor) ** 2,
                codebook=int(config.get("num_embeddings", config.get("codebook_size", 0))),
                downsampling=factor,
                resolution=release.resolution,
                hub_id=release.hub_id,
                verification=release.verification,
                note=release.note,
            ),
        )

    def describe(self) -> dict[str, Any]:
        """The release, where its weights came from and the token layout, for records."""
        return {
            "hub_id": self.release.hub_id,
            "class": self.release.class_name,
            "commit": self.commit,
            "source": self.source,
            "weights_sha256": self._sha256,
            "codebook_size": self.codebook_size,
            "downsampling_factor": self.downsampling,
            "licence": self.release.licence,
        }

    # -- the model-specific steps ---------------------------------------------------------------

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-quantisation latent N×D×h×w of model-range images x (in [-1, 1])."""
        return self.model.quant_conv(self.model.encoder(x))

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices N×h×w and the latents N×h×w×D in codebook space: the library's Euclidean search."""
        n, _, h, w = z.shape
        indices = self.model.quantize(z)[2]
        return indices.reshape(n, h, w), z.permute(0, 2, 3, 1)

    def codebook(self) -> torch.Tensor:
        """The K×D codebook the nearest-entry search uses (raw rows unless the model normalises)."""
        return self.model.quantize.embedding.weight.detach().float().clone()

    def pixels(self, grid: torch.Tensor) -> torch.Tensor:
        """Model-range images N×3×H×W from an int64 N×h×w index grid."""
        quant = self.model.quantize.embedding(grid).permute(0, 3, 1, 2).contiguous()
        return self.model.decoder(self.model.post_quant_conv(quant))

    # -- the tokenizer contract -----------------------------------------------------------------

    def _encode_grid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_images(self.release.key, images, self.downsampling)
        with torch.inference_mode():
            grid, latents = self.quantise(self.latent(images.to(self._device) * 2.0 - 1.0))
        return grid.to(torch.int64).clone(), latents.float().contiguous().clone()

    def _decode_grid(self, grid: torch.Tensor) -> torch.Tensor:
        k = self.codebook_size
        if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= k):
            raise ConfigError(f"{self.release.key}: token indices must be in [0, {k})")
        with torch.inference_mode():
            pixels = self.pixels(grid.to(self._device))
            pixels = ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        return pixels.clone()

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        return self._encode_grid(images)[0].flatten(1)

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices int64 N×(h·w) and the latents each quantises, float32 N×(h·w)×D (row-major)."""
        grid, latents = self._encode_grid(images)
        return grid.flatten(1), latents.flatten(1, 2)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        side = math.isqrt(indices.shape[1]) if isinstance(indices, torch.Tensor) and indices.ndim == 2 else 0
        if not (
            isinstance(indices, torch.Tensor)
            and indices.dtype == torch.int64
            and side * side == indices.shape[1]
        ):
            raise ConfigError(
                f"{self.release.key}: decode_indices expects int64 [N, T] indices of a square token grid "
                f"(T = h·w with h = w), got {describe(indices)}"
            )
        return self._decode_grid(indices.reshape(-1, side, side))

    def encode(self, images: torch.Tensor) -> Encoded:
        grid = self._encode_grid(images)[0]
        count = grid.shape[1] * grid.shape[2]
        bits = torch.full((grid.shape[0],), count * math.log2(self.codebook_size), dtype=torch.float64)
        return Encoded(payload=grid, bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        grid = encoded.payload
        if not (isinstance(grid, torch.Tensor) and grid.dtype == torch.int64 and grid.ndim == 3):
            raise ConfigError(
                f"{self.release.key}: decode expects the int64 [N, h, w] index grid of encode, "
                f"got {describe(grid)}"
            )
        return self._decode_grid(grid)
