"""Discrete VQ autoencoders of diffusion pipelines through diffusers' ``VQModel``, as tokenizers with
the codebook capability pFID needs (``DiscreteTokenizer``).

Three hub releases ship a ``VQModel`` (their configs, embedded below, were checked against the
original training configs and diffusers' conversion scripts):

* ``ldm-celebahq-f4``: the VQ-f4 first stage of latent diffusion (``CompVis/ldm-celebahq-256``,
  folder ``vqvae``): 8192 codes of dimension 3, 64×64 tokens for a 256×256 image;
* ``vq-diffusion-ithq``: VQ-Diffusion's ITHQ VQGAN (``microsoft/vq-diffusion-ithq``, folder
  ``vqvae``): 4096 codes of dimension 128, f8, attention at 32×32;
* ``kandinsky22-movq``: Kandinsky 2.2's MoVQ (``kandinsky-community/kandinsky-2-2-decoder``,
  folder ``movq``): 16384 codes of dimension 4, f8, spatially modulated decoder norms.

Images are mapped to [-1, 1] (the range all three were trained on) and back, clamped to [0, 1].
Tokens are the nearest codebook entries of the encoder output by Euclidean distance (diffusers'
``VectorQuantizer``), in row-major order; decoding looks the entries up and runs
``post_quant_conv`` and the decoder (MoVQ's decoder also gets the quantised latents), which is what
``VQModel.decode`` does after quantising, so ``decode_indices(encode_indices(x))`` equals
``decode(encode(x))``. ``bits`` is tokens × log2(codebook size).
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.errors import ConfigError, WeightsError
from tokbench.hub import HubModel, ResolvedFolder, resolve_model_folder
from tokbench.models.diffusers_loading import load_state_strictly, read_config
from tokbench.models.diffusers_vae import TESTED_DIFFUSERS, files_sha256, state_dict_to_current_keys
from tokbench.models.network_adapter import NetworkAdapter
from tokbench.models.network_adapter import describe as describe_value
from tokbench.models.titok import load_checkpoint

logger = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0
#: Config keys that fix the architecture (the state dict layout) or the quantiser.
CHECKED_KEYS = (
    *("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels"),
    *("layers_per_block", "act_fn", "latent_channels", "num_vq_embeddings", "norm_num_groups"),
    *("vq_embed_dim", "norm_type", "mid_block_add_attention", "lookup_from_codebook"),
)


def _config(
    channels: list[int], down: list[str], up: list[str], latent: int, codes: int, **extra: Any
) -> dict:
    """A ``VQModel`` config: RGB in and out, two ResNets per level, SiLU, 32 norm groups."""
    config = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": down,
        "up_block_types": up,
        "block_out_channels": channels,
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": latent,
        "num_vq_embeddings": codes,
        "norm_num_groups": 32,
        "vq_embed_dim": None,
        "norm_type": "group",
    }
    config.update(extra)
    return config


@dataclass(frozen=True)
class VqVariant:
    """One released VQ autoencoder: where its weights live, its embedded config and its provenance."""

    name: str
    hub_id: str
    subfolder: str
    config: Mapping[str, Any] = field(hash=False)
    paper: str
    #: Not verified offline: read the model card on the hub before use.
    licence: str = "see the hub model card"
    #: Commit to load when none is given; None loads ``main`` and records the resolved commit.
    revision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config["down_block_types"]) - 1)

    @property
    def codebook_size(self) -> int:
        return int(self.config["num_vq_embeddings"])

    @property
    def code_dim(self) -> int:
        return int(self.config["vq_embed_dim"] or self.config["latent_channels"])


_ENC, _ATT_ENC = "DownEncoderBlock2D", "AttnDownEncoderBlock2D"
_DEC, _ATT_DEC = "UpDecoderBlock2D", "AttnUpDecoderBlock2D"
_F8_ATTN = ([_ENC] * 3 + [_ATT_ENC], [_ATT_DEC] + [_DEC] * 3)

VARIANTS: dict[str, VqVariant] = {
    v.name: v
    for v in (
        VqVariant(
            "ldm-celebahq-f4",
            "CompVis/ldm-celebahq-256",
            "vqvae",
            _config([128, 256, 512], [_ENC] * 3, [_DEC] * 3, 3, 8192),
            "Rombach et al. High-Resolution Image Synthesis with Latent Diffusion Models. CVPR 2022 (VQ-f4)",
        ),
        VqVariant(
            "vq-diffusion-ithq",
            "microsoft/vq-diffusion-ithq",
            "vqvae",
            _config([64, 128, 256, 512], *_F8_ATTN, 256, 4096, vq_embed_dim=128),
            "Tang et al. Improved Vector Quantized Diffusion Models. arXiv:2205.16007 (ITHQ VQGAN)",
        ),
        VqVariant(
            "kandinsky22-movq",
            "kandinsky-community/kandinsky-2-2-decoder",
            "movq",
            _config([128, 256, 256, 512], *_F8_ATTN, 4, 16384, vq_embed_dim=4, norm_type="spatial"),
            "Zheng et al. MoVQ. NeurIPS 2022; Razzhigaev et al. Kandinsky. EMNLP 2023 (Kandinsky 2.2)",
        ),
    )
}


def how_to_supply(variant: VqVariant) -> str:
    """The ways to give a variant's weights, for error messages."""
    return (
        "Supply the weights with --weights PATH (model spec "
        f"diffusers-vq:variant={variant.name},weights=PATH): a diffusion_pytorch_model.safetensors file, "
        f"the {variant.subfolder}/ folder of {variant.hub_id} (config.json and weights), a downloaded "
        f"snapshot of the repository, or a hub cache; or set HF_HOME (or HF_HUB_CACHE) to a cache that "
        f"holds {variant.hub_id}."
    )


def _vq_model_class() -> Any:
    try:
        from diffusers import VQModel
    except ImportError:
        raise ConfigError(
            "diffusers-vq needs the diffusers package: pip install 'tokbench[diffusers]' "
            f"(or pip install diffusers=={TESTED_DIFFUSERS})"
        ) from None
    return VQModel


def build_vq_model(variant: VqVariant, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A ``VQModel`` of the variant's architecture with seeded random float32 weights (``meta``:
    shapes only, for loading weights with ``assign=True``)."""
    vq_model = _vq_model_class()
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = vq_model(**dict(variant.config))
    return model.float()


def check_config(variant: VqVariant, config_file: Path) -> None:
    """Raise ``WeightsError`` unless ``config_file`` describes the variant's architecture."""
    found = read_config(f"diffusers-vq {variant.name}", config_file)
    defaults = inspect.signature(_vq_model_class().__init__).parameters

    def effective(config: Mapping[str, Any], key: str) -> Any:
        value = config.get(key, defaults[key].default)
        if key == "vq_embed_dim" and value is None:  # VQModel's default: the latent channels
            value = config.get("latent_channels", defaults["latent_channels"].default)
        return list(value) if isinstance(value, tuple) else value

    mismatched = [
        f"{key}={effective(found, key)!r} (expected {effective(variant.config, key)!r})"
        for key in CHECKED_KEYS
        if effective(found, key) != effective(variant.config, key)
    ]
    if mismatched:
        raise WeightsError(
            f"diffusers-vq {variant.name}: {config_file} is not the {variant.name} architecture: "
            f"{', '.join(mismatched)}. Pick the matching variant, or " + how_to_supply(variant)
        )


def load_vq_model(variant: VqVariant, resolved: ResolvedFolder) -> torch.nn.Module:
    """The variant's ``VQModel`` with the resolved weights (strict key and shape match), float32."""
    if resolved.config_file is not None:
        check_config(variant, resolved.config_file)
    state: dict[str, torch.Tensor] = {}
    for path in resolved.files:
        state.update(load_checkpoint(path))
    what = f"a diffusers VQModel state dict of the {variant.name} architecture"
    return load_state_strictly(
        build_vq_model(variant, device="meta"),
        state_dict_to_current_keys(state),
        f"diffusers-vq {variant.name}",
        resolved.files,
        what,
        how_to_supply(variant),
    )


#: Family name and training resolution (None: not stated by the release) of each variant.
FAMILIES: dict[str, tuple[str, int | None]] = {
    "ldm-celebahq-f4": ("LDM VQ-f4 (CelebA-HQ)", 256),
    "vq-diffusion-ithq": ("VQ-Diffusion ITHQ VQGAN", 256),
    "kandinsky22-movq": ("Kandinsky 2.2 MoVQ", None),
}


class DiffusersVq(NetworkAdapter, Tokenizer, DiscreteTokenizer):
    """A diffusers ``VQModel`` as a discrete tokenizer: images in [0, 1] → codebook indices → images.

    ``variant`` names a release (``VARIANTS``). ``weights`` is a local weights file, model folder,
    repository snapshot or hub cache; without it the weights come from the hub (``revision`` pins a
    commit). ``random_init`` builds the real architecture with seeded random weights, for tests only.
    The payload is the int64 N×h×w index grid; height and width must be multiples of the
    downsampling factor. ``decode_indices`` takes N×T indices of a square h = w = √T grid.
    """

    version: ClassVar[str] = "1"

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per release (``VARIANTS``); tokens at the training resolution where known."""
        cards = []
        for name, v in VARIANTS.items():
            family, resolution = FAMILIES[name]
            cards.append(
                ModelCard(
                    family=family,
                    spec=f"diffusers-vq:variant={name}",
                    kind="discrete",
                    tokens=None if resolution is None else (resolution // v.downsampling_factor) ** 2,
                    codebook=v.codebook_size,
                    downsampling=v.downsampling_factor,
                    resolution=resolution,
                    hub_id=v.hub_id,
                    verification="library: diffusers VQModel",
                    note=f"folder {v.subfolder}/"
                    + ("" if resolution else "; training resolution not stated"),
                )
            )
        return tuple(cards)

    def __init__(
        self,
        variant: str = "ldm-celebahq-f4",
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"diffusers-vq: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        self.variant = spec
        self.commit: str | None = None
        if random_init:
            if weights is not None or revision is not None:
                raise ConfigError(
                    "diffusers-vq: random_init=True builds random weights; drop weights= and revision="
                )
            logger.warning(
                "diffusers-vq %s: random weights (seed %d), for tests only", variant, RANDOM_INIT_SEED
            )
            model, self._sha256 = build_vq_model(spec), None
            self.source = f"random_init(seed={RANDOM_INIT_SEED})"
        else:
            _vq_model_class()  # fail on a missing package before looking for weights
            hub_model = HubModel(
                f"diffusers-vq {spec.name}", spec.hub_id, spec.subfolder, how_to_supply(spec)
            )
            resolved = resolve_model_folder(hub_model, weights, revision or spec.revision)
            self._sha256 = files_sha256(resolved.files)
            model = load_vq_model(spec, resolved)
            self.source, self.commit = resolved.source, resolved.commit
        self.model = model.eval().requires_grad_(False)

    def describe(self) -> dict[str, Any]:
        """The release, where its weights came from and the token layout, for records."""
        spec = self.variant
        return {
            "variant": spec.name,
            "hub_id": spec.hub_id,
            "subfolder": spec.subfolder,
            "commit": self.commit,
            "source": self.source,
            "weights_sha256": self._sha256,
            "codebook_size": spec.codebook_size,
            "code_dim": spec.code_dim,
            "downsampling_factor": spec.downsampling_factor,
            "licence": spec.licence,
        }

    def codebook(self) -> torch.Tensor:
        """The K×D codebook (diffusers' quantiser searches raw, un-normalised entries)."""
        return self.model.quantize.embedding.weight.detach().float().clone()

    def _encode_grid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The int64 N×h×w index grid and the encoder output it quantises, N×h×w×D."""
        f = self.variant.downsampling_factor
        if not (
            isinstance(images, torch.Tensor)
            and images.dtype == torch.float32
            and images.ndim == 4
            and images.shape[1] == 3
            and images.shape[2] % f == 0
            and images.shape[3] % f == 0
        ):
            raise ConfigError(
                f"diffusers-vq {self.variant.name}: encode expects float32 images [N, 3, H, W] in [0, 1] "
                f"with H and W multiples of {f}, got {describe_value(images)}"
            )
        with torch.inference_mode():
            latents = self.model.encode(images.to(self._device) * 2.0 - 1.0).latents
            indices = self.model.quantize(latents)[2][2]
        n, _, h, w = latents.shape
        return indices.reshape(n, h, w).to(torch.int64).clone(), latents.permute(0, 2, 3, 1).float().clone()

    def _decode_grid(self, grid: torch.Tensor) -> torch.Tensor:
        k = self.variant.codebook_size
        if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= k):
            raise ConfigError(f"diffusers-vq {self.variant.name}: token indices must be in [0, {k})")
        n, h, w = grid.shape
        with torch.inference_mode():
            quant = self.model.quantize.get_codebook_entry(
                grid.to(self._device).reshape(-1), (n, h, w, self.variant.code_dim)
            )
            hidden = self.model.post_quant_conv(quant)
            spatial = quant if self.variant.config["norm_type"] == "spatial" else None
            pixels = self.model.decoder(hidden, spatial)
            pixels = ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        return pixels.clone()

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        return self._encode_grid(images)[0].flatten(1)

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices int64 N×(h·w) and the encoder output (after ``quant_conv``) each quantises,
        float32 N×(h·w)×D, in row-major order (diffusers' quantiser does not normalise)."""
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
                f"diffusers-vq {self.variant.name}: decode_indices expects int64 [N, T] indices of a square "
                f"token grid (T = h·w with h = w), got {describe_value(indices)}"
            )
        return self._decode_grid(indices.reshape(-1, side, side))

    def encode(self, images: torch.Tensor) -> Encoded:
        grid = self._encode_grid(images)[0]
        count = grid.shape[1] * grid.shape[2]
        bits = torch.full(
            (grid.shape[0],), count * math.log2(self.variant.codebook_size), dtype=torch.float64
        )
        return Encoded(payload=grid, bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        grid = encoded.payload
        if not (isinstance(grid, torch.Tensor) and grid.dtype == torch.int64 and grid.ndim == 3):
            raise ConfigError(
                f"diffusers-vq {self.variant.name}: decode expects the int64 [N, h, w] index grid of encode, "
                f"got {describe_value(grid)}"
            )
        return self._decode_grid(grid)
