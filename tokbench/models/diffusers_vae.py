"""Continuous latent VAEs of latent diffusion models through diffusers' ``AutoencoderKL``: the
SD-1.x fine-tuned VAEs (ft-MSE, ft-EMA), SD-XL, SD-3.5 and FLUX.1, and the ``DiffusersVae``
tokenizer adapter.

Each variant embeds the ``AutoencoderKL`` config of its hub release, so the real architecture can be
built offline (random weights, for tests) and a weights file checked against it. ``diffusers`` is
an optional dependency, imported only when a model is built.

Scaling and shift factors are kept in the variant and in ``DiffusersVae.describe()`` but are *not*
applied in the round trip: a generator works on ``(z - shift) * scale``, which its decoder inverts
exactly before decoding, so they cannot change a reconstruction. The payload is the VAE's own latent
``z``; ``vae_latents_to_diffusion_latents`` and its inverse convert for generator code.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.errors import ConfigError, WeightsError
from tokbench.hashing import file_sha256
from tokbench.hub import HubModel, ResolvedFolder, resolve_model_folder
from tokbench.models.diffusers_loading import load_state_strictly, read_config
from tokbench.models.network_adapter import NetworkAdapter
from tokbench.models.network_adapter import describe as describe_value
from tokbench.models.titok import load_checkpoint

logger = logging.getLogger(__name__)

#: The diffusers release the embedded configs and the tests were checked with.
TESTED_DIFFUSERS = "0.42.1"
RANDOM_INIT_SEED = 0
#: Config keys that fix the architecture (the state dict layout) or the latent normalisation; keys
#: absent from an older config.json take the default of the installed ``AutoencoderKL``.
CHECKED_KEYS = (
    *("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels"),
    *("layers_per_block", "act_fn", "latent_channels", "norm_num_groups", "use_quant_conv"),
    *("use_post_quant_conv", "mid_block_add_attention", "scaling_factor", "shift_factor"),
)


def _kl_f8_config(latent_channels: int, sample_size: int, scaling: float, shift: float | None) -> dict:
    """The ``AutoencoderKL`` config shared by all five releases: KL-f8, 128-256-512-512 channels,
    two ResNets per level, one mid-block attention; SD-3.5 and FLUX.1 drop the 1×1 quant convs."""
    quant = latent_channels == 4
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": latent_channels,
        "norm_num_groups": 32,
        "sample_size": sample_size,
        "scaling_factor": scaling,
        "shift_factor": shift,
        "force_upcast": True,
        "use_quant_conv": quant,
        "use_post_quant_conv": quant,
        "mid_block_add_attention": True,
    }


@dataclass(frozen=True)
class VaeVariant:
    """One released VAE: where its weights live, its embedded config and its provenance."""

    name: str
    hub_id: str
    #: Folder of the VAE inside the hub repository ("" for a VAE-only repository).
    subfolder: str
    config: Mapping[str, Any] = field(hash=False)
    licence: str
    #: Gated on the hub: the licence must be accepted there and a token used to download.
    gated: bool
    paper: str
    #: Commit of the hub repository to load when none is given; None loads ``main`` and records the
    #: resolved commit and the file's sha256 (the hub files could not be fetched here to pin them).
    revision: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    @property
    def latent_channels(self) -> int:
        return int(self.config["latent_channels"])

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config["down_block_types"]) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.config["scaling_factor"])

    @property
    def shift_factor(self) -> float | None:
        shift = self.config["shift_factor"]
        return None if shift is None else float(shift)


_LDM = "Rombach et al. High-Resolution Image Synthesis with Latent Diffusion Models. CVPR 2022"
_SD_FT = _LDM + "; decoder fine-tuned on LAION by Stability AI"
_SDXL = "Podell et al. SDXL. ICLR 2024, arXiv:2307.01952"
_SD3 = "Esser et al. Scaling Rectified Flow Transformers. ICML 2024, arXiv:2403.03206"
_FLUX = "Black Forest Labs. FLUX.1 (2024), github.com/black-forest-labs/flux"
_SD3_LICENCE = "Stability AI Community License"
#: FLUX.1 [dev] and [schnell] share the autoencoder; schnell's repository is not gated, so it is the
#: default source (weights from FLUX.1-dev, gated, non-commercial licence, load with weights=).
_FLUX_LICENCE = "Apache-2.0 (FLUX.1 [schnell])"
_SD, _XL = _kl_f8_config(4, 256, 0.18215, None), _kl_f8_config(4, 1024, 0.13025, None)
_SD35, _FLUX1 = _kl_f8_config(16, 1024, 1.5305, 0.0609), _kl_f8_config(16, 1024, 0.3611, 0.1159)

#: The official releases, keyed by tokbench variant name; configs as in each hub ``config.json``.
VARIANTS: dict[str, VaeVariant] = {
    v.name: v
    for v in (
        VaeVariant("sd-ft-mse", "stabilityai/sd-vae-ft-mse", "", _SD, "MIT", False, _SD_FT + " (MSE)"),
        VaeVariant("sd-ft-ema", "stabilityai/sd-vae-ft-ema", "", _SD, "MIT", False, _SD_FT + " (EMA)"),
        VaeVariant("sdxl", "stabilityai/sdxl-vae", "", _XL, "MIT", False, _SDXL),
        VaeVariant("sd35", "stabilityai/stable-diffusion-3.5-large", "vae", _SD35, _SD3_LICENCE, True, _SD3),
        VaeVariant("flux1", "black-forest-labs/FLUX.1-schnell", "vae", _FLUX1, _FLUX_LICENCE, False, _FLUX),
    )
}


def vae_latents_to_diffusion_latents(latents: torch.Tensor, variant: VaeVariant) -> torch.Tensor:
    """``(z - shift) * scale``: the latents a variant's diffusion model is trained on."""
    return (latents - (variant.shift_factor or 0.0)) * variant.scaling_factor


def diffusion_latents_to_vae_latents(latents: torch.Tensor, variant: VaeVariant) -> torch.Tensor:
    """The inverse of ``vae_latents_to_diffusion_latents``."""
    return latents / variant.scaling_factor + (variant.shift_factor or 0.0)


def how_to_supply(variant: VaeVariant) -> str:
    """The ways to give a variant's weights, for error messages."""
    where = f"{variant.hub_id}" + (f" (subfolder {variant.subfolder}/)" if variant.subfolder else "")
    gate = (
        f" {variant.hub_id} is gated: accept its licence ({variant.licence}) on the hub and log in "
        "(HF_TOKEN) before downloading."
        if variant.gated
        else ""
    )
    return (
        f"Supply the weights with --weights PATH (model spec sd-vae:variant={variant.name},weights=PATH): "
        f"a diffusion_pytorch_model.safetensors file, the VAE folder of {where} (config.json and weights), "
        "a downloaded snapshot of the repository, or a hub cache; or set HF_HOME (or HF_HUB_CACHE) to "
        f"a cache that holds {variant.hub_id}.{gate}"
    )


def import_diffusers() -> Any:
    """The ``diffusers`` module, or a ``ConfigError`` saying how to install it."""
    try:
        import diffusers
    except ImportError:
        raise ConfigError(
            "sd-vae needs the diffusers package: pip install 'tokbench[diffusers]' "
            f"(or pip install diffusers=={TESTED_DIFFUSERS})"
        ) from None
    return diffusers


def build_autoencoder(variant: VaeVariant, device: str | torch.device = "cpu") -> torch.nn.Module:
    """An ``AutoencoderKL`` of the variant's real architecture with seeded random float32 weights
    (on the ``meta`` device: shapes only, for loading weights with ``assign=True``)."""
    autoencoder_kl = import_diffusers().AutoencoderKL
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = autoencoder_kl(**dict(variant.config))
    return model.float()


def resolve_weights(
    variant: VaeVariant, weights: str | os.PathLike | None, revision: str | None
) -> ResolvedFolder:
    """Find the weights: a file, a folder (VAE folder, repository snapshot, hub cache) or the hub."""
    hub_model = HubModel(
        f"sd-vae {variant.name}", variant.hub_id, variant.subfolder, how_to_supply(variant), variant.gated
    )
    return resolve_model_folder(hub_model, weights, revision)


def check_config(variant: VaeVariant, config_file: Path) -> None:
    """Raise ``WeightsError`` unless ``config_file`` describes the variant's architecture and factors."""
    found = read_config(f"sd-vae {variant.name}", config_file)
    mismatched = []
    defaults = inspect.signature(import_diffusers().AutoencoderKL.__init__).parameters
    for key in CHECKED_KEYS:
        value, expected = found.get(key, defaults[key].default), variant.config[key]
        value = list(value) if isinstance(value, tuple) else value
        if value != expected:  # JSON numbers parse to the same floats as the literals here
            mismatched.append(f"{key}={value!r} (expected {expected!r})")
    if mismatched:
        raise WeightsError(
            f"sd-vae {variant.name}: {config_file} is not the {variant.name} architecture: "
            f"{', '.join(mismatched)}. Pick the matching variant, or " + how_to_supply(variant)
        )


#: diffusers ≤ 0.13 saved attention projections under these names (e.g. sd-vae-ft-mse's files).
_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def state_dict_to_current_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the mid-block attention keys of older diffusers files to the current names."""
    pattern = re.compile(r"(\.attentions\.\d+\.)(query|key|value|proj_attn)(\.(?:weight|bias))$")
    return {pattern.sub(lambda m: m[1] + _LEGACY_ATTENTION[m[2]] + m[3], k): v for k, v in state.items()}


def load_autoencoder(variant: VaeVariant, resolved: ResolvedFolder) -> torch.nn.Module:
    """The variant's ``AutoencoderKL`` with the resolved weights, float32, eval mode."""
    if resolved.config_file is not None:
        check_config(variant, resolved.config_file)
    state: dict[str, torch.Tensor] = {}
    for path in resolved.files:
        state.update(load_checkpoint(path))
    model = build_autoencoder(variant, device="meta")  # no random init: every tensor is replaced
    what = f"a diffusers AutoencoderKL state dict of the {variant.name} architecture"
    return load_state_strictly(
        model,
        state_dict_to_current_keys(state),
        f"sd-vae {variant.name}",
        resolved.files,
        what,
        how_to_supply(variant),
    )


def files_sha256(paths: tuple[Path, ...]) -> str:
    """sha256 of one weights file; for several, sha256 over their ``<sha256>  <name>`` lines."""
    if len(paths) == 1:
        return file_sha256(paths[0])
    lines = sorted(f"{file_sha256(p)}  {p.name}\n" for p in paths)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


#: The family name papers and TokBench's table use for each release.
FAMILIES = {
    "sd-ft-mse": "SD VAE (ft-MSE)",
    "sd-ft-ema": "SD VAE (ft-EMA)",
    "sdxl": "SD-XL VAE",
    "sd35": "SD-3.5 VAE",
    "flux1": "FLUX.1 VAE",
}


class DiffusersVae(NetworkAdapter, Tokenizer):
    """A latent-diffusion VAE as a tokbench tokenizer: images in [0, 1] → continuous latents → images.

    ``variant`` names a release (``VARIANTS``). ``weights`` is a local weights file, VAE folder,
    repository snapshot or hub cache; without it the weights come from the hub (``revision`` pins a
    commit). ``random_init`` builds the real architecture with seeded random weights, for tests only.

    Images are mapped to [-1, 1]; the payload is the posterior mode (its mean), or with ``sample``
    a draw from torch's global RNG. ``bits`` is None (continuous latents have no defined size);
    ``num_tokens`` is the latent height × width. Outputs are mapped back and clamped to [0, 1].
    Height and width must be multiples of the downsampling factor (8).
    """

    version: ClassVar[str] = "1"

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per release (``VARIANTS``): latent positions at the config's sample size."""
        return tuple(
            ModelCard(
                family=FAMILIES[name],
                spec=f"sd-vae:variant={name}",
                kind="continuous",
                tokens=(int(v.config["sample_size"]) // v.downsampling_factor) ** 2,
                downsampling=v.downsampling_factor,
                resolution=int(v.config["sample_size"]),
                hub_id=v.hub_id,
                verification="library: diffusers AutoencoderKL",
                note=f"{v.latent_channels} latent channels"
                + (f"; folder {v.subfolder}/" if v.subfolder else "")
                + ("; gated on the hub" if v.gated else ""),
            )
            for name, v in VARIANTS.items()
        )

    def __init__(
        self,
        variant: str = "sd-ft-mse",
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
        sample: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"sd-vae: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        self.variant = spec
        self.sample = bool(sample)
        self.commit: str | None = None
        if random_init:
            if weights is not None or revision is not None:
                raise ConfigError(
                    "sd-vae: random_init=True builds random weights; drop weights= and revision="
                )
            logger.warning("sd-vae %s: random weights (seed %d), for tests only", variant, RANDOM_INIT_SEED)
            model, self._sha256 = build_autoencoder(spec), None
            self.source = f"random_init(seed={RANDOM_INIT_SEED})"
        else:
            import_diffusers()  # fail on a missing package before looking for weights
            resolved = resolve_weights(spec, weights, revision)
            self._sha256 = files_sha256(resolved.files)
            if spec.sha256 is not None and self._sha256 != spec.sha256:
                raise WeightsError(
                    f"sd-vae {variant}: {resolved.files[0]} has sha256 {self._sha256}, expected "
                    f"{spec.sha256}. " + how_to_supply(spec)
                )
            model = load_autoencoder(spec, resolved)
            self.source, self.commit = resolved.source, resolved.commit
        self.model = model.eval().requires_grad_(False)

    def describe(self) -> dict[str, Any]:
        """What the latents are, for records and generator code (factors are not applied here)."""
        spec = self.variant
        return {
            "variant": spec.name,
            "hub_id": spec.hub_id,
            "subfolder": spec.subfolder,
            "commit": self.commit,
            "source": self.source,
            "weights_sha256": self._sha256,
            "latent_channels": spec.latent_channels,
            "downsampling_factor": spec.downsampling_factor,
            "scaling_factor": spec.scaling_factor,
            "shift_factor": spec.shift_factor,
            "sample": self.sample,
            "licence": spec.licence,
            "gated": spec.gated,
        }

    def encode(self, images: torch.Tensor) -> Encoded:
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
                f"sd-vae {self.variant.name}: encode expects float32 images [N, 3, H, W] in [0, 1] "
                f"with H and W multiples of {f}, got {describe_value(images)}"
            )
        with torch.inference_mode():
            posterior = self.model.encode(images.to(self._device) * 2.0 - 1.0).latent_dist
            latents = posterior.sample() if self.sample else posterior.mode()
        h, w = latents.shape[-2:]
        return Encoded(payload=latents.float().clone(), bits=None, num_tokens=int(h * w))

    def decode(self, encoded: Encoded) -> torch.Tensor:
        latents, c = encoded.payload, self.variant.latent_channels
        if not (
            isinstance(latents, torch.Tensor)
            and latents.dtype == torch.float32
            and latents.ndim == 4
            and latents.shape[1] == c
        ):
            raise ConfigError(
                f"sd-vae {self.variant.name}: decode expects float32 latents [N, {c}, h, w], "
                f"got {describe_value(latents)}"
            )
        with torch.inference_mode():
            pixels = self.model.decode(latents.to(self._device)).sample
            pixels = ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        return pixels.clone()  # outside inference mode: an ordinary tensor
