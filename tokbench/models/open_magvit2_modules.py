"""Open-MAGVIT2 (Luo, Shi et al., 2024; code ``TencentARC/SEED-Voken``) as a network: its frozen
``OpenMagvit2Config``, the CNN encoder, lookup-free quantisation (LFQ) and the decoder with adaptive
group norms, assembled in ``OpenMagvit2Model``.

An independent implementation written against the architecture notes in
``shared/reference/open_magvit2/README.md``; parameter names follow the official checkpoints
(``encoder.*``, ``decoder.*``) so their state dicts load strictly. What a re-implementation easily
gets wrong is marked "official": symmetric stride-2 padding, GroupNorm eps 1e-6, bit d of a token is
channel d (channel 0 the least significant bit), the unbiased style variance of the adaptive norms,
and depth-to-space in DCR order (not ``F.pixel_shuffle``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from tokbench.errors import ConfigError
from tokbench.models.checkpoints import adopt_state_dict

#: Groups of every GroupNorm (official), and their eps (official: 1e-6, not torch's 1e-5).
GROUPS = 32
EPS = 1e-6
#: Prefixes of the tokenizer's parameters in an official state dict.
TOKENIZER_PREFIXES = ("encoder.", "decoder.")


@dataclass(frozen=True)
class OpenMagvit2Config:
    """What fixes an Open-MAGVIT2 network: base width ``ch``, the per-level multipliers ``ch_mult``
    (their number sets the downsampling, 2^(levels−1)), residual blocks per level and in the middle
    stacks, and ``bits``, the latent channels = LFQ bits (codebook 2^bits)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 4
    bits: int = 18

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(self.ch_mult))
        checks = (
            (len(self.ch_mult) >= 1 and all(m >= 1 for m in self.ch_mult), "ch_mult needs levels >= 1"),
            (all(self.ch * m % GROUPS == 0 for m in self.ch_mult), f"ch·ch_mult must divide by {GROUPS}"),
            (self.num_res_blocks >= 1, "num_res_blocks must be >= 1"),
            (1 <= self.bits <= 62, "bits must be in [1, 62] (token ids are int64)"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"open-magvit2 config {self}: {message}")

    @property
    def levels(self) -> int:
        """Resolution levels of encoder and decoder."""
        return len(self.ch_mult)

    @property
    def downsampling(self) -> int:
        """Image side ÷ token-grid side: one stride-2 conv per level but the last."""
        return 2 ** (self.levels - 1)

    @property
    def codebook_size(self) -> int:
        """K = 2^bits implicit LFQ codes."""
        return 2**self.bits

    def width(self, level: int) -> int:
        """Channels of ``level`` (``ch`` before level 0)."""
        return self.ch * self.ch_mult[level] if level >= 0 else self.ch


def swish(x: torch.Tensor) -> torch.Tensor:
    """x·sigmoid(x), written out as the official code does."""
    return x * torch.sigmoid(x)


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    """The official GroupNorm: 32 groups, eps 1e-6."""
    return nn.GroupNorm(GROUPS, channels, eps=EPS, affine=affine)


def conv3x3(cin: int, cout: int, bias: bool, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution padded by 1 on every side (official, also with stride 2)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class ResBlock(nn.Module):
    """norm → swish → conv → norm → swish → conv (convs without bias) plus the input, through a
    bias-free 1×1 ``nin_shortcut`` when the width changes."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1 = group_norm(cin)
        self.norm2 = group_norm(cout)
        self.conv1 = conv3x3(cin, cout, bias=False)
        self.conv2 = conv3x3(cout, cout, bias=False)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(swish(self.norm2(self.conv1(swish(self.norm1(x))))))
        return h + (self.nin_shortcut(x) if self.nin_shortcut is not None else x)


def res_stack(cin: int, cout: int, count: int) -> nn.ModuleList:
    """``count`` ResBlocks, the first from ``cin`` to ``cout``, the rest at ``cout``."""
    return nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(count))


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """×2 depth-to-space in DCR order (official): out[b, k, 2y+dy, 2x+dx] = x[b, (2dy+dx)·c + k, y, x]
    with c = channels/4. ``F.pixel_shuffle`` reads channel 4k + 2dy + dx instead."""
    b, channels, h, w = x.shape
    c = channels // 4
    return x.view(b, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c, 2 * h, 2 * w)


class Upsample(nn.Module):
    """3×3 conv to 4× the channels, then depth-to-space ×2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, 4 * channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv1(x))


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine, rescaled by gamma(σ) and shifted by beta(μ), where μ and σ are the
    per-channel spatial mean and standard deviation of the style (the quantised codes).

    σ = sqrt(unbiased variance + 1e-6) (official: n−1, whatever the code comment says); a 1×1 style
    has no unbiased variance, so the token grid needs at least two positions.
    """

    def __init__(self, style_channels: int, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, affine=False)
        self.gamma = nn.Linear(style_channels, channels)
        self.beta = nn.Linear(style_channels, channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        flat = style.flatten(2)
        std = torch.sqrt(flat.var(dim=-1, unbiased=True) + EPS)
        mean = flat.mean(dim=-1)
        return self.gamma(std)[:, :, None, None] * self.norm(x) + self.beta(mean)[:, :, None, None]


class DownLevel(nn.Module):
    """One encoder level: its ResBlocks, then (all but the last level) a stride-2 conv with bias."""

    def __init__(self, cin: int, cout: int, count: int, downsample: bool) -> None:
        super().__init__()
        self.block = res_stack(cin, cout, count)
        self.downsample = conv3x3(cout, cout, bias=True, stride=2) if downsample else None


class UpLevel(nn.Module):
    """One decoder level: its ResBlocks, then (all but level 0) ``Upsample``."""

    def __init__(self, cin: int, cout: int, count: int, upsample: bool) -> None:
        super().__init__()
        self.block = res_stack(cin, cout, count)
        self.upsample = Upsample(cout) if upsample else None


class Encoder(nn.Module):
    """Image in [−1, 1] → pre-quantisation latent h with ``bits`` channels at 1/2^(levels−1) scale."""

    def __init__(self, config: OpenMagvit2Config) -> None:
        super().__init__()
        n, last = config.num_res_blocks, config.levels - 1
        self.conv_in = conv3x3(3, config.ch, bias=False)
        self.down = nn.ModuleList(
            DownLevel(config.width(i - 1), config.width(i), n, downsample=i < last)
            for i in range(config.levels)
        )
        self.mid_block = res_stack(config.width(last), config.width(last), n)
        self.norm_out = group_norm(config.width(last))
        self.conv_out = nn.Conv2d(config.width(last), config.bits, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if level.downsample is not None:
                h = level.downsample(h)
        for block in self.mid_block:
            h = block(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """±1 codes → image (raw, not clamped), with the codes as the style of every adaptive norm."""

    def __init__(self, config: OpenMagvit2Config) -> None:
        super().__init__()
        n, last = config.num_res_blocks, config.levels - 1
        incoming = [config.width(min(i + 1, last)) for i in range(config.levels)]
        self.conv_in = conv3x3(config.bits, config.width(last), bias=True)
        self.mid_block = res_stack(config.width(last), config.width(last), n)
        self.up = nn.ModuleList(
            UpLevel(incoming[i], config.width(i), n, upsample=i > 0) for i in range(config.levels)
        )
        self.adaptive = nn.ModuleList(
            AdaptiveGroupNorm(config.bits, incoming[i]) for i in range(config.levels)
        )
        self.norm_out = group_norm(config.width(0))
        self.conv_out = conv3x3(config.width(0), 3, bias=True)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(codes)
        for block in self.mid_block:
            h = block(h)
        for i in reversed(range(len(self.up))):  # the coarsest level first, level 0 last
            h = self.adaptive[i](h, codes)
            level = self.up[i]
            for block in level.block:
                h = block(h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


def latent_to_tokens(latent: torch.Tensor) -> torch.Tensor:
    """LFQ token ids int64 [B, h, w] of a latent [B, D, h, w]: bit d = (h_d > 0), strictly (0 → bit
    0), weighted 2^d (official: channel 0 is the least significant bit)."""
    weights = 2 ** torch.arange(latent.shape[1], device=latent.device, dtype=torch.int64)
    return ((latent > 0).to(torch.int64) * weights[None, :, None, None]).sum(dim=1)


def tokens_to_codes(tokens: torch.Tensor, bits: int) -> torch.Tensor:
    """The ±1 codes float32 [B, bits, h, w] of token ids [B, h, w]: code_d = 2·((t >> d) & 1) − 1."""
    shifts = torch.arange(bits, device=tokens.device, dtype=torch.int64)
    set_bits = (tokens[:, None, :, :] >> shifts[None, :, None, None]) & 1
    return set_bits.to(torch.float32) * 2.0 - 1.0


def implicit_codebook(bits: int) -> torch.Tensor:
    """All 2^bits LFQ codes, float32 [2^bits, bits]: row k is the code of token k."""
    ids = torch.arange(2**bits, dtype=torch.int64)
    return ((ids[:, None] >> torch.arange(bits)[None, :]) & 1).to(torch.float32) * 2.0 - 1.0


class OpenMagvit2Model(nn.Module):
    """Encoder, LFQ and decoder; images cross this boundary in [−1, 1] (the official range)."""

    def __init__(self, config: OpenMagvit2Config) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    @classmethod
    def random_init(cls, config: OpenMagvit2Config, seed: int = 0) -> OpenMagvit2Model:
        """PyTorch's default init (the official code has no custom one), reproducible from ``seed``
        (tests only). Uses a forked RNG, so torch's global random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
        return model.eval()

    @classmethod
    def from_state_dict(
        cls, config: OpenMagvit2Config, state_dict: Mapping[str, torch.Tensor]
    ) -> OpenMagvit2Model:
        """Build without allocating random weights and adopt ``state_dict`` (the tokenizer's
        ``encoder.*``/``decoder.*`` entries): keys and shapes must match exactly, values become float32."""
        with torch.device("meta"):
            model = cls(config)
        adopt_state_dict(model, state_dict, "Open-MAGVIT2 config")
        return model.eval()

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids int64 [B, h, w] and the pre-quantisation latent [B, bits, h, w] of images in [−1, 1]."""
        latent = self.encoder(images)
        return latent_to_tokens(latent), latent

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw decoder output (not clamped, nominally [−1, 1]) of token ids int64 [B, h, w]."""
        return self.decoder(tokens_to_codes(tokens, self.config.bits))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction (raw) of images in [−1, 1]: decode(quantise(encode(x)))."""
        return self.decode_tokens(self.encode(images)[0])
