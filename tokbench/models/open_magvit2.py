"""Open-MAGVIT2, the lookup-free-quantisation image tokenizer of "Open-MAGVIT2: An Open-Source Project
Toward Democratizing Auto-regressive Visual Generation" (Luo, Shi et al., 2024; code
``TencentARC/SEED-Voken``, formerly ``TencentARC/Open-MAGVIT2``): the four released image tokenizers,
weight resolution and the ``OpenMagvit2`` tokenizer adapter.

The network is our own implementation (``tokbench.models.open_magvit2_modules``). The official
checkpoints are Lightning-style ``.ckpt`` pickles holding ``state_dict`` with the training weights
(``encoder.*``, ``decoder.*``), the loss networks and the EMA copies (``model_ema.<name without
dots>``); the published numbers were measured with the EMA copies (every image config sets
``use_ema`` and the official evaluation runs inside ``ema_scope()``), so those are loaded by default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.errors import ConfigError, WeightsError
from tokbench.models.checkpoints import HubFile, check_sha256, read_state_dict, resolve_hub_file
from tokbench.models.network_adapter import (
    RANDOM_INIT_SEED,
    RANDOM_INIT_SOURCE,
    NetworkAdapter,
    check_random_init,
    describe,
)
from tokbench.models.open_magvit2_modules import (
    TOKENIZER_PREFIXES,
    OpenMagvit2Config,
    OpenMagvit2Model,
    implicit_codebook,
)

PAPER = (
    "Luo, Shi, Ge, Yang, Wang, Shan. Open-MAGVIT2: An Open-Source Project Toward Democratizing "
    "Auto-regressive Visual Generation. arXiv:2409.04410"
)
LICENCE = "Apache-2.0 (TencentARC/SEED-Voken code and the hub model cards)"
EMA_PREFIX = "model_ema."


@dataclass(frozen=True)
class OpenMagvit2Variant:
    """One released image tokenizer: its network, the resolution it was trained and evaluated at,
    and where its weights come from."""

    name: str
    config: OpenMagvit2Config
    resolution: int
    hub_id: str
    num_parameters: int
    #: The hub commit downloads default to; None where no commit could be verified to hold the file.
    revision: str | None
    #: Published reconstruction numbers (SEED-Voken docs/Open-MAGVIT2.md).
    reported: str
    #: Not pinned: the checkpoints could not be fetched here to hash them. The loaded file's sha256 is
    #: always computed and recorded.
    sha256: str | None = None
    licence: str = LICENCE
    paper: str = PAPER

    @property
    def checkpoint_filename(self) -> str:
        """The official checkpoint file in the hub repository."""
        return f"{self.name}.ckpt"

    @property
    def url(self) -> str:
        """Where the official docs link the checkpoint."""
        return f"https://huggingface.co/{self.hub_id}/blob/main/{self.checkpoint_filename}"

    @property
    def tokens(self) -> int:
        """Tokens per image at ``resolution``."""
        return (self.resolution // self.config.downsampling) ** 2


F16 = (1, 1, 2, 2, 4)
F8 = (1, 2, 2, 4)

#: The released image tokenizers (the video tokenizer and the 2024-06 "v1" checkpoints are not
#: covered); parameter counts from the full-size manifests of the reference folder.
VARIANTS: dict[str, OpenMagvit2Variant] = {
    v.name: v
    for v in (
        OpenMagvit2Variant(
            "imagenet_256_L",
            OpenMagvit2Config(128, F16, 4, 18),
            256,
            "TencentARC/Open-MAGVIT2-Tokenizer-256-resolution",
            115_127_829,
            "21796c66c698a7c65178a073e0a0358ebbcb6365",
            "ImageNet val 256: rFID 1.17, PSNR 21.90",
        ),
        OpenMagvit2Variant(
            "imagenet_128_L",
            OpenMagvit2Config(128, F8, 4, 18),
            128,
            "TencentARC/Open-MAGVIT2-Tokenizer-128-resolution",
            112_021_653,
            None,
            "ImageNet val 128: rFID 1.18, PSNR 25.08",
        ),
        OpenMagvit2Variant(
            "pretrain256_262144",
            OpenMagvit2Config(128, F16, 4, 18),
            256,
            "TencentARC/Open-MAGVIT2-Tokenizer-262144-Pretrain",
            115_127_829,
            None,
            "256: ImageNet rFID 1.67 / PSNR 22.70, COCO 6.76 / 22.31; original resolution: "
            "ImageNet 0.78 / 22.24, COCO 5.10 / 22.18",
        ),
        OpenMagvit2Variant(
            "pretrain256_16384",
            OpenMagvit2Config(128, F16, 4, 14),
            256,
            "TencentARC/Open-MAGVIT2-Tokenizer-16384-Pretrain",
            115_094_033,
            None,
            "256: ImageNet rFID 2.55 / PSNR 22.21, COCO 7.93 / 22.21; original resolution: "
            "ImageNet 1.39 / 21.74, COCO 6.65 / 21.61",
        ),
    )
}


def how_to_supply(variant: OpenMagvit2Variant) -> str:
    """The ways to give Open-MAGVIT2 weights, for error messages."""
    return (
        f"Supply the weights as a file with --weights PATH (model spec open-magvit2:variant="
        f"{variant.name},weights=PATH; the official {variant.checkpoint_filename} from {variant.url}, "
        "or a safetensors/torch state dict with the official encoder.*/decoder.* names), or as a "
        f"downloaded hub snapshot of {variant.hub_id}: set HF_HOME (or HF_HUB_CACHE) to the cache that "
        "holds it, or pass weights=<the snapshot or hub cache directory>."
    )


def resolve_checkpoint(
    variant: OpenMagvit2Variant, weights: str | os.PathLike | None = None, revision: str | None = None
) -> tuple[Path, str]:
    """The checkpoint file to load and where it was found (``file``, ``directory`` or ``hub``; a hub
    cache counts as ``hub``)."""
    checkpoint = HubFile(
        f"open-magvit2 {variant.name}",
        variant.hub_id,
        variant.checkpoint_filename,
        how_to_supply(variant),
        variant.revision,
    )
    found = resolve_hub_file(checkpoint, weights, revision)
    return found.path, "hub" if found.kind == "hub-cache" else found.kind


def read_checkpoint(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """The flat tensor state dict of a weights file (``read_state_dict``), taking a pickle's
    ``state_dict`` entry when it has one (the official checkpoints do)."""
    return read_state_dict(path, sha256, ("state_dict",))[0]


def tokenizer_weights(
    state: Mapping[str, torch.Tensor], names: list[str], ema: bool
) -> tuple[dict[str, torch.Tensor], str]:
    """The tokenizer's parameters (official names ``names``) from a checkpoint state dict, and which
    copy they are: ``ema`` (``model_ema.<name without dots>``, taken when ``ema`` and the file has
    EMA entries), ``raw`` (the training weights beside EMA entries, when not ``ema``) or ``single``
    (a file with no EMA entries: its ``encoder.*``/``decoder.*`` weights)."""
    if any(key.startswith(EMA_PREFIX) for key in state):
        if ema:
            shadow = {name: EMA_PREFIX + name.replace(".", "") for name in names}
            missing = [key for key in shadow.values() if key not in state]
            if missing:
                raise WeightsError(
                    f"the EMA copy lacks {len(missing)} of {len(names)} entries "
                    f"({', '.join(missing[:3])}, …); pass ema=false to load the raw training weights"
                )
            return {name: state[key] for name, key in shadow.items()}, "ema"
        copy = "raw"
    else:
        copy = "single"
    return {k: v for k, v in state.items() if k.startswith(TOKENIZER_PREFIXES)}, copy


def images_to_model_input(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to the model's [−1, 1], as the official data code converts bytes: values that are
    exactly a uint8 level u/255 (as float32) become u/127.5 − 1 computed in float64 (the official
    values, which 2x − 1 in float32 misses by 1 ulp on half the levels); any other value 2x − 1."""
    x = images.to(torch.float64)
    levels = (x * 255.0).round()
    exact = (levels / 255.0).to(torch.float32) == images
    return torch.where(exact, levels / 127.5 - 1.0, x * 2.0 - 1.0).to(torch.float32)


def model_output_to_images(raw: torch.Tensor) -> torch.Tensor:
    """The decoder's raw output to [0, 1] as the official evaluation does: clamp(−1, 1), (x + 1)/2."""
    return (raw.clamp(-1.0, 1.0) + 1.0) / 2.0


class OpenMagvit2(NetworkAdapter, Tokenizer, DiscreteTokenizer):
    """Open-MAGVIT2 as a tokbench tokenizer: images in [0, 1] → LFQ token ids → images.

    ``variant`` names a released tokenizer (``VARIANTS``). ``weights`` is a local checkpoint (the
    official ``.ckpt``, or a safetensors/torch state dict) or a hub cache / snapshot directory;
    without it the checkpoint comes from the Hugging Face hub at the variant's pinned ``revision``
    (or the one given). ``ema`` (default) loads the EMA copy the published numbers were measured
    with; ``ema=false`` loads the raw training weights. ``random_init`` builds the real architecture
    with seeded random weights, for tests only.

    The network is fully convolutional: any image whose sides are multiples of the downsampling
    factor encodes to an (H/f)×(W/f) grid of at least two tokens; ``bits`` = tokens × log2(K).
    ``encode`` gives int64 token grids [N, h, w]; ``encode_indices`` their rows flattened [N, h·w].
    Decoding clamps to [−1, 1] and maps to [0, 1] as the official evaluation.

    The codebook is LFQ's implicit one: row k holds the ±1 code of token k (bit d = channel d, channel
    0 the least significant bit). Even for K = 2^18 it is small to materialise (262144 × 18 float32,
    19 MB), so pFID's nearest-entry search runs on it like on any codebook (one 262144-entry distance
    row and sort per replaced token).
    """

    version: ClassVar[str] = "1"
    config: OpenMagvit2Config

    def __init__(
        self,
        variant: str = "imagenet_256_L",
        weights: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
        ema: bool = True,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"open-magvit2: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        if random_init:
            check_random_init("open-magvit2", f"open-magvit2 {variant}", weights, revision)
            model = OpenMagvit2Model.random_init(spec.config, seed=RANDOM_INIT_SEED)
            self._setup(model, variant, None, RANDOM_INIT_SOURCE)
            return
        path, source = resolve_checkpoint(spec, weights, revision)
        sha256 = check_sha256(f"open-magvit2 {variant}", path, spec.sha256, how_to_supply(spec))
        try:
            with torch.device("meta"):
                names = list(OpenMagvit2Model(spec.config).state_dict())
            state, copy = tokenizer_weights(read_checkpoint(path, sha256), names, ema)
            model = OpenMagvit2Model.from_state_dict(spec.config, state)
        except WeightsError as exc:
            raise WeightsError(f"open-magvit2 {variant}: {path}: {exc}. " + how_to_supply(spec)) from None
        self._setup(model, variant, sha256, f"{source}:{path} ({copy} weights)")

    @classmethod
    def from_model(cls, model: OpenMagvit2Model, name: str = "custom") -> OpenMagvit2:
        """Wrap an ``OpenMagvit2Model`` built elsewhere (a custom config, a golden test model)."""
        adapter = cls.__new__(cls)
        adapter._setup(model, name, None, "model")
        return adapter

    def _setup(self, model: OpenMagvit2Model, name: str, sha256: str | None, source: str) -> None:
        self._adopt(model, name, sha256, source)

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per released image tokenizer."""
        return tuple(
            ModelCard(
                family="Open-MAGVIT2",
                spec=f"open-magvit2:variant={v.name}",
                kind="discrete",
                tokens=v.tokens,
                codebook=v.config.codebook_size,
                downsampling=v.config.downsampling,
                resolution=v.resolution,
                hub_id=v.hub_id,
                verification="golden: reference/open_magvit2",
                note=f"LFQ, {v.config.bits} bits per token; reported {v.reported}",
            )
            for v in VARIANTS.values()
        )

    def _grid(self, height: int, width: int, what: str) -> tuple[int, int]:
        f = self.config.downsampling
        if height % f or width % f or (height // f) * (width // f) < 2:
            raise ConfigError(
                f"open-magvit2 {self.name}: {what} sides must be multiples of {f} giving at least two tokens "
                f"(the decoder's adaptive norms need a spatial variance), got {height}×{width}"
            )
        return height // f, width // f

    def _check_images(self, images: Any) -> None:
        if not (
            isinstance(images, torch.Tensor)
            and images.dtype == torch.float32
            and images.dim() == 4
            and images.shape[1] == 3
        ):
            raise ConfigError(
                f"open-magvit2 {self.name}: encode expects float32 images [N, 3, H, W] in [0, 1], "
                f"got {describe(images)}"
            )
        self._grid(images.shape[2], images.shape[3], "image")

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_images(images)
        with torch.inference_mode():
            tokens, latent = self.model.encode(images_to_model_input(images.to(self._device)))
        return tokens.clone(), latent.clone()

    def encode(self, images: torch.Tensor) -> Encoded:
        tokens = self._encode(images)[0]
        count = tokens.shape[1] * tokens.shape[2]
        bits = torch.full((tokens.shape[0],), count * float(self.config.bits), dtype=torch.float64)
        return Encoded(payload=tokens, bits=bits, num_tokens=count)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        tokens, size = encoded.payload, self.config.codebook_size
        if not (
            isinstance(tokens, torch.Tensor)
            and tokens.dtype == torch.int64
            and tokens.dim() == 3
            and (tokens.numel() == 0 or 0 <= int(tokens.min()) <= int(tokens.max()) < size)
        ):
            raise ConfigError(
                f"open-magvit2 {self.name}: decode expects int64 token grids [N, h, w] in [0, {size}), "
                f"got {describe(tokens)}"
            )
        self._grid(
            tokens.shape[1] * self.config.downsampling,
            tokens.shape[2] * self.config.downsampling,
            "token grid",
        )
        with torch.inference_mode():
            pixels = model_output_to_images(self.model.decode_tokens(tokens.to(self._device)))
        return pixels.clone()  # outside inference mode: an ordinary tensor

    def codebook(self) -> torch.Tensor:
        """The implicit K×bits LFQ codebook: row k is token k's ±1 code (bit d is channel d)."""
        return implicit_codebook(self.config.bits)

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Token ids int64 [N, h·w], the grid rows in order (the official flattening)."""
        return self._encode(images)[0].flatten(1)

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids int64 [N, h·w] and the pre-quantisation latents float32 [N, h·w, bits] they
        quantise (the nearest ±1 code of a latent is its token's, up to ties at 0)."""
        tokens, latent = self._encode(images)
        return tokens.flatten(1), latent.flatten(2).transpose(1, 2).contiguous()

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from token ids: int64 [N, h, w], or [N, T] for a square grid of T tokens."""
        if isinstance(indices, torch.Tensor) and indices.dim() == 2:
            side = math.isqrt(indices.shape[1])
            if side * side != indices.shape[1]:
                raise ConfigError(
                    f"open-magvit2 {self.name}: decode_indices got {indices.shape[1]} tokens per image, not "
                    "a square grid; pass the [N, h, w] grid of a non-square image"
                )
            indices = indices.reshape(indices.shape[0], side, side)
        return self.decode(Encoded(payload=indices))
