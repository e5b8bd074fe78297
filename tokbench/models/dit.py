"""DiT (Peebles & Xie, "Scalable Diffusion Models with Transformers", ICCV 2023) as a tokbench
generator: diffusers' ``DiTTransformer2DModel`` and ``AutoencoderKL`` from the ``facebook/DiT-XL-2-256``
and ``-512`` hub pipelines, sampled class-conditionally on ImageNet-1k.

The sampling loop follows ``diffusers.DiTPipeline.__call__`` (classifier-free guidance on a doubled
batch, null class = ``num_embeds_ada_norm``, VAE decode of ``latents / scaling_factor``) with two
changes that make every image depend only on its own seed: the initial latents *and* the noise of
every ancestral step are drawn from one ``torch.Generator`` per image, and the scheduler is stepped on
the conditional half only. Samplers:

- ``ddpm`` (default): ancestral sampling with the learned variance (``learned_range``) on
  ``steps`` timesteps spaced as ``linspace(0, 999, steps).round()``, which is how the official DiT
  code respaces its 1000-step linear schedule; with 250 steps this is the paper's sampler.
- ``ddim``: deterministic DDIM (eta 0), diffusers' default timestep spacing.

``guidance_channels=3`` (default) guides only the first three of the four latent channels, as the
official ``sample.py`` does "for exact reproducibility" of the paper's numbers; ``guidance_channels=4``
guides all of them, as ``DiTPipeline`` does. ``guidance_scale=1`` disables guidance.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Generator, ModelCard
from tokbench.errors import ConfigError, WeightsError
from tokbench.hub import HubModel, ResolvedFolder, resolve_model_folder
from tokbench.models.diffusers_loading import load_state_strictly, read_config
from tokbench.models.diffusers_vae import VARIANTS as VAE_VARIANTS
from tokbench.models.diffusers_vae import (
    VaeVariant,
    build_autoencoder,
    files_sha256,
    import_diffusers,
    load_autoencoder,
)
from tokbench.models.titok import load_checkpoint

logger = logging.getLogger(__name__)

SAMPLERS = ("ddpm", "ddim")
RANDOM_INIT_SEED = 0
MAX_STEPS = 1000
#: The DiT training schedule (``gaussian_diffusion.get_named_beta_schedule("linear", 1000)``).
TRAIN_SCHEDULE: Mapping[str, Any] = MappingProxyType(
    {
        "num_train_timesteps": 1000,
        "beta_start": 0.0001,
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "prediction_type": "epsilon",
        "clip_sample": False,
    }
)
#: Transformer config keys that fix the architecture; a hub ``config.json`` must agree on them.
CHECKED_KEYS = (
    *("num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "num_layers"),
    *("sample_size", "patch_size", "num_embeds_ada_norm", "norm_type", "activation_fn"),
)
_PAPER = "Peebles & Xie. Scalable Diffusion Models with Transformers. ICCV 2023, arXiv:2212.09748"


def transformer_config(sample_size: int) -> dict[str, Any]:
    """The ``DiTTransformer2DModel`` config of DiT-XL/2 (28 layers, 16 heads × 72, patch 2, learned
    sigma) for a latent of ``sample_size`` × ``sample_size``."""
    return {
        "num_attention_heads": 16,
        "attention_head_dim": 72,
        "in_channels": 4,
        "out_channels": 8,
        "num_layers": 28,
        "sample_size": sample_size,
        "patch_size": 2,
        "num_embeds_ada_norm": 1000,
        "norm_type": "ada_norm_zero",
        "norm_elementwise_affine": False,
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
    }


@dataclass(frozen=True)
class DiTVariant:
    """One released DiT pipeline on the hub: transformer config, VAE and provenance."""

    name: str
    hub_id: str
    resolution: int
    transformer: Mapping[str, Any] = field(hash=False)
    #: The VAE in the pipeline's ``vae/`` folder (diffusers' conversion script default: ft-EMA).
    vae: VaeVariant = field(hash=False)
    licence: str = "CC-BY-NC-4.0"
    paper: str = _PAPER
    #: Hub commit loaded when none is given; None loads ``main`` and records the resolved commit.
    revision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "transformer", MappingProxyType(dict(self.transformer)))

    @property
    def vae_in_repository(self) -> VaeVariant:
        """The VAE variant as it sits in this repository's ``vae/`` folder (for loading)."""
        return VaeVariant(
            f"{self.name}/vae",
            self.hub_id,
            "vae",
            dict(self.vae.config),
            self.vae.licence,
            False,
            self.vae.paper,
        )


VARIANTS: dict[str, DiTVariant] = {
    v.name: v
    for v in (
        DiTVariant(
            "xl-2-256", "facebook/DiT-XL-2-256", 256, transformer_config(32), VAE_VARIANTS["sd-ft-ema"]
        ),
        DiTVariant(
            "xl-2-512", "facebook/DiT-XL-2-512", 512, transformer_config(64), VAE_VARIANTS["sd-ft-ema"]
        ),
    )
}


def make_scheduler(sampler: str, steps: int) -> Any:
    """A fresh diffusers scheduler for ``sampler`` with ``steps`` timesteps set."""
    diffusers = import_diffusers()
    if sampler == "ddpm":
        scheduler = diffusers.DDPMScheduler(
            **TRAIN_SCHEDULE, variance_type="learned_range", timestep_spacing="linspace"
        )
    elif sampler == "ddim":
        scheduler = diffusers.DDIMScheduler(**TRAIN_SCHEDULE, set_alpha_to_one=True)
    else:
        raise ConfigError(f"dit: sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    scheduler.set_timesteps(steps)
    return scheduler


def how_to_supply(variant: DiTVariant) -> str:
    """The ways to give DiT weights, for error messages."""
    return (
        f"Supply the weights with --weights PATH (model spec dit:variant={variant.name},weights=PATH): a "
        f"downloaded snapshot of {variant.hub_id} (a folder with transformer/ and vae/, each holding "
        "config.json and diffusion_pytorch_model.safetensors), or a hub cache that holds it; or set HF_HOME "
        "(or HF_HUB_CACHE) to such a cache."
    )


def resolve_files(
    variant: DiTVariant, weights: str | os.PathLike | None, revision: str | None
) -> dict[str, ResolvedFolder]:
    """The ``transformer`` and ``vae`` folders of the pipeline: from a snapshot folder, a hub cache
    directory or the hub (``tokbench.hub``)."""
    if weights is not None and not Path(weights).expanduser().is_dir():
        raise WeightsError(
            f"dit {variant.name}: weights={str(weights)!r} is not a directory (a DiT pipeline has two weight "
            "files, transformer and VAE). " + how_to_supply(variant)
        )
    return {
        component: resolve_model_folder(
            HubModel(f"dit {variant.name} ({component})", variant.hub_id, component, how_to_supply(variant)),
            weights,
            revision or variant.revision,
        )
        for component in ("transformer", "vae")
    }


def load_transformer(variant: DiTVariant, weights: Path, config_file: Path | None) -> torch.nn.Module:
    """The variant's ``DiTTransformer2DModel`` with the given weights (config and keys checked)."""
    if config_file is not None:
        found = read_config(f"dit {variant.name}", config_file)
        defaults = inspect.signature(import_diffusers().DiTTransformer2DModel.__init__).parameters
        values = {key: found.get(key, defaults[key].default) for key in CHECKED_KEYS}  # absent: default
        wrong = [
            f"{key}={value!r} (expected {variant.transformer[key]!r})"
            for key, value in values.items()
            if value != variant.transformer[key]
        ]
        if wrong:
            raise WeightsError(
                f"dit {variant.name}: {config_file} is not the DiT-XL/2 {variant.resolution} transformer: "
                f"{', '.join(wrong)}. Pick the matching variant, or " + how_to_supply(variant)
            )
    # Built on the CPU, not on ``meta``: the sin-cos position table is a non-persistent buffer that
    # no state dict holds. Its random weights are replaced by the file's.
    what = f"a DiTTransformer2DModel state dict of the {variant.name} architecture"
    return load_state_strictly(
        build_transformer(variant.transformer),
        load_checkpoint(weights),
        f"dit {variant.name}",
        (weights,),
        what,
        how_to_supply(variant),
    )


def build_transformer(config: Mapping[str, Any], device: str | torch.device = "cpu") -> torch.nn.Module:
    """A ``DiTTransformer2DModel`` of ``config`` with seeded random float32 weights (on ``meta``:
    shapes only)."""
    transformer_class = import_diffusers().DiTTransformer2DModel
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = transformer_class(**dict(config))
    return model.float()


def tensors_sha256(*modules: torch.nn.Module) -> str:
    """sha256 over the state dicts of ``modules`` (names, dtypes, shapes and bytes): the identity of
    weights that exist only in memory (random or caller-built)."""
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        for name, tensor in sorted(module.state_dict().items()):
            data = tensor.detach().to("cpu").contiguous()
            digest.update(f"{index}:{name}:{data.dtype}:{tuple(data.shape)}\n".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


class DiT(Generator):
    """A class-conditional DiT pipeline (transformer + VAE) sampled with tokbench's per-image seeds.

    ``variant`` names a release (``VARIANTS``); ``weights`` is a pipeline snapshot folder or a hub
    cache directory, else the hub is used (``revision`` pins a commit). ``random_init`` builds the real
    architecture with seeded random weights (tests only; it is large). Sampling settings:
    ``guidance_scale`` (>= 1; 1 = no guidance), ``steps`` (1 … 1000), ``sampler`` (``ddpm``, ``ddim``)
    and ``guidance_channels`` (latent channels guided; 3 as in the official code, 4 as in diffusers).
    """

    version: ClassVar[str] = "1"
    sampling_settings: ClassVar[tuple[str, ...]] = ("guidance_scale", "steps", "sampler", "guidance_channels")

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per released pipeline (``VARIANTS``): tokens are the transformer's patches."""
        return tuple(
            ModelCard(
                family="DiT-XL/2",
                spec=f"dit:variant={name}",
                kind="generator",
                tokens=(v.transformer["sample_size"] // v.transformer["patch_size"]) ** 2,
                downsampling=8 * v.transformer["patch_size"],
                resolution=v.resolution,
                hub_id=v.hub_id,
                verification="library: diffusers DiTTransformer2DModel",
                note="class-conditional (ImageNet-1k); VAE: SD ft-EMA",
            )
            for name, v in VARIANTS.items()
        )

    def __init__(
        self,
        variant: str = "xl-2-256",
        guidance_scale: float = 1.5,
        steps: int = 250,
        sampler: str = "ddpm",
        guidance_channels: int = 3,
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"dit: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        self._check_settings(
            guidance_scale, steps, sampler, guidance_channels, int(spec.transformer["in_channels"])
        )
        if random_init:
            if weights is not None or revision is not None:
                raise ConfigError("dit: random_init=True builds random weights; drop weights= and revision=")
            logger.warning("dit %s: random weights (seed %d), for tests only", variant, RANDOM_INIT_SEED)
            transformer = build_transformer(spec.transformer)
            vae = build_autoencoder(spec.vae)
            self._setup(transformer, vae, f"random_init(seed={RANDOM_INIT_SEED})", None, None)
        else:
            import_diffusers()  # fail on a missing package before looking for weights
            resolved = resolve_files(spec, weights, revision)
            transformer_folder, vae_folder = resolved["transformer"], resolved["vae"]
            sha = files_sha256((*transformer_folder.files, *vae_folder.files))
            transformer = load_transformer(spec, transformer_folder.files[0], transformer_folder.config_file)
            vae = load_autoencoder(spec.vae_in_repository, vae_folder)
            self._setup(transformer, vae, transformer_folder.source, transformer_folder.commit, sha)
        self.variant = spec

    @classmethod
    def from_modules(
        cls,
        transformer: torch.nn.Module,
        vae: torch.nn.Module,
        guidance_scale: float = 1.5,
        steps: int = 250,
        sampler: str = "ddpm",
        guidance_channels: int = 3,
    ) -> DiT:
        """A DiT around caller-built diffusers modules (e.g. tiny random ones for tests); its
        ``weights_sha256`` is the sha256 of their tensors."""
        self = cls.__new__(cls)
        channels = int(transformer.config.in_channels)
        self._check_settings(guidance_scale, steps, sampler, guidance_channels, channels)
        self._setup(transformer, vae, "modules", None, None)
        self.variant = None
        return self

    def _check_settings(
        self, guidance_scale: float, steps: int, sampler: str, guidance_channels: int, channels: int
    ) -> None:
        scale = float(guidance_scale) if isinstance(guidance_scale, int | float) else math.nan
        if isinstance(guidance_scale, bool) or not math.isfinite(scale) or scale < 1.0:
            raise ConfigError(
                f"dit: guidance_scale={guidance_scale!r} is not supported: DiT's classifier-free guidance "
                "takes a finite scale >= 1 (1 = no guidance; 1.5 is the paper's setting)"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise ConfigError(f"dit: steps must be an int in [1, {MAX_STEPS}], got {steps!r}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"dit: sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if isinstance(guidance_channels, bool) or guidance_channels not in range(1, channels + 1):
            raise ConfigError(
                f"dit: guidance_channels must be an int in [1, {channels}] (latent channels), "
                f"got {guidance_channels!r}"
            )
        self.guidance_scale, self.steps, self.sampler = scale, steps, sampler
        self.guidance_channels = guidance_channels

    def _setup(
        self,
        transformer: torch.nn.Module,
        vae: torch.nn.Module,
        source: str,
        commit: str | None,
        sha: str | None,
    ) -> None:
        self.transformer = transformer.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.source, self.commit = source, commit
        self._sha256 = sha if sha is not None else tensors_sha256(self.transformer, self.vae)

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the weight files (transformer, VAE); of the tensors for in-memory weights."""
        return self._sha256

    @property
    def num_classes(self) -> int:
        return int(self.transformer.config.num_embeds_ada_norm)

    @property
    def tokenizer(self) -> str | None:
        """The tokenizer (VAE) the generator was trained on, as a tokbench model spec."""
        return None if self.variant is None else f"sd-vae:variant={self.variant.vae.name}"

    def describe(self) -> dict[str, Any]:
        """Where the weights came from, for records."""
        return {
            "variant": None if self.variant is None else self.variant.name,
            "hub_id": None if self.variant is None else self.variant.hub_id,
            "commit": self.commit,
            "source": self.source,
            "weights_sha256": self._sha256,
            "tokenizer": self.tokenizer,
            "licence": None if self.variant is None else self.variant.licence,
        }

    def to(self, device: torch.device | str) -> DiT:
        self.transformer.to(device)
        self.vae.to(device)
        return self

    def sample(self, conditions: list[Any], seeds: list[int]) -> torch.Tensor:
        labels = self._labels(conditions)
        if len(seeds) != len(labels):
            raise ConfigError(f"dit: got {len(labels)} class labels but {len(seeds)} seeds")
        device = next(self.transformer.parameters()).device
        generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
        channels, size = int(self.transformer.config.in_channels), int(self.transformer.config.sample_size)
        scheduler = make_scheduler(self.sampler, self.steps)
        latents = torch.cat([torch.randn((1, channels, size, size), generator=g) for g in generators])
        latents = (latents * scheduler.init_noise_sigma).to(device)
        classes = torch.tensor(labels, dtype=torch.long, device=device)
        guided = self.guidance_scale > 1.0
        if guided:
            classes = torch.cat([classes, torch.full_like(classes, self.num_classes)])
        with torch.inference_mode():
            for t in scheduler.timesteps:
                model_input = scheduler.scale_model_input(latents, t)
                if guided:
                    model_input = torch.cat([model_input, model_input])
                timesteps = t.reshape(1).to(device).expand(model_input.shape[0])
                output = self.transformer(model_input, timestep=timesteps, class_labels=classes).sample
                if guided:
                    output = self._guide(output)
                if self.sampler == "ddpm":
                    step_generator = generators if len(generators) > 1 else generators[0]
                    latents = scheduler.step(output, t, latents, generator=step_generator).prev_sample
                else:
                    latents = scheduler.step(output[:, :channels], t, latents).prev_sample
            images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
            images = (images.float() / 2 + 0.5).clamp(0.0, 1.0)
        return images.clone()

    def _guide(self, output: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance on the first ``guidance_channels`` channels; the rest (the other
        latent channels and the learned variance) come from the conditional half."""
        conditional, unconditional = output.chunk(2)
        k = self.guidance_channels
        guided = unconditional[:, :k] + self.guidance_scale * (conditional[:, :k] - unconditional[:, :k])
        return torch.cat([guided, conditional[:, k:]], dim=1)

    def _labels(self, conditions: list[Any]) -> list[int]:
        labels = list(conditions)
        bad = [
            c
            for c in labels
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < self.num_classes
        ]
        if bad or not labels:
            raise ConfigError(
                f"dit: conditions must be a non-empty list of class labels in [0, {self.num_classes}), "
                f"got {bad[:3] if bad else labels!r}"
            )
        return labels
