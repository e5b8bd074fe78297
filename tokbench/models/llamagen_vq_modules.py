"""The LlamaGen VQ image tokenizer (Sun et al., 2024) as a network: its frozen ``LlamaGenVQConfig``,
the convolutional encoder and decoder, the l2-normalised codebook quantiser, and ``LlamaGenVQModel``.

An independent implementation written from the architecture notes in
``shared/reference/llamagen_vq/README.md``; parameter names and their order follow the official
checkpoints (``vq_ds16_c2i.pt`` and siblings), so their state dicts load strictly. Behaviour the
notes single out is marked "official": right/bottom-only padding before each strided conv, the
reversed numbering of the decoder levels, use-time normalisation of the codebook rows, and a
contiguous NCHW latent before ``post_quant_conv``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokbench.errors import ConfigError
from tokbench.models.checkpoints import adopt_state_dict

#: GroupNorm of every block: 32 groups, eps 1e-6 (hard-coded in the official code).
NORM_GROUPS, NORM_EPS = 32, 1e-6
#: Length of the ``quantize.codebook_used`` buffer (written in training only, never read here).
CODEBOOK_USED_LENGTH = 65536


@dataclass(frozen=True)
class LlamaGenVQConfig:
    """Everything that fixes a LlamaGen VQ network's shape: the official ``ModelArgs`` fields plus
    the Encoder/Decoder constructor arguments ``ch`` and ``num_res_blocks`` (128 and 2 in every
    released model). The decoder has ``num_res_blocks + 1`` res blocks per level."""

    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    encoder_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    decoder_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    z_channels: int = 256
    ch: int = 128
    num_res_blocks: int = 2

    def __post_init__(self) -> None:
        widths = [self.ch * m for m in (*self.encoder_ch_mult, *self.decoder_ch_mult)] + [self.ch]
        checks = (
            (self.codebook_size > 1 and self.codebook_embed_dim > 0, "codebook_size > 1 and a positive dim"),
            (len(self.encoder_ch_mult) >= 1, "at least one resolution level"),
            (
                len(self.encoder_ch_mult) == len(self.decoder_ch_mult),
                "encoder_ch_mult and decoder_ch_mult need the same number of levels",
            ),
            (all(w > 0 and w % NORM_GROUPS == 0 for w in widths), "every width a multiple of 32 (GroupNorm)"),
            (self.num_res_blocks >= 1 and self.z_channels > 0, "num_res_blocks >= 1 and z_channels > 0"),
        )
        for ok, rule in checks:
            if not ok:
                raise ConfigError(f"LlamaGenVQConfig: {rule}; got {self}")

    @property
    def downsampling(self) -> int:
        """Pixels per token side: 2 ** (levels - 1)."""
        return 2 ** (len(self.encoder_ch_mult) - 1)

    @property
    def bits_per_token(self) -> float:
        """log2 of the codebook size."""
        return math.log2(self.codebook_size)


def config_from_official(
    model_args: Mapping[str, Any], ch: int = 128, num_res_blocks: int = 2
) -> LlamaGenVQConfig:
    """A ``LlamaGenVQConfig`` from the official ``ModelArgs`` fields (a dict; absent keys take the
    official defaults) and the two constructor arguments that are not in ``ModelArgs``. Training-only
    fields (losses, dropout, usage tracking) are accepted and ignored."""
    default = LlamaGenVQConfig()
    try:
        return LlamaGenVQConfig(
            codebook_size=int(model_args.get("codebook_size", default.codebook_size)),
            codebook_embed_dim=int(model_args.get("codebook_embed_dim", default.codebook_embed_dim)),
            codebook_l2_norm=bool(model_args.get("codebook_l2_norm", default.codebook_l2_norm)),
            encoder_ch_mult=tuple(int(m) for m in model_args.get("encoder_ch_mult", default.encoder_ch_mult)),
            decoder_ch_mult=tuple(int(m) for m in model_args.get("decoder_ch_mult", default.decoder_ch_mult)),
            z_channels=int(model_args.get("z_channels", default.z_channels)),
            ch=int(ch),
            num_res_blocks=int(num_res_blocks),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"official LlamaGen ModelArgs mistyped: {exc}") from None


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(NORM_GROUPS, channels, eps=NORM_EPS, affine=True)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=padding)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


def swish(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)``, written out as the official code does (F.silu differs by ~1e-5)."""
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """norm1, swish, conv1, norm2, swish, conv2 plus the input; a 1×1 ``nin_shortcut`` maps the
    input when the width changes."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.norm2 = _norm(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.nin_shortcut = (
            _conv1x1(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all h·w positions, scores scaled by C^-1/2, then
    ``proj_out`` and the residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = _conv1x1(channels, channels)
        self.k = _conv1x1(channels, channels)
        self.v = _conv1x1(channels, channels)
        self.proj_out = _conv1x1(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q = self.q(normed).reshape(b, c, h * w).permute(0, 2, 1)  # B, HW(query), C
        k = self.k(normed).reshape(b, c, h * w)  # B, C, HW(key)
        v = self.v(normed).reshape(b, c, h * w)  # B, C, HW(key)
        weights = torch.softmax(torch.bmm(q, k) * (c**-0.5), dim=2)  # B, query, key
        attended = torch.bmm(v, weights.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(attended)


class Downsample(nn.Module):
    """Official: zero-pad one pixel on the right and bottom only, then a 3×3 conv of stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3x3(channels, channels, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: res blocks (``res.j``), each followed by an attention block
    (``attn.j``) when ``attention``, then an optional ``downsample`` or ``upsample``."""

    def __init__(
        self, in_channels: int, out_channels: int, num_blocks: int, attention: bool, resample: str | None
    ) -> None:
        super().__init__()
        self.res = nn.ModuleList(
            ResnetBlock(in_channels if j == 0 else out_channels, out_channels) for j in range(num_blocks)
        )
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(num_blocks if attention else 0))
        self.resample = resample
        if resample == "down":
            self.downsample = Downsample(out_channels)
        elif resample == "up":
            self.upsample = Upsample(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self.res):
            x = block(x)
            if len(self.attn):
                x = self.attn[j](x)
        if self.resample == "down":
            x = self.downsample(x)
        elif self.resample == "up":
            x = self.upsample(x)
        return x


def _middle(channels: int) -> nn.ModuleList:
    """``mid``: res, attention, res at constant width (keys ``mid.0/1/2``)."""
    return nn.ModuleList(
        [ResnetBlock(channels, channels), AttnBlock(channels), ResnetBlock(channels, channels)]
    )


def _run(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


class Encoder(nn.Module):
    """conv_in, one ``Level`` per ch_mult entry (attention only in the last, a downsample after all
    but the last), ``mid``, norm_out, swish and conv_out to ``z_channels``."""

    def __init__(self, config: LlamaGenVQConfig) -> None:
        super().__init__()
        mult, last = config.encoder_ch_mult, len(config.encoder_ch_mult) - 1
        widths = [config.ch * m for m in mult]
        self.conv_in = _conv3x3(3, config.ch)
        self.conv_blocks = nn.ModuleList(
            Level(
                config.ch if i == 0 else widths[i - 1],
                widths[i],
                config.num_res_blocks,
                attention=i == last,
                resample=None if i == last else "down",
            )
            for i in range(len(mult))
        )
        self.mid = _middle(widths[-1])
        self.norm_out = _norm(widths[-1])
        self.conv_out = _conv3x3(widths[-1], config.z_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _run(self.conv_blocks, self.conv_in(x))
        return self.conv_out(swish(self.norm_out(_run(self.mid, x))))


class Decoder(nn.Module):
    """conv_in from ``z_channels``, ``mid``, then the levels from the lowest resolution up (official:
    ``conv_blocks.0`` is the widest, lowest-resolution level and the only one with attention),
    ``num_res_blocks + 1`` res blocks each and an upsample after all but the last; norm_out, swish,
    conv_out to RGB."""

    def __init__(self, config: LlamaGenVQConfig) -> None:
        super().__init__()
        widths = [config.ch * m for m in reversed(config.decoder_ch_mult)]
        last = len(widths) - 1
        self.conv_in = _conv3x3(config.z_channels, widths[0])
        self.mid = _middle(widths[0])
        self.conv_blocks = nn.ModuleList(
            Level(
                widths[0] if i == 0 else widths[i - 1],
                widths[i],
                config.num_res_blocks + 1,
                attention=i == 0,
                resample=None if i == last else "up",
            )
            for i in range(len(widths))
        )
        self.norm_out = _norm(widths[-1])
        self.conv_out = _conv3x3(widths[-1], 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = _run(self.conv_blocks, _run(self.mid, self.conv_in(z)))
        return self.conv_out(swish(self.norm_out(x)))


class VectorQuantizer(nn.Module):
    """Nearest codebook row of each latent position, both l2-normalised at use time when
    ``l2_norm`` (the stored rows of trained checkpoints are not unit-norm)."""

    def __init__(self, codebook_size: int, dim: int, l2_norm: bool) -> None:
        super().__init__()
        self.l2_norm = l2_norm
        self.register_buffer("codebook_used", torch.zeros(CODEBOOK_USED_LENGTH))
        # uniform(±1/K) as the official init (``random_init`` also normalises the rows, as the official
        # constructor does); no normal_ draw, which costs seconds of kernel set-up on the meta device.
        weight = torch.empty(codebook_size, dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        self.embedding = nn.Embedding(codebook_size, dim, _weight=weight)

    def codebook(self) -> torch.Tensor:
        """The K×D rows as the search and the lookup use them."""
        weight = self.embedding.weight
        return F.normalize(weight, dim=-1) if self.l2_norm else weight

    def search_vectors(self, latent: torch.Tensor) -> torch.Tensor:
        """A [B, D, h, w] latent as the searched rows, [B·h·w, D] in raster order (batch, row,
        column), l2-normalised when ``l2_norm``."""
        rows = latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])
        return F.normalize(rows, dim=-1) if self.l2_norm else rows

    def distances(self, rows: torch.Tensor) -> torch.Tensor:
        """Squared distances ‖z‖² + ‖e‖² − 2 z·e of search rows [M, D] to every codebook row [M, K]."""
        codebook = self.codebook()
        return rows.pow(2).sum(dim=1, keepdim=True) + codebook.pow(2).sum(dim=1) - 2.0 * rows @ codebook.T

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The straight-through latent ``z + (e − z)`` [B, D, h, w] (z normalised) and the token grid
        int64 [B, h, w] (argmin; the first index wins a tie)."""
        b, d, h, w = latent.shape
        rows = self.search_vectors(latent)
        indices = self.distances(rows).argmin(dim=1)
        chosen = self.codebook()[indices]
        quantized = rows + (chosen - rows)
        return quantized.reshape(b, h, w, d).permute(0, 3, 1, 2), indices.reshape(b, h, w)

    def lookup(self, grid: torch.Tensor) -> torch.Tensor:
        """Codebook rows of a token grid int64 [B, h, w] as a contiguous [B, D, h, w] latent
        (official: contiguous NCHW before ``post_quant_conv``)."""
        return self.codebook()[grid].permute(0, 3, 1, 2).contiguous()


class LlamaGenVQModel(nn.Module):
    """A LlamaGen VQ tokenizer network; its ``state_dict`` equals the official checkpoints' in keys,
    shapes and order (the ``quantize.codebook_used`` buffer included).

    Images are float32 [B, 3, H, W] in [-1, 1] with H and W multiples of ``downsampling``; outputs
    of ``decode``, ``decode_grid`` and ``forward`` are raw (not clamped), as in the official code.
    """

    def __init__(self, config: LlamaGenVQConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(
            config.codebook_size, config.codebook_embed_dim, config.codebook_l2_norm
        )
        self.quant_conv = _conv1x1(config.z_channels, config.codebook_embed_dim)
        self.post_quant_conv = _conv1x1(config.codebook_embed_dim, config.z_channels)

    @classmethod
    def random_init(cls, config: LlamaGenVQConfig, seed: int = 0) -> LlamaGenVQModel:
        """The official init (PyTorch's defaults, a uniform(±1/K) codebook, l2-normalised), reproducible
        from ``seed`` and leaving torch's global RNG untouched (tests)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
        if config.codebook_l2_norm:
            with torch.no_grad():
                model.quantize.embedding.weight.copy_(model.quantize.codebook())
        return model.eval()

    @classmethod
    def from_state_dict(
        cls, config: LlamaGenVQConfig, state_dict: Mapping[str, torch.Tensor]
    ) -> LlamaGenVQModel:
        """Build without allocating random weights and adopt ``state_dict``: keys and shapes must match
        exactly (strict), values are taken as float32."""
        with torch.device("meta"):
            model = cls(config)
        adopt_state_dict(model, state_dict, "LlamaGen VQ config", sort_missing=False)
        return model.eval()

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """The pre-quantisation latent [B, D, H/f, W/f]: ``quant_conv(encoder(images))``."""
        return self.quant_conv(self.encoder(images))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The token grid int64 [B, H/f, W/f]."""
        return self.quantize(self.encode_latent(images))[1]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """A [B, D, h, w] latent to raw pixels [B, 3, h·f, w·f]."""
        return self.decoder(self.post_quant_conv(latent))

    def decode_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """A token grid int64 [B, h, w] to raw pixels (the official ``decode_code``)."""
        return self.decode(self.quantize.lookup(grid))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``decode`` of the straight-through latent, as the official ``forward``."""
        return self.decode(self.quantize(self.encode_latent(images))[0])
