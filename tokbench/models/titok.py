"""TiTok, the 1D image tokenizer of "An Image is Worth 32 Tokens for Reconstruction and Generation"
(Yu et al., NeurIPS 2024; code ``bytedance/1d-tokenizer``): its config, the nine official variants,
weight resolution and the ``TiTok`` tokenizer adapter.

The network itself is our own implementation (``tokbench.models.titok_modules``) whose state dict
keys equal the official checkpoints'. Weights come from an explicit file, a hub cache directory, or
the Hugging Face hub (``huggingface_hub``, imported lazily); random weights only on request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.adapters.discrete import NOT_APPLICABLE, DiscreteTokenizer
from tokbench.errors import ConfigError, WeightsError
from tokbench.hub import first_line, hub_download, hub_unavailable, import_hub, offline_reason
from tokbench.models.checkpoints import check_sha256, load_checkpoint
from tokbench.models.network_adapter import (
    RANDOM_INIT_SEED,
    RANDOM_INIT_SOURCE,
    NetworkAdapter,
    check_random_init,
    describe,
)
from tokbench.models.titok_modules import (  # noqa: F401  (re-exported)
    GaussianPosterior,
    TiTokConfig,
    TiTokModel,
    ViTConfig,
)
from tokbench.models.titok_pixel_decoder import PixelDecoderConfig

#: Official ViT sizes: width, layers, heads.
OFFICIAL_VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "small": (512, 8, 8),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


def config_from_official(
    config: Mapping[str, Any],
    size_table: Mapping[str, Any] | None = None,
    pixel_decoder: PixelDecoderConfig | None = None,
) -> TiTokConfig:
    """A ``TiTokConfig`` from an official config dict (``model.vq_model.*``,
    ``dataset.preprocessing.crop_size``), with the official defaults for absent keys: quantize_mode
    ``vq``, finetune_decoder True, is_legacy True.

    ``size_table`` adds ViT sizes (name → (width, layers, heads) or a dict with those keys);
    ``pixel_decoder`` replaces the hard-coded 128/256-channel pixel decoder.
    """
    sizes = {**OFFICIAL_VIT_SIZES, **(size_table or {})}
    try:
        vq = config["model"]["vq_model"]
        image_size = int(config["dataset"]["preprocessing"]["crop_size"])

        def vit(which: str) -> ViTConfig:
            size = sizes[vq[f"vit_{which}_model_size"]]
            if isinstance(size, Mapping):
                size = (size["width"], size["num_layers"], size["num_heads"])
            return ViTConfig(*(int(v) for v in size), patch_size=int(vq[f"vit_{which}_patch_size"]))

        mode = vq.get("quantize_mode", "vq")
        return TiTokConfig(
            image_size=image_size,
            encoder=vit("enc"),
            decoder=vit("dec"),
            num_latent_tokens=int(vq["num_latent_tokens"]),
            token_size=int(vq["token_size"]),
            quantize_mode=mode,
            codebook_size=int(vq["codebook_size"]) if mode == "vq" else None,
            use_l2_norm=bool(vq.get("use_l2_norm", False)) if mode == "vq" else False,
            is_legacy=bool(vq.get("is_legacy", True)),
            finetune_decoder=bool(vq.get("finetune_decoder", True)),
            pixel_decoder=pixel_decoder or PixelDecoderConfig(),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            f"official TiTok config lacks or mistypes {exc}; sizes known: {sorted(sizes)}"
        ) from None


PAPER = (
    "Yu, Weber, Deng, Shen, Cremers, Chen. An Image is Worth 32 Tokens for Reconstruction and "
    "Generation. NeurIPS 2024, arXiv:2406.07550"
)
LICENCE = (
    "Apache-2.0 (bytedance/1d-tokenizer code and its hub model cards); the weights are trained on "
    "ImageNet-1k and released for research purposes only"
)


@dataclass(frozen=True)
class TiTokVariant:
    """One official tokenizer: its config and where its weights come from."""

    name: str
    config: TiTokConfig
    #: The official checkpoint file name (``fun-research/TiTok`` on the hub, or a local copy).
    checkpoint_filename: str
    num_parameters: int
    #: rFID on ImageNet-1k val 256×256 as the official README reports it.
    reported_rfid: float
    #: Not pinned: the hub checkpoints could not be fetched here to hash them. The loaded file's
    #: sha256 is always computed and recorded.
    sha256: str | None = None
    licence: str = LICENCE
    paper: str = PAPER
    source: str = (
        "bytedance/1d-tokenizer@942a96f configs/infer/TiTok/titok_<name>.yaml; pixel decoder "
        "hard-coded in modeling/titok.py; is_legacy defaults to True when absent"
    )

    @property
    def hub_id(self) -> str:
        return f"yucornetto/tokenizer_titok_{self.name}_imagenet"


def _vit(size: str) -> ViTConfig:
    return ViTConfig(*OFFICIAL_VIT_SIZES[size], patch_size=16)


def _two_stage(size: str, tokens: int) -> TiTokConfig:
    return TiTokConfig(256, _vit(size), _vit(size), tokens, 12, "vq", 4096, True, True, True)


def _vq8k(encoder: str, tokens: int) -> TiTokConfig:
    return TiTokConfig(256, _vit(encoder), _vit("large"), tokens, 64, "vq", 8192, False)


def _vae(encoder: str, tokens: int) -> TiTokConfig:
    return TiTokConfig(256, _vit(encoder), _vit("large"), tokens, 16, "vae")


#: The official tokenizers, named as in their hub ids; parameter counts from the full-size manifests.
VARIANTS: dict[str, TiTokVariant] = {
    v.name: v
    for v in (
        TiTokVariant("l32", _two_stage("large", 32), "tokenizer_titok_l32.bin", 641_054_735, 2.21),
        TiTokVariant("b64", _two_stage("base", 64), "tokenizer_titok_b64.bin", 204_814_095, 1.70),
        TiTokVariant("s128", _two_stage("small", 128), "tokenizer_titok_s128.bin", 83_674_639, 1.71),
        TiTokVariant("bl64_vq8k", _vq8k("base", 64), "tokenizer_titok_bl64_vq8k.bin", 390_016_148, 2.06),
        TiTokVariant("bl128_vq8k", _vq8k("base", 128), "tokenizer_titok_bl128_vq8k.bin", 390_179_988, 1.49),
        TiTokVariant("sl256_vq8k", _vq8k("small", 256), "tokenizer_titok_sl256_vq8k.bin", 330_260_884, 1.03),
        TiTokVariant("ll32_vae_c16", _vae("large", 32), "titok_ll32_vae_c16.bin", 606_879_604, 1.61),
        TiTokVariant("bl64_vae_c16", _vae("base", 64), "titok_bl64_vae_c16.bin", 389_418_100, 1.25),
        TiTokVariant("bl128_vae_c16", _vae("base", 128), "titok_bl128_vae_c16.bin", 389_581_940, 0.84),
    )
}

#: Weight files of a hub repository, in the order ``PyTorchModelHubMixin`` reads them.
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")


def how_to_supply(variant: TiTokVariant) -> str:
    """The two ways to give TiTok weights, for error messages."""
    return (
        f"Supply the weights as a file with --weights PATH (model spec titok:variant={variant.name},"
        "weights=PATH; safetensors, or a torch .bin/.pt state dict), or as a downloaded hub snapshot of "
        f"{variant.hub_id}: set HF_HOME (or HF_HUB_CACHE) to the cache that holds it, or pass "
        "weights=<the snapshot or hub cache directory>."
    )


def resolve_checkpoint(
    variant: TiTokVariant, weights: str | os.PathLike | None = None, revision: str | None = None
) -> tuple[Path, str]:
    """The checkpoint file to load and where it was found (``file``, ``directory`` or ``hub``)."""
    if weights is None:
        return _from_hub(variant, revision), "hub"
    path = Path(weights).expanduser()
    if path.is_file():
        if revision is not None:
            raise ConfigError(
                f"titok: revision={revision!r} applies to hub downloads, not to the file {path}"
            )
        return path, "file"
    if path.is_dir():
        return _from_directory(path, variant, revision), "directory"
    raise WeightsError(
        f"titok {variant.name}: weights={str(weights)!r} is neither a file nor a directory. "
        + how_to_supply(variant)
    )


def _from_directory(root: Path, variant: TiTokVariant, revision: str | None) -> Path:
    """A weights file in a folder: a plain folder, a snapshot, a hub repo cache folder
    (``models--…``), a hub cache (``HF_HUB_CACHE``) or an ``HF_HOME``."""
    directory = root
    for sub in ("hub", "models--" + variant.hub_id.replace("/", "--")):
        if (directory / sub).is_dir():
            directory = directory / sub
    if (directory / "snapshots").is_dir():
        ref = revision or "main"
        pointer = directory / "refs" / ref
        snapshot = directory / "snapshots" / (pointer.read_text().strip() if pointer.is_file() else ref)
        if not snapshot.is_dir():
            found = sorted(p.name for p in (directory / "snapshots").iterdir())
            raise WeightsError(
                f"titok {variant.name}: {directory} holds no snapshot for revision {ref!r} "
                f"(snapshots: {', '.join(found) or 'none'}). " + how_to_supply(variant)
            )
        directory = snapshot
    elif revision is not None:
        raise ConfigError(f"titok: revision={revision!r} needs a hub cache directory, {root} is not one")
    names = (*HUB_FILENAMES, variant.checkpoint_filename)
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise WeightsError(
        f"titok {variant.name}: no checkpoint in {directory} (looked for {', '.join(names)}). "
        + how_to_supply(variant)
    )


def _from_hub(variant: TiTokVariant, revision: str | None) -> Path:
    label = f"titok {variant.name}"
    client = import_hub(label, variant.hub_id, how_to_supply(variant))
    from huggingface_hub.utils import EntryNotFoundError

    offline = offline_reason()
    errors = []
    for filename in HUB_FILENAMES:
        try:
            return hub_download(client, variant.hub_id, filename, revision, None, offline)
        except EntryNotFoundError as exc:  # not in the repository (or not in the cache): try the next
            errors.append(f"{filename}: {type(exc).__name__}")
        except Exception as exc:  # repository, revision, access or connection: another file won't help
            errors.append(f"{filename}: {first_line(exc)}")
            break
    raise WeightsError(
        f"{label}: no weights given and {variant.hub_id}{hub_unavailable(offline, revision)} "
        f"[{'; '.join(errors)}]. " + how_to_supply(variant)
    )


class TiTok(NetworkAdapter, Tokenizer, DiscreteTokenizer):
    """TiTok as a tokbench tokenizer: images in [0, 1] → 1D tokens (or VAE latents) → images.

    ``variant`` names an official model (``VARIANTS``). ``weights`` is a local checkpoint file
    (safetensors, or a .bin/.pt state dict) or a hub cache / snapshot directory; without it the
    checkpoint comes from the Hugging Face hub (``revision`` pins a commit). ``random_init`` builds
    the real architecture with seeded random weights, for tests only. For VAE variants the payload
    is the posterior mean, or a draw from torch's global RNG when ``vae_sample``.

    VQ: ``bits`` = tokens × log2(codebook size) per image. VAE: ``bits`` is None (continuous latents
    have no defined size) and ``num_tokens`` counts the latent tokens. Outputs are clamped to [0, 1]
    as in the official demo.

    VQ variants are ``DiscreteTokenizer``s (codebook, token indices); on VAE variants those methods
    raise ``ConfigError`` ("not applicable: continuous tokenizer").
    """

    version: ClassVar[str] = "1"
    config: TiTokConfig

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per official tokenizer (``VARIANTS``), verified against the official code's goldens."""
        return tuple(
            ModelCard(
                family="TiTok",
                spec=f"titok:variant={name}",
                kind="discrete" if v.config.quantize_mode == "vq" else "continuous",
                tokens=v.config.num_latent_tokens,
                codebook=v.config.codebook_size,
                resolution=v.config.image_size,
                hub_id=v.hub_id,
                verification="golden: reference/titok",
                note="1-D tokens"
                + ("" if v.config.quantize_mode == "vq" else f", {v.config.token_size} channels"),
            )
            for name, v in VARIANTS.items()
        )

    def __init__(
        self,
        variant: str = "l32",
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
        vae_sample: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"titok: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        if random_init:
            check_random_init("titok", f"titok {variant}", weights, revision)
            model = TiTokModel.random_init(spec.config, seed=RANDOM_INIT_SEED)
            self._setup(model, variant, None, RANDOM_INIT_SOURCE, vae_sample)
            return
        path, source = resolve_checkpoint(spec, weights, revision)
        sha256 = check_sha256(f"titok {variant}", path, spec.sha256, how_to_supply(spec))
        try:
            model = TiTokModel.from_state_dict(spec.config, load_checkpoint(path, sha256))
        except WeightsError as exc:
            raise WeightsError(f"titok {variant}: {path}: {exc}. " + how_to_supply(spec)) from None
        self._setup(model, variant, sha256, f"{source}:{path}", vae_sample)

    @classmethod
    def from_model(
        cls,
        model: TiTokModel,
        name: str = "custom",
        weights_sha256: str | None = None,
        vae_sample: bool = False,
    ) -> TiTok:
        """Wrap a ``TiTokModel`` built elsewhere (a custom config, a golden test model)."""
        adapter = cls.__new__(cls)
        adapter._setup(model, name, weights_sha256, "model", vae_sample)
        return adapter

    def _setup(self, model: TiTokModel, name: str, sha256: str | None, source: str, vae_sample: bool) -> None:
        if vae_sample and model.config.quantize_mode != "vae":
            raise ConfigError(f"titok {name}: vae_sample=True needs a VAE variant (quantize_mode 'vae')")
        self._adopt(model, name, sha256, source)
        self.vae_sample = vae_sample

    def _check_images(self, images: Any) -> None:
        size = self.config.image_size
        if not _is_tensor(images, torch.float32, (3, size, size)):
            raise ConfigError(
                f"titok {self.name}: encode expects float32 images [N, 3, {size}, {size}] in [0, 1] "
                f"(preprocess to {size}×{size}), got {describe(images)}"
            )

    def encode(self, images: torch.Tensor) -> Encoded:
        self._check_images(images)
        with torch.inference_mode():
            out = self.model.encode(images.to(self._device), sample=self.vae_sample)
        count = self.config.num_latent_tokens
        if self.config.quantize_mode == "vae":
            return Encoded(payload=out.clone(), bits=None, num_tokens=count)
        bits = torch.full((out.shape[0],), count * (self.config.bits_per_token or 0.0), dtype=torch.float64)
        return Encoded(payload=out[:, 0, :].clone(), bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        config, payload, n = self.config, encoded.payload, self.config.num_latent_tokens
        if config.quantize_mode == "vq":
            expected = f"int64 token ids [N, {n}] in [0, {config.codebook_size})"
            ok = _is_tensor(payload, torch.int64, (n,)) and (
                payload.numel() == 0
                or 0 <= int(payload.min()) <= int(payload.max()) < (config.codebook_size or 0)
            )
        else:
            expected = f"float32 latents [N, {config.token_size}, 1, {n}]"
            ok = _is_tensor(payload, torch.float32, (config.token_size, 1, n))
        if not ok:
            raise ConfigError(f"titok {self.name}: decode expects {expected}, got {describe(payload)}")
        with torch.inference_mode():
            pixels = self.model.decode_tokens(payload.to(self._device)).clamp(0.0, 1.0)
        return pixels.clone()  # outside inference mode: an ordinary tensor

    @property
    def is_discrete(self) -> bool:
        return self.config.quantize_mode == "vq"

    def _require_codebook(self, method: str) -> None:
        if not self.is_discrete:
            raise ConfigError(f"titok {self.name}: {method}() is {NOT_APPLICABLE} (a VAE variant)")

    def codebook(self) -> torch.Tensor:
        """The K×token_size codebook, l2-normalised when the variant quantises normalised vectors."""
        self._require_codebook("codebook")
        weight = self.model.quantize.embedding.weight.detach()
        return torch.nn.functional.normalize(weight, dim=-1) if self.config.use_l2_norm else weight.clone()

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Token ids int64 [N, num_latent_tokens]: the payload of ``encode``."""
        self._require_codebook("encode_indices")
        return self.encode(images).payload

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids int64 [N, num_latent_tokens] and the encoder outputs they quantise, float32
        [N, num_latent_tokens, token_size] (l2-normalised when the variant normalises)."""
        self._require_codebook("encode_latents")
        self._check_images(images)
        with torch.inference_mode():
            tokens, latents = self.model.encode_latents(images.to(self._device))
        return tokens.clone(), latents.clone()

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from token ids, exactly as ``decode`` would give them."""
        self._require_codebook("decode_indices")
        return self.decode(Encoded(payload=indices))


def _is_tensor(value: Any, dtype: torch.dtype, trailing_shape: tuple[int, ...]) -> bool:
    return (
        isinstance(value, torch.Tensor) and value.dtype == dtype and tuple(value.shape[1:]) == trailing_shape
    )
