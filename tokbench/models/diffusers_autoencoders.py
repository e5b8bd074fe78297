"""Image autoencoders that diffusers ships with their official architecture, as continuous tokenizers:
the latent conventions of each class, the shared adapter, and the generic ``diffusers-autoencoder``.

Each supported class has a ``LatentConvention``: which range it reads images in, where its encoder
output is (a posterior's mode or a plain latent), and how its pipelines turn that output into the
latents a generator works on, and back (the normalisation is applied in ``encode`` and inverted in
``decode`` exactly as the pipelines do, so the payload is the generator's latent):

* ``AutoencoderKL`` (SD, SD-XL, SD-3.5, FLUX.1): ``(z - shift) * scale``, or with ``latents_mean`` and
  ``latents_std`` in the config ``(z - mean) * scale / std``;
* ``AutoencoderDC`` (DC-AE, SANA) and ``AutoencoderKLHunyuanImage``: ``z * scale``;
* ``AutoencoderKLFlux2``: 2×2 patchify, then the VAE's BatchNorm statistics, ``(z - mean) / √(var + eps)``;
* ``AutoencoderKLQwenImage`` (a video VAE: images are one frame, T = 1): ``(z - mean) * (1 / std)``;
* ``AutoencoderRAE``: the model normalises and scales its latents itself; it reads images in [0, 1].

``num_tokens`` is the number of latent positions of the VAE (height × width of its latent grid, before
any patchify of the generator); ``bits`` is None. Named releases are in ``diffusers_autoencoder_zoo``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, Tokenizer
from tokbench.errors import ConfigError
from tokbench.hub import HubModel, ResolvedFolder, resolve_model_folder
from tokbench.models.diffusers_loading import load_state_strictly, read_config
from tokbench.models.diffusers_vae import (
    TESTED_DIFFUSERS,
    files_sha256,
    state_dict_to_current_keys,
)
from tokbench.models.network_adapter import RANDOM_INIT_SEED, NetworkAdapter
from tokbench.models.network_adapter import describe as describe_value
from tokbench.models.titok import load_checkpoint

#: Config keys that only normalise latents: taken from a release's config.json when it has one.
FACTOR_KEYS = ("scaling_factor", "shift_factor", "latents_mean", "latents_std")


def import_diffusers(owner: str) -> Any:
    """The ``diffusers`` module, or a ``ConfigError`` naming ``owner`` and how to install it."""
    try:
        import diffusers
    except ImportError:
        raise ConfigError(
            f"{owner} needs the diffusers package: pip install 'tokbench[diffusers]' "
            f"(or pip install diffusers=={TESTED_DIFFUSERS})"
        ) from None
    return diffusers


def _patchify(z: torch.Tensor) -> torch.Tensor:
    n, c, h, w = z.shape
    return z.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def _unpatchify(z: torch.Tensor) -> torch.Tensor:
    n, c, h, w = z.shape
    return z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


def _scale_only(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    scale = model.config.scaling_factor
    return z / scale if inverse else z * scale


def _kl_factors(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    config = model.config
    scale, shift = config.scaling_factor, config.shift_factor
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(z.device, z.dtype)
        std = torch.tensor(std).view(1, -1, 1, 1).to(z.device, z.dtype)
        return z * std / scale + mean if inverse else (z - mean) * scale / std
    shift = shift or 0.0
    return z / scale + shift if inverse else (z - shift) * scale


def _flux2_batch_norm(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    mean = model.bn.running_mean.view(1, -1, 1, 1).to(z.device, z.dtype)
    std = torch.sqrt(model.bn.running_var.view(1, -1, 1, 1) + model.config.batch_norm_eps).to(
        z.device, z.dtype
    )
    return _unpatchify(z * std + mean) if inverse else (_patchify(z) - mean) / std


def _qwen_mean_std(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    config = model.config
    mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1).to(z.device, z.dtype)
    inverse_std = 1.0 / torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1).to(z.device, z.dtype)
    return z / inverse_std + mean if inverse else (z - mean) * inverse_std


def _identity(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    return z


@dataclass(frozen=True)
class LatentConvention:
    """How one diffusers class's pipelines encode images to generator latents and decode them."""

    class_name: str
    #: ``(model, latents, inverse)`` → normalised latents (inverse: back to the VAE's own latents).
    normalise: Callable[[Any, torch.Tensor, bool], torch.Tensor]
    #: Config → spatial downsampling factor of the VAE latent grid.
    downsampling: Callable[[Mapping[str, Any]], int]
    #: Images in [-1, 1] (True) or in [0, 1] (False).
    signed: bool = True
    #: The encoder returns a posterior (``latent_dist``, its mode is used) rather than ``latent``.
    posterior: bool = True
    #: A video VAE: N×C×T×H×W with one frame.
    frames: bool = False
    #: Config keys that are latent-normalisation factors, recorded with every run.
    factor_keys: tuple[str, ...] = ("scaling_factor",)


def _levels(key: str) -> Callable[[Mapping[str, Any]], int]:
    return lambda config: 2 ** (len(config[key]) - 1)


#: The image autoencoder classes the adapters accept, by ``_class_name``.
CONVENTIONS: dict[str, LatentConvention] = {
    c.class_name: c
    for c in (
        LatentConvention(
            "AutoencoderKL",
            _kl_factors,
            _levels("block_out_channels"),
            factor_keys=("scaling_factor", "shift_factor", "latents_mean", "latents_std"),
        ),
        LatentConvention(
            "AutoencoderDC", _scale_only, _levels("encoder_block_out_channels"), posterior=False
        ),
        LatentConvention(
            "AutoencoderKLFlux2",
            _flux2_batch_norm,
            _levels("block_out_channels"),
            factor_keys=("batch_norm_eps", "patch_size"),
        ),
        LatentConvention(
            "AutoencoderKLQwenImage",
            _qwen_mean_std,
            lambda config: 2 ** len(config["temperal_downsample"]),
            frames=True,
            factor_keys=("latents_mean", "latents_std"),
        ),
        LatentConvention(
            "AutoencoderKLHunyuanImage", _scale_only, lambda config: int(config["spatial_compression_ratio"])
        ),
        LatentConvention(
            "AutoencoderRAE",
            _identity,
            lambda config: int(config["patch_size"]),
            signed=False,
            posterior=False,
            factor_keys=("scaling_factor", "latents_mean", "latents_std"),
        ),
    )
}


def convention_for(class_name: str, owner: str) -> LatentConvention:
    """The convention of ``class_name``, or a ``ConfigError`` naming it and the supported classes."""
    if class_name not in CONVENTIONS:
        raise ConfigError(
            f"{owner}: {class_name!r} is not a supported diffusers image autoencoder (video, audio and "
            f"other classes are refused); supported: {', '.join(CONVENTIONS)}"
        )
    return CONVENTIONS[class_name]


def full_config(class_name: str, config: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``config``'s constructor arguments, every absent one at the installed class's default."""
    cls = getattr(import_diffusers(owner), class_name)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind in named
    }
    missing = [
        name for name, p in parameters.items() if p.default is inspect.Parameter.empty and name not in config
    ]
    if missing:
        raise ConfigError(f"{owner}: the {class_name} config lacks {', '.join(missing)}")
    return {name: config.get(name, p.default) for name, p in parameters.items()}


def build_autoencoder(
    class_name: str, config: Mapping[str, Any], owner: str, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The diffusers ``class_name`` built from ``config`` with seeded random float32 weights (on the
    ``meta`` device: shapes only)."""
    cls = getattr(import_diffusers(owner), class_name)
    arguments = full_config(class_name, config, owner)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            model = cls(**arguments)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"{owner}: cannot build {class_name} from its config: {exc}") from None
    return model.float()


def load_autoencoder(
    class_name: str, config: Mapping[str, Any], resolved: ResolvedFolder, owner: str, how_to_supply: str
) -> torch.nn.Module:
    """``class_name`` built from ``config`` with the resolved weights (every key and shape matching),
    float32. Keys the class ignores on load are dropped; a class with non-persistent buffers (computed
    at construction) is built on the CPU instead of the ``meta`` device."""
    state: dict[str, torch.Tensor] = {}
    for path in resolved.files:
        state.update(load_checkpoint(path))
    model = build_autoencoder(class_name, config, owner, device="meta")
    ignored = getattr(type(model), "_keys_to_ignore_on_load_unexpected", None) or []
    state = {k: v for k, v in state.items() if k not in ignored}
    if set(dict(model.named_buffers())) - set(model.state_dict()):
        model = build_autoencoder(class_name, config, owner, device="cpu")
    if class_name == "AutoencoderKL":
        state = state_dict_to_current_keys(state)
    what = f"a diffusers {class_name} state dict of this architecture"
    return load_state_strictly(model, state, owner, resolved.files, what, how_to_supply)


class DiffusersModel(NetworkAdapter):
    """What the image and video diffusers adapters share: the wrapped model and its weights' provenance
    (subclasses set ``convention``, a class's ``LatentConvention`` or ``VideoConvention``)."""

    label: str
    source: str
    commit: str | None

    def _provenance(self) -> dict[str, Any]:
        """The class and where its weights came from, the first entries of ``describe``."""
        return {
            "class_name": self.convention.class_name,
            "source": self.source,
            "commit": self.commit,
            "weights_sha256": self._sha256,
        }


class DiffusersAutoencoderBase(DiffusersModel, Tokenizer):
    """A diffusers image autoencoder as a continuous tokenizer: images in [0, 1] → generator latents
    (the pipeline's normalisation applied) → images in [0, 1], clamped.

    Height and width must be multiples of the downsampling factor (an RAE takes only its decoder's
    image size). The payload is float32 N×C×h×w.
    """

    version: ClassVar[str] = "1"

    convention: LatentConvention
    #: The constructor arguments the model was built from (every one, defaults filled in).
    config: dict[str, Any]

    def _attach(self, model: torch.nn.Module, convention: LatentConvention, label: str) -> None:
        self.model = model.eval().requires_grad_(False)
        self.convention = convention
        self.config = dict(model.config)
        self.label = label

    @property
    def downsampling_factor(self) -> int:
        """Spatial downsampling of the VAE latent grid."""
        return self.convention.downsampling(self.config)

    def factors(self) -> dict[str, Any]:
        """The latent-normalisation factors in use (from the config the model was built from)."""
        return {key: plain_config_value(self.config.get(key)) for key in self.convention.factor_keys}

    def describe(self) -> dict[str, Any]:
        """The class, where its weights came from and the latent normalisation, for records."""
        return {
            **self._provenance(),
            "downsampling_factor": self.downsampling_factor,
            "normalisation": self.factors(),
        }

    def _check_images(self, images: Any) -> None:
        f = self.downsampling_factor
        side = getattr(self.model, "decoder_image_size", None)  # an RAE decodes one image size
        fits = (
            isinstance(images, torch.Tensor)
            and images.dtype == torch.float32
            and images.ndim == 4
            and images.shape[1] == 3
            and images.shape[2] % f == 0
            and images.shape[3] % f == 0
            and (side is None or tuple(images.shape[2:]) == (side, side))
        )
        if not fits:
            size = f"{side}×{side}" if side is not None else f"H and W multiples of {f}"
            raise ConfigError(
                f"{self.label}: encode expects float32 images [N, 3, H, W] in [0, 1] with {size}, "
                f"got {describe_value(images)}"
            )

    def encode(self, images: torch.Tensor) -> Encoded:
        self._check_images(images)
        convention = self.convention
        with torch.inference_mode():
            x = images.to(self._device)
            x = x * 2.0 - 1.0 if convention.signed else x
            x = x[:, :, None] if convention.frames else x
            output = self.model.encode(x)
            latents = output.latent_dist.mode() if convention.posterior else output.latent
            latents = latents[:, :, 0] if convention.frames else latents
            h, w = latents.shape[-2:]
            payload = convention.normalise(self.model, latents, False)
        return Encoded(payload=payload.float().clone(), bits=None, num_tokens=int(h * w))

    def decode(self, encoded: Encoded) -> torch.Tensor:
        latents = encoded.payload
        if not (isinstance(latents, torch.Tensor) and latents.dtype == torch.float32 and latents.ndim == 4):
            raise ConfigError(
                f"{self.label}: decode expects float32 latents [N, C, h, w], got {describe_value(latents)}"
            )
        convention = self.convention
        with torch.inference_mode():
            z = convention.normalise(self.model, latents.to(self._device), True)
            z = z[:, :, None] if convention.frames else z
            pixels = self.model.decode(z).sample
            pixels = pixels[:, :, 0] if convention.frames else pixels
            pixels = (pixels.float() + 1.0) / 2.0 if convention.signed else pixels.float()
            pixels = pixels.clamp(0.0, 1.0)
        return pixels.clone()  # outside inference mode: an ordinary tensor


def plain_config_value(value: Any) -> Any:
    """Tuples as lists, recursively: a config value as JSON holds it."""
    return [plain_config_value(v) for v in value] if isinstance(value, (list, tuple)) else value


def _generic_how_to_supply(model_name: str, repo: str, subfolder: str) -> str:
    where = repo + (f" (subfolder {subfolder}/)" if subfolder else "")
    return (
        f"Supply the weights with --weights PATH (model spec {model_name}:repo=ORG/NAME,weights=PATH) or "
        "repo=/path/to/folder: a folder holding config.json and diffusion_pytorch_model.safetensors, a "
        f"downloaded snapshot of {where}, or a hub cache; or set HF_HOME (or HF_HUB_CACHE) to a cache that "
        f"holds {repo}."
    )


class FromRepository:
    """The generic adapters' constructor and record: any class ``find_convention`` accepts, read from
    a hub repository or a local folder (subclasses set ``model_name`` and ``find_convention``).

    ``repo`` is a hub id (``ORG/NAME``) or a local folder; ``subfolder`` the model's folder inside it
    (``vae`` for a pipeline repository); ``revision`` pins a hub commit; ``weights`` a local snapshot,
    folder or hub cache for a hub ``repo`` (offline). The class comes from config.json's ``_class_name``.
    """

    #: Registered model name, e.g. "diffusers-autoencoder".
    model_name: ClassVar[str] = ""
    #: ``(class_name, owner)`` → the class's convention, or a ``ConfigError`` naming the class.
    find_convention: ClassVar[Callable[[str, str], Any]]

    def __init__(
        self,
        repo: str,
        subfolder: str = "",
        revision: str | None = None,
        weights: str | None = None,
    ) -> None:
        owner = f"{self.model_name} {repo}"
        import_diffusers(owner)
        how = _generic_how_to_supply(self.model_name, repo, subfolder)
        local = Path(repo).expanduser()
        if weights is None and local.is_dir():
            weights = str(local)
        hub_model = HubModel(owner, repo, subfolder, how)
        resolved = resolve_model_folder(hub_model, weights, revision)
        if resolved.config_file is None:
            raise ConfigError(f"{owner}: no config.json beside {resolved.files[0]}; " + how)
        config = read_config(owner, resolved.config_file)
        class_name = str(config.get("_class_name", ""))
        convention = self.find_convention(class_name, owner)
        self._sha256 = files_sha256(resolved.files)
        model = load_autoencoder(class_name, config, resolved, owner, how)
        self.source, self.commit = resolved.source, resolved.commit
        self.repo, self.subfolder = repo, subfolder
        self._attach(model, convention, owner)

    def describe(self) -> dict[str, Any]:
        """The repository, the class, where its weights came from and the latent normalisation."""
        return {"repo": self.repo, "subfolder": self.subfolder, **super().describe()}


class DiffusersAutoencoder(FromRepository, DiffusersAutoencoderBase):
    """Any supported diffusers image autoencoder, read from a hub repository or a local folder
    (arguments: ``FromRepository``); classes other than ``CONVENTIONS``' raise a ``ConfigError``
    naming the class."""

    model_name = "diffusers-autoencoder"
    find_convention = staticmethod(convention_for)
