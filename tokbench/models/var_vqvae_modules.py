"""VAR's multi-scale residual VQVAE (Tian et al., 2024) as a network: its frozen ``VarVqvaeConfig``, the
LDM-style convolutional encoder and decoder, the φ (``quant_resi``) convolutions and the multi-scale
residual quantiser, assembled in ``VarVqvaeModel``.

An independent implementation written against the architecture notes in
``shared/reference/var_vqvae/README.md``; parameter names follow the official checkpoint
(``vae_ch160v4096z32.pth``) so its state dict loads strictly. The official code's quirks are kept on
purpose and marked "quirk".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokbench.errors import ConfigError
from tokbench.models.checkpoints import adopt_state_dict

#: GroupNorm of every block: 32 groups, eps 1e-6 (the LDM value; 1e-5 moves the latents by ~3e-3).
NORM_GROUPS, NORM_EPS = 32, 1e-6


@dataclass(frozen=True)
class VarVqvaeConfig:
    """Everything that fixes a VAR VQVAE's shape and behaviour.

    ``patch_nums`` is the scale schedule (side of each token map, the last equal to the latent side);
    ``share_quant_resi`` picks the φ container: 1 one shared conv, 0 one conv per scale (or
    ``default_qresi_counts``), K ≥ 2 K partially shared convs. ``using_znorm`` switches the token
    search from squared L2 to cosine similarity. The released model hard-codes ``ch_mult`` (1,1,2,2,4)
    and ``num_res_blocks`` 2; they are parameters here so smaller networks can be built.
    """

    vocab_size: int = 4096
    z_channels: int = 32
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    share_quant_resi: int = 4
    quant_resi: float = 0.5
    using_znorm: bool = False
    default_qresi_counts: int = 0
    using_sa: bool = True
    using_mid_sa: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(self.ch_mult))
        object.__setattr__(self, "patch_nums", tuple(self.patch_nums))
        channels = [self.ch * m for m in self.ch_mult]
        checks = (
            (self.vocab_size > 1 and self.z_channels > 0, "vocab_size > 1 and z_channels > 0"),
            (len(self.ch_mult) >= 1 and self.num_res_blocks >= 1, "ch_mult and num_res_blocks non-empty"),
            (all(c % NORM_GROUPS == 0 for c in channels), f"channels divisible by {NORM_GROUPS} (GroupNorm)"),
            (self.share_quant_resi >= 0 and self.default_qresi_counts >= 0, "non-negative φ counts"),
        )
        for ok, rule in checks:
            if not ok:
                raise ConfigError(f"VarVqvaeConfig: needs {rule}; got {self}")
        check_schedule(self.patch_nums)

    @property
    def downsampling(self) -> int:
        """Pixels per latent position along a side: 2^(levels − 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def image_size(self) -> int:
        """The input side the schedule is made for: last patch number × downsampling."""
        return self.patch_nums[-1] * self.downsampling

    @property
    def num_tokens(self) -> int:
        """Tokens per image, all scales: Σ pn²."""
        return sum(pn * pn for pn in self.patch_nums)

    @property
    def num_phi(self) -> int:
        """Number of φ convolutions the checkpoint holds."""
        if self.share_quant_resi == 1:
            return 1
        if self.share_quant_resi == 0:
            return self.default_qresi_counts or len(self.patch_nums)
        return self.share_quant_resi


def check_schedule(patch_nums: Sequence[int]) -> None:
    """A scale schedule has at least two increasing positive sides (φ is chosen by k/(SN−1))."""
    if (
        len(patch_nums) < 2
        or any(int(p) < 1 for p in patch_nums)
        or list(patch_nums) != sorted(set(patch_nums))
    ):
        raise ConfigError(
            f"VAR VQVAE: patch_nums must be at least two strictly increasing positive sides, got {patch_nums}"
        )


def phi_ticks(count: int) -> np.ndarray:
    """Positions in [0, 1] of ``count`` φ convs, numpy float64 as the official code computes them."""
    margin = 1 / (3 * count) if count == 4 else 1 / (2 * count)
    return np.linspace(margin, 1 - margin, count)


def phi_index_per_scale(count: int, num_scales: int) -> list[int]:
    """The φ conv used at each of ``num_scales`` scales: argmin |tick − k/(SN−1)| in float64.

    quirk: for 10 scales and 4 convs the exact distances tie at k = 2 and 7; float64 rounding breaks
    the ties upward ([0,0,1,1,1,2,2,3,3,3]), and so must we (exact arithmetic gives another mapping).
    """
    if count == 1:
        return [0] * num_scales
    ticks = phi_ticks(count)
    return [int(np.argmin(np.abs(ticks - k / (num_scales - 1)))) for k in range(num_scales)]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(NORM_GROUPS, channels, eps=NORM_EPS, affine=True)


class ResnetBlock(nn.Module):
    """GN → SiLU → conv3×3, twice, plus the input (through a 1×1 ``nin_shortcut`` when channels change)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout 0 in the release
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with one fused 1×1 ``qkv`` conv (channels q, k, v)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, height * width).unbind(1)
        weights = torch.bmm(q.permute(0, 2, 1), k).mul_(c**-0.5).softmax(dim=2)  # b, query, key
        h = torch.bmm(v, weights.permute(0, 2, 1))  # b, c, query
        return x + self.proj_out(h.reshape(b, c, height, width))


class Downsample(nn.Module):
    """quirk: zero-pad right and bottom by one, then a 3×3 conv with stride 2 and no padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest ×2, then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: residual blocks, attention after each (lowest resolution only), and a
    resampler (``downsample`` in the encoder, ``upsample`` in the decoder) unless it is the last."""

    def __init__(
        self, blocks: list[ResnetBlock], attention: bool, resample: nn.Module | None, name: str
    ) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = (
            nn.ModuleList(AttnBlock(b.conv2.out_channels) for b in blocks) if attention else nn.ModuleList()
        )
        if resample is not None:
            self.add_module(name, resample)
        self.resample = name if resample is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        return x if self.resample is None else getattr(self, self.resample)(x)


class Middle(nn.Module):
    """block_1 → attn_1 → block_2 at the lowest resolution."""

    def __init__(self, channels: int, attention: bool) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Images in [−1, 1] → a [B, z_channels, H/f, W/f] latent (no double_z)."""

    def __init__(self, config: VarVqvaeConfig) -> None:
        super().__init__()
        ch, mult, last = config.ch, config.ch_mult, len(config.ch_mult) - 1
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        levels, block_in = [], ch
        for i, m in enumerate(mult):
            blocks = [
                ResnetBlock(block_in if j == 0 else ch * m, ch * m) for j in range(config.num_res_blocks)
            ]
            block_in = ch * m
            down = Downsample(block_in) if i != last else None
            levels.append(Level(blocks, config.using_sa and i == last, down, "downsample"))
        self.down = nn.ModuleList(levels)
        self.mid = Middle(block_in, config.using_mid_sa)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """A latent → raw pixels (about [−1, 1], no final activation). ``up.0`` is full resolution; levels
    run from ``up.{n−1}`` down to ``up.0``, each with num_res_blocks + 1 blocks."""

    def __init__(self, config: VarVqvaeConfig) -> None:
        super().__init__()
        ch, mult, last = config.ch, config.ch_mult, len(config.ch_mult) - 1
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(config.z_channels, block_in, 3, padding=1)
        self.mid = Middle(block_in, config.using_mid_sa)
        levels: list[Level] = []
        for i in reversed(range(len(mult))):
            out = ch * mult[i]
            blocks = [ResnetBlock(block_in if j == 0 else out, out) for j in range(config.num_res_blocks + 1)]
            block_in = out
            up = Upsample(block_in) if i != 0 else None
            levels.insert(0, Level(blocks, config.using_sa and i == last, up, "upsample"))
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Phi(nn.Conv2d):
    """φ(h) = (1 − r)·h + r·conv3×3(h), r = |quant_resi|."""

    def __init__(self, channels: int, quant_resi: float) -> None:
        super().__init__(channels, channels, 3, padding=1)
        self.resi_ratio = abs(quant_resi)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mul(1 - self.resi_ratio) + super().forward(h).mul_(self.resi_ratio)


class PhiShared(nn.Module):
    """share_quant_resi = 1: one φ for every scale (key ``qresi``)."""

    def __init__(self, phi: Phi) -> None:
        super().__init__()
        self.qresi = phi

    def convs(self) -> list[Phi]:
        return [self.qresi]


class PhiPartiallyShared(nn.Module):
    """share_quant_resi = K ≥ 2 (the release, K = 4): K φ convs under ``qresi_ls``."""

    def __init__(self, phis: list[Phi]) -> None:
        super().__init__()
        self.qresi_ls = nn.ModuleList(phis)

    def convs(self) -> list[Phi]:
        return list(self.qresi_ls)


class PhiNonShared(nn.ModuleList):
    """share_quant_resi = 0: one φ per scale (or ``default_qresi_counts``), keys ``0``, ``1``, …"""

    def convs(self) -> list[Phi]:
        return list(self)


class MultiScaleQuantizer(nn.Module):
    """The residual multi-scale quantiser: codebook ``embedding`` [V, C], the φ convs in
    ``quant_resi`` and the training-statistics buffer ``ema_vocab_hit_SV`` (unused at inference)."""

    def __init__(self, config: VarVqvaeConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(config.patch_nums), config.vocab_size))
        phis = [Phi(config.z_channels, config.quant_resi) for _ in range(config.num_phi)]
        if config.share_quant_resi == 1:
            self.quant_resi: nn.Module = PhiShared(phis[0])
        elif config.share_quant_resi == 0:
            self.quant_resi = PhiNonShared(phis)
        else:
            self.quant_resi = PhiPartiallyShared(phis)
        self.embedding = nn.Embedding(config.vocab_size, config.z_channels)

    def phis(self, num_scales: int) -> list[Phi]:
        """The φ conv of each of ``num_scales`` scales."""
        convs = self.quant_resi.convs()
        return [convs[i] for i in phi_index_per_scale(len(convs), num_scales)]

    def codebook(self) -> torch.Tensor:
        """The codebook as the search sees it: l2-normalised rows with znorm, raw otherwise."""
        weight = self.embedding.weight
        return F.normalize(weight, dim=1) if self.config.using_znorm else weight

    def search_vectors(self, z: torch.Tensor) -> torch.Tensor:
        """[M, C] vectors as the search compares them (l2-normalised with znorm)."""
        return F.normalize(z, dim=-1) if self.config.using_znorm else z

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Token of each [M, C] vector: argmax cosine (znorm) or argmin |z|² + |e|² − 2 z·e (first wins)."""
        weight = self.embedding.weight
        if self.config.using_znorm:
            return torch.argmax(F.normalize(z, dim=-1) @ F.normalize(weight.T, dim=0), dim=1)
        distances = z.square().sum(dim=1, keepdim=True) + weight.square().sum(dim=1)
        return torch.argmin(distances.addmm_(z, weight.T, alpha=-2, beta=1), dim=1)

    def scale_map(
        self, tokens: torch.Tensor, side: int, size: tuple[int, int], upsample: bool
    ) -> torch.Tensor:
        """Codebook rows of [B, side²] tokens as a [B, C, side, side] map, bicubic-upsampled to ``size``
        (PyTorch bicubic: align_corners False, A = −0.75) unless it is the last scale."""
        rows = self.embedding(tokens.reshape(tokens.shape[0], side, side)).permute(0, 3, 1, 2)
        return F.interpolate(rows, size=size, mode="bicubic").contiguous() if upsample else rows.contiguous()

    def quantize(
        self, f: torch.Tensor, patch_nums: Sequence[int] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Quantise a [B, C, h, w] latent scale by scale: per scale its [B, pn²] tokens, the map it
        quantised (area-pooled residual; the full residual at the last scale) and the cumulative f_hat.
        """
        patch_nums = tuple(patch_nums or self.config.patch_nums)
        check_schedule(patch_nums)
        b, c, height, width = f.shape
        if patch_nums[-1] != height or height != width:
            raise ConfigError(
                f"VAR VQVAE: the last scale {patch_nums[-1]} must equal the latent side, got {height}×{width}"
            )
        f_rest, f_hat = f.float().clone(), torch.zeros_like(f, dtype=torch.float32)
        tokens, residuals, fhats = [], [], []
        last = len(patch_nums) - 1
        for k, (pn, phi) in enumerate(zip(patch_nums, self.phis(len(patch_nums)), strict=True)):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if k != last else f_rest.clone()
            idx = self.nearest(z.permute(0, 2, 3, 1).reshape(-1, c)).view(b, pn * pn)
            h = phi(self.scale_map(idx, pn, (height, width), k != last))
            f_hat.add_(h)  # quirk: two in-place updates; f_rest is not recomputed as f − f_hat
            f_rest.sub_(h)
            tokens.append(idx)
            residuals.append(z)
            fhats.append(f_hat.clone())
        return tokens, residuals, fhats

    def tokens_to_fhat(
        self, tokens: Sequence[torch.Tensor], patch_nums: Sequence[int] | None = None
    ) -> torch.Tensor:
        """The float32 [B, C, pn_last, pn_last] latent rebuilt from per-scale tokens (each [B, pn²])."""
        patch_nums = tuple(patch_nums or self.config.patch_nums)
        check_schedule(patch_nums)
        side, last = patch_nums[-1], len(patch_nums) - 1
        f_hat = torch.zeros(tokens[0].shape[0], self.config.z_channels, side, side, device=tokens[0].device)
        for k, (pn, phi, idx) in enumerate(zip(patch_nums, self.phis(len(patch_nums)), tokens, strict=True)):
            f_hat.add_(phi(self.scale_map(idx, pn, (side, side), k != last)))
        return f_hat


class VarVqvaeModel(nn.Module):
    """A VAR VQVAE network; its ``state_dict`` keys equal the official checkpoint's.

    Pixels enter in [−1, 1]. ``decode_fhat`` and ``forward`` return raw (unclamped) pixels; the
    official image-returning methods clamp to [−1, 1].
    """

    def __init__(self, config: VarVqvaeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = MultiScaleQuantizer(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.z_channels, 3, padding=1)
        self.post_quant_conv = nn.Conv2d(config.z_channels, config.z_channels, 3, padding=1)

    @classmethod
    def random_init(cls, config: VarVqvaeConfig, seed: int = 0) -> VarVqvaeModel:
        """PyTorch's default init and a U(−1/V, 1/V) codebook (the official codebook init),
        reproducible from ``seed`` (tests only); torch's global RNG is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
            bound = 1.0 / config.vocab_size
            nn.init.uniform_(model.quantize.embedding.weight, -bound, bound)
        return model.eval()

    @classmethod
    def from_state_dict(cls, config: VarVqvaeConfig, state_dict: Mapping[str, torch.Tensor]) -> VarVqvaeModel:
        """Build without allocating random weights and adopt ``state_dict`` strictly (float32).

        ``quantize.ema_vocab_hit_SV`` (training statistics) may have any row count, as the official
        loader allows; it is replaced by zeros of this schedule's length.
        """
        with torch.device("meta"):
            model = cls(config)
        ema = "quantize.ema_vocab_hit_SV"
        zeros = torch.zeros(model.state_dict()[ema].shape)
        adopt_state_dict(model, state_dict, "VAR VQVAE config", ignore_shape=(ema,), overrides={ema: zeros})
        return model.eval()

    def encode_latent(self, pixels: torch.Tensor) -> torch.Tensor:
        """f = quant_conv(encoder(x)), the pre-quantisation latent of [−1, 1] pixels."""
        return self.quant_conv(self.encoder(pixels))

    def decode_fhat(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Raw pixels of a latent: decoder(post_quant_conv(f_hat))."""
        return self.decoder(self.post_quant_conv(f_hat))

    def encode_tokens(
        self, pixels: torch.Tensor, patch_nums: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """Per-scale int64 tokens [B, pn²] of [−1, 1] pixels (the official ``img_to_idxBl``)."""
        return self.quantize.quantize(self.encode_latent(pixels), patch_nums)[0]

    def decode_tokens(
        self, tokens: Sequence[torch.Tensor], patch_nums: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Raw pixels from per-scale tokens (``idxBl_to_img`` before its clamp)."""
        return self.decode_fhat(self.quantize.tokens_to_fhat(tokens, patch_nums))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official training forward: raw pixels from the straight-through latent and the VQ loss,
        the mean over scales of β·mse + mse (β = 0.25) between the cumulative f_hat and f."""
        f = self.encode_latent(pixels).float()
        fhats = self.quantize.quantize(f)[2]
        loss = torch.stack([F.mse_loss(fh, f).mul(0.25) + F.mse_loss(fh, f) for fh in fhats]).sum() / len(
            fhats
        )
        straight_through = (fhats[-1] - f).add_(f)
        return self.decode_fhat(straight_through), loss.reshape(1)
