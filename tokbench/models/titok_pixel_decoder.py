"""The MaskGIT-VQGAN pixel decoder of two-stage TiTok models: its config, codebook and network.

Parameter names follow the official checkpoints; the official quirks are kept and marked "quirk".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PixelDecoderConfig:
    """The MaskGIT-VQGAN decoder of two-stage models; the official values are hard-coded in Python."""

    hidden_channels: int = 128
    z_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2


class PixelCodebook(nn.Module):
    """The MaskGIT-VQGAN codebook (``embedding.weight`` [1024, z_channels]) used for soft mixing."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)

    def mix(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over the codebook axis of [B, K, h, w] logits, then the weighted sum of entries."""
        return torch.einsum("nchw,cd->ndhw", logits.softmax(dim=1), self.embedding.weight)


def _conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    # TF "same" padding for a 3×3 kernel at stride 1 is one pixel on every side.
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm, SiLU, conv3×3 (no bias), GroupNorm, SiLU, conv3×3 (no bias), residual."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, bias=False)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels, bias=False)
        self.changes_width = in_channels != out_channels
        if self.changes_width:
            self.nin_shortcut = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout 0 in every official model
        if self.changes_width:
            # quirk: the 1×1 shortcut is applied to the block's own output, not to its input.
            return h + self.nin_shortcut(h)
        return h + x


class UpBlock(nn.Module):
    """ResnetBlocks, then (except at the finest level) nearest ×2 upsampling and a conv3×3."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, upsample: bool) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_blocks
        self.block = nn.ModuleList(ResnetBlock(widths[i], widths[i + 1]) for i in range(num_blocks))
        self.upsample = upsample
        if upsample:
            self.upsample_conv = _conv3x3(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        return self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest")) if self.upsample else x


class PixelDecoder(nn.Module):
    """The MaskGIT-VQGAN decoder (dropout 0): z_channels → RGB, upsampling 2^(levels−1)×.

    ``up.i`` works at width hidden·mult[i]; they run from the coarsest, ``up.{levels-1}``, down to
    ``up.0``, which does not upsample.
    """

    def __init__(self, config: PixelDecoderConfig) -> None:
        super().__init__()
        widths = [config.hidden_channels * m for m in config.channel_mult]
        blocks, top = config.num_res_blocks, len(widths) - 1
        self.conv_in = _conv3x3(config.z_channels, widths[-1])
        self.mid = nn.ModuleList(ResnetBlock(widths[-1], widths[-1]) for _ in range(blocks))
        self.up = nn.ModuleList(
            UpBlock(widths[min(i + 1, top)], widths[i], blocks, i > 0) for i in range(top + 1)
        )
        self.norm_out = _group_norm(widths[0])
        self.conv_out = _conv3x3(widths[0], 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(z)
        for block in (*self.mid, *reversed(self.up)):
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))
