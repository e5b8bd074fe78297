"""Named releases of diffusers image autoencoders: DC-AE (``dc-ae``), the FLUX.2 VAE (``flux2-vae``),
the Qwen-Image VAE (``qwen-image-vae``), the HunyuanImage-2.1 VAE (``hunyuan-image-vae``) and RAE
(``rae``), each with the config of its hub release embedded, so the real architecture builds offline
(random weights, for tests) and a weights file is checked against it.

A release's config.json, when the weights come with one, must match the embedded architecture; its
latent-normalisation factors (``FACTOR_KEYS``) are the ones used and recorded. No hub revision could
be pinned here (no network): each load records the resolved commit and the weights' sha256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Self

import torch

from tokbench.adapters.base import ModelCard
from tokbench.errors import ConfigError, WeightsError
from tokbench.hub import HubModel, ResolvedFolder, resolve_model_folder
from tokbench.models.diffusers_autoencoders import (
    CONVENTIONS,
    FACTOR_KEYS,
    DiffusersAutoencoderBase,
    build_autoencoder,
    full_config,
    import_diffusers,
    load_autoencoder,
    plain_config_value,
)
from tokbench.models.diffusers_loading import read_config
from tokbench.models.diffusers_vae import files_sha256
from tokbench.models.network_adapter import RANDOM_INIT_SOURCE, check_random_init

#: Config keys that change neither the state dict layout nor the outputs (tiling defaults).
UNCHECKED_KEYS = ("sample_size",)


@dataclass(frozen=True)
class AutoencoderRelease:
    """One released autoencoder: where its weights live, its embedded config and its provenance."""

    name: str
    hub_id: str
    #: Folder of the autoencoder inside the hub repository ("" for an autoencoder-only repository).
    subfolder: str
    config: Mapping[str, Any] = field(hash=False)
    #: Resolution (pixels per side) the release was trained or is used at, for its model card.
    resolution: int
    licence: str = "see the hub model card"
    gated: bool = False
    #: Commit to load when none is given; None loads ``main`` and records the resolved commit.
    revision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


def _dc(channels: list[int], latent: int, scale: float, enc_layers: list[int], dec_layers: list[int]) -> dict:
    """An ``AutoencoderDC`` config of DC-AE's in/mix releases: ResBlocks then EfficientViT blocks
    without multi-scale attention, pixel (un)shuffle resampling, BatchNorm+ReLU in the ResBlock levels."""
    levels, res = len(channels), 3
    return {
        "latent_channels": latent,
        "encoder_block_types": ["ResBlock"] * res + ["EfficientViTBlock"] * (levels - res),
        "decoder_block_types": ["ResBlock"] * res + ["EfficientViTBlock"] * (levels - res),
        "encoder_block_out_channels": channels,
        "decoder_block_out_channels": channels,
        "encoder_layers_per_block": enc_layers,
        "decoder_layers_per_block": dec_layers,
        "encoder_qkv_multiscales": [[]] * levels,
        "decoder_qkv_multiscales": [[]] * levels,
        "decoder_norm_types": ["batch_norm"] * res + ["rms_norm"] * (levels - res),
        "decoder_act_fns": ["relu"] * res + ["silu"] * (levels - res),
        "downsample_block_type": "pixel_unshuffle",
        "upsample_block_type": "pixel_shuffle",
        "scaling_factor": scale,
    }


_F32 = [128, 256, 512, 512, 1024, 1024]
_F64 = [*_F32, 2048]
#: SANA's DC-AE (diffusers config of mit-han-lab/dc-ae-f32c32-sana-1.0-diffusers).
_SANA = {
    "latent_channels": 32,
    "attention_head_dim": 32,
    "encoder_block_types": ["ResBlock"] * 3 + ["EfficientViTBlock"] * 3,
    "decoder_block_types": ["ResBlock"] * 3 + ["EfficientViTBlock"] * 3,
    "encoder_block_out_channels": _F32,
    "decoder_block_out_channels": _F32,
    "encoder_layers_per_block": [2, 2, 2, 3, 3, 3],
    "decoder_layers_per_block": [3] * 6,
    "encoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
    "decoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
    "downsample_block_type": "Conv",
    "upsample_block_type": "interpolate",
    "decoder_norm_types": "rms_norm",
    "decoder_act_fns": "silu",
    "scaling_factor": 0.41407,
}
_DC_LICENCE = "DC-AE licence (see the hub model card)"
_MIT = "mit-han-lab/dc-ae-"
_F32_LAYERS, _F64_LAYERS = (
    ([0, 4, 8, 2, 2, 2], [0, 5, 10, 2, 2, 2]),
    ([0, 4, 8, 2, 2, 2, 2], [0, 5, 10, 2, 2, 2, 2]),
)

#: DC-AE releases in diffusers format (the f128c512 ones: use diffusers-autoencoder, see the README).
DC_AE: dict[str, AutoencoderRelease] = {
    r.name: r
    for r in (
        AutoencoderRelease(
            "f32c32-sana-1.0", _MIT + "f32c32-sana-1.0-diffusers", "", _SANA, 1024, _DC_LICENCE
        ),
        AutoencoderRelease(
            "f32c32-sana-1.1", _MIT + "f32c32-sana-1.1-diffusers", "", _SANA, 1024, _DC_LICENCE
        ),
        AutoencoderRelease(
            "f32c32-in-1.0", _MIT + "f32c32-in-1.0-diffusers", "", _dc(_F32, 32, 0.3189, *_F32_LAYERS), 512
        ),
        AutoencoderRelease(
            "f32c32-mix-1.0", _MIT + "f32c32-mix-1.0-diffusers", "", _dc(_F32, 32, 0.4552, *_F32_LAYERS), 512
        ),
        AutoencoderRelease(
            "f64c128-in-1.0", _MIT + "f64c128-in-1.0-diffusers", "", _dc(_F64, 128, 0.2889, *_F64_LAYERS), 512
        ),
        AutoencoderRelease(
            "f64c128-mix-1.0",
            _MIT + "f64c128-mix-1.0-diffusers",
            "",
            _dc(_F64, 128, 0.4538, *_F64_LAYERS),
            512,
        ),
    )
}

#: The FLUX.2 VAE: KL-f8, 32 latent channels, BatchNorm statistics of the 2×2-patchified latents.
_FLUX2 = {
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 32,
    "norm_num_groups": 32,
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "mid_block_add_attention": True,
    "batch_norm_eps": 1e-4,
    "batch_norm_momentum": 0.1,
    "patch_size": [2, 2],
    "sample_size": 1024,
}
FLUX2: dict[str, AutoencoderRelease] = {
    r.name: r
    for r in (
        # FLUX.2 [klein] 4B ships the same VAE under Apache-2.0 without a gate: the default source
        AutoencoderRelease(
            "klein-4b", "black-forest-labs/FLUX.2-klein-4B", "vae", _FLUX2, 1024, "Apache-2.0"
        ),
        AutoencoderRelease(
            "dev",
            "black-forest-labs/FLUX.2-dev",
            "vae",
            _FLUX2,
            1024,
            "FLUX [dev] Non-Commercial License",
            True,
        ),
    )
}

#: Wan 2.1's causal 3-D VAE (16 channels, f8), which Qwen-Image's VAE shares (video_vae_zoo's wan-vae
#: adds its video class's keys): the class defaults are its config.
WAN21_VAE = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    # latents_mean and latents_std: the class defaults (the releases' values)
}
QWEN_IMAGE = {
    "qwen-image": AutoencoderRelease("qwen-image", "Qwen/Qwen-Image", "vae", WAN21_VAE, 1328, "Apache-2.0")
}

#: HunyuanImage-2.1's VAE: f32, 64 latent channels (diffusers' conversion config).
_HUNYUAN = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 64,
    "block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "layers_per_block": 2,
    "spatial_compression_ratio": 32,
    "sample_size": 384,
    "scaling_factor": 0.75289,
    "downsample_match_channel": True,
    "upsample_match_channel": True,
}
HUNYUAN_IMAGE = {
    "hunyuan-image-2.1": AutoencoderRelease(
        "hunyuan-image-2.1",
        "hunyuanvideo-community/HunyuanImage-2.1-Diffusers",
        "vae",
        _HUNYUAN,
        2048,
        "Tencent Hunyuan Community License",
    )
}


def _rae(
    encoder: str, hidden: int, layers: int, patch: int, size: int, mean: list[float], std: list[float]
) -> dict:
    """An ``AutoencoderRAE`` config: a frozen representation encoder and a ViT-XL decoder (patch 16)."""
    return {
        "encoder_type": encoder,
        "encoder_hidden_size": hidden,
        "encoder_patch_size": patch,
        "encoder_num_hidden_layers": layers,
        "decoder_hidden_size": 1152,
        "decoder_num_hidden_layers": 28,
        "decoder_num_attention_heads": 16,
        "decoder_intermediate_size": 4096,
        "patch_size": 16,
        "encoder_input_size": size,
        "encoder_norm_mean": mean,
        "encoder_norm_std": std,
        "scaling_factor": 1.0,
    }


_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
_NYU = "nyu-visionx/RAE-"
#: RAE releases in diffusers format (latent statistics come from each release's config.json). The
#: SigLIP2 release is left out: diffusers 0.42.1 cannot build its encoder with transformers 5.
RAE: dict[str, AutoencoderRelease] = {
    r.name: r
    for r in (
        AutoencoderRelease(
            "dinov2-b",
            _NYU + "dinov2-wReg-base-ViTXL-n08",
            "",
            _rae("dinov2", 768, 12, 14, 224, *_IMAGENET),
            256,
        ),
        AutoencoderRelease(
            "dinov2-s",
            _NYU + "dinov2-wReg-small-ViTXL-n08",
            "",
            _rae("dinov2", 384, 12, 14, 224, *_IMAGENET),
            256,
        ),
        AutoencoderRelease(
            "dinov2-l",
            _NYU + "dinov2-wReg-large-ViTXL-n08",
            "",
            _rae("dinov2", 1024, 24, 14, 224, *_IMAGENET),
            256,
        ),
        AutoencoderRelease(
            "mae-b", _NYU + "mae-base-p16-ViTXL-n08", "", _rae("mae", 768, 12, 16, 224, *_IMAGENET), 224
        ),
    )
}


def release_how_to_supply(model_name: str, release: AutoencoderRelease) -> str:
    """The ways to give a release's weights (``model_name`` is the registered name), for error messages."""
    where = release.hub_id + (f" (subfolder {release.subfolder}/)" if release.subfolder else "")
    gate = (
        f" {release.hub_id} is gated: accept its licence ({release.licence}) on the hub and log in "
        "(HF_TOKEN) before downloading."
        if release.gated
        else ""
    )
    return (
        f"Supply the weights with --weights PATH (model spec {model_name}:variant={release.name},"
        f"weights=PATH): a diffusion_pytorch_model.safetensors file, the folder of {where} (config.json "
        "and weights), a downloaded snapshot of the repository, or a hub cache; or set HF_HOME (or "
        f"HF_HUB_CACHE) to a cache that holds {release.hub_id}.{gate}"
    )


def checked_release_config(
    class_name: str,
    release: AutoencoderRelease,
    resolved: ResolvedFolder,
    owner: str,
    how: str,
    generic: str,
) -> dict[str, Any]:
    """The release's embedded config, its normalisation factors replaced by the release config.json's;
    a config.json of another class or architecture raises ``WeightsError`` (suggesting ``generic``)."""
    expected = full_config(class_name, release.config, owner)
    if resolved.config_file is None:
        return expected
    raw = read_config(owner, resolved.config_file)
    found_class = raw.get("_class_name", class_name)
    if found_class != class_name:
        raise WeightsError(
            f"{owner}: {resolved.config_file} describes a {found_class}, not a {class_name}. " + how
        )
    found = full_config(class_name, raw, owner)
    mismatched = [
        f"{key}={plain_config_value(found[key])!r} (expected {plain_config_value(value)!r})"
        for key, value in expected.items()
        if key not in (*FACTOR_KEYS, *UNCHECKED_KEYS)
        and value is not None  # None: derived by the class from the other keys
        and plain_config_value(found[key]) != plain_config_value(value)
    ]
    if mismatched:
        raise WeightsError(
            f"{owner}: {resolved.config_file} is not the {release.name} architecture: "
            f"{', '.join(mismatched)}. Pick the matching variant, use {generic}, or " + how
        )
    return {**expected, **{key: raw[key] for key in FACTOR_KEYS if key in raw}}


class NamedRelease:
    """A named hub release of a diffusers autoencoder, image or video: the constructor, ``from_model``
    and the record (subclasses set the family, its releases and the conventions of their side).

    ``variant`` names a release; ``weights`` is a local weights file, folder, repository snapshot or
    hub cache; without it the weights come from the hub (``revision`` pins a commit).
    ``random_init`` builds the real architecture with seeded random weights, for tests only.
    """

    #: Registered model name, e.g. "dc-ae".
    model_name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    class_name: ClassVar[str] = ""
    releases: ClassVar[Mapping[str, AutoencoderRelease]] = {}
    default_variant: ClassVar[str] = ""
    #: The conventions of the side (``CONVENTIONS`` or ``VIDEO_CONVENTIONS``), by class name.
    conventions: ClassVar[Mapping[str, Any]] = {}
    #: The generic adapter a config.json of another architecture is pointed to.
    generic_model: ClassVar[str] = "diffusers-autoencoder"

    def __init__(
        self,
        variant: str | None = None,
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
    ) -> None:
        variant = variant or self.default_variant
        if variant not in self.releases:
            raise ConfigError(
                f"{self.model_name}: variant must be one of {', '.join(self.releases)}, got {variant!r}"
            )
        release = self.release = self.releases[variant]
        owner = f"{self.model_name} {variant}"
        self.commit = None
        if random_init:
            check_random_init(self.model_name, owner, weights, revision)
            model = build_autoencoder(self.class_name, release.config, owner)
            self._sha256, self.source = None, RANDOM_INIT_SOURCE
        else:
            import_diffusers(owner)  # fail on a missing package before looking for weights
            how = self.how_to_supply(release)
            hub_model = HubModel(owner, release.hub_id, release.subfolder, how, release.gated)
            resolved = resolve_model_folder(hub_model, weights, revision or release.revision)
            config = checked_release_config(
                self.class_name, release, resolved, owner, how, self.generic_model
            )
            self._sha256 = files_sha256(resolved.files)
            model = load_autoencoder(self.class_name, config, resolved, owner, how)
            self.source, self.commit = resolved.source, resolved.commit
        self._attach(model, self.conventions[self.class_name], owner)

    @classmethod
    def from_model(cls, model: torch.nn.Module, variant: str | None = None) -> Self:
        """Wrap an already built model of this family's class (e.g. a reduced config, for tests); the
        release named by ``variant`` is what records and cards refer to."""
        variant = variant or cls.default_variant
        if type(model).__name__ != cls.class_name or variant not in cls.releases:
            raise ConfigError(
                f"{cls.model_name}: from_model takes a diffusers {cls.class_name} and a variant in "
                f"{', '.join(cls.releases)}, got {type(model).__name__} and {variant!r}"
            )
        adapter = cls.__new__(cls)
        adapter.release, adapter.commit, adapter._sha256 = cls.releases[variant], None, None
        adapter.source = f"model({type(model).__name__})"
        adapter._attach(model.float(), cls.conventions[cls.class_name], f"{cls.model_name} {variant}")
        return adapter

    @classmethod
    def how_to_supply(cls, release: AutoencoderRelease) -> str:
        """The ways to give a release's weights, for error messages."""
        return release_how_to_supply(cls.model_name, release)

    def describe(self) -> dict[str, Any]:
        """The release, where its weights came from and the latent normalisation, for records."""
        release = self.release
        return {
            "variant": release.name,
            "hub_id": release.hub_id,
            "subfolder": release.subfolder,
            "licence": release.licence,
            "gated": release.gated,
            **super().describe(),
        }

    @classmethod
    def release_card(cls, release: AutoencoderRelease, **fields: Any) -> ModelCard:
        """The model card of ``release``; ``fields`` adds the side's sizes (downsampling, tokens, note)."""
        return ModelCard(
            family=cls.family,
            spec=f"{cls.model_name}:variant={release.name}",
            kind="continuous",
            resolution=release.resolution,
            hub_id=release.hub_id,
            verification=f"library: diffusers {cls.class_name}",
            **fields,
        )


class NamedDiffusersAutoencoder(NamedRelease, DiffusersAutoencoderBase):
    """A named hub release of a diffusers image autoencoder (arguments: ``NamedRelease``)."""

    conventions = CONVENTIONS

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per release: latent positions and downsampling at the release's resolution."""
        cards = []
        for release in cls.releases.values():
            factor = CONVENTIONS[cls.class_name].downsampling(release.config)
            cards.append(
                cls.release_card(release, tokens=(release.resolution // factor) ** 2, downsampling=factor)
            )
        return tuple(cards)


class DcAe(NamedDiffusersAutoencoder):
    """DC-AE (Chen et al., Deep Compression Autoencoder, ICLR 2025) through diffusers' ``AutoencoderDC``."""

    model_name, family, class_name = "dc-ae", "DC-AE", "AutoencoderDC"
    releases, default_variant = DC_AE, "f32c32-in-1.0"


class Flux2Vae(NamedDiffusersAutoencoder):
    """The FLUX.2 VAE (Black Forest Labs, 2025) through diffusers' ``AutoencoderKLFlux2``."""

    model_name, family, class_name = "flux2-vae", "FLUX.2 VAE", "AutoencoderKLFlux2"
    releases, default_variant = FLUX2, "klein-4b"


class QwenImageVae(NamedDiffusersAutoencoder):
    """Qwen-Image's VAE (Qwen team, 2025) through diffusers' ``AutoencoderKLQwenImage``, one frame."""

    model_name, family, class_name = "qwen-image-vae", "Qwen-Image VAE", "AutoencoderKLQwenImage"
    releases, default_variant = QWEN_IMAGE, "qwen-image"


class HunyuanImageVae(NamedDiffusersAutoencoder):
    """HunyuanImage-2.1's VAE (Tencent, 2025) through diffusers' ``AutoencoderKLHunyuanImage``."""

    model_name, family, class_name = "hunyuan-image-vae", "HunyuanImage VAE", "AutoencoderKLHunyuanImage"
    releases, default_variant = HUNYUAN_IMAGE, "hunyuan-image-2.1"


class Rae(NamedDiffusersAutoencoder):
    """Representation autoencoders (Zheng et al., Diffusion Transformers with Representation
    Autoencoders, arXiv:2510.11690) through diffusers' ``AutoencoderRAE``: a frozen encoder and a
    ViT-XL decoder; images must be the decoder's size (the encoder input is resized inside)."""

    model_name, family, class_name = "rae", "RAE", "AutoencoderRAE"
    releases, default_variant = RAE, "dinov2-b"
