"""Token reduction inside open_clip's vision transformer: drop or merge patch tokens after block K,
or merge inside every block (ToMe as published).

``encode_image_reduced`` runs an open_clip ``VisionTransformer`` block by block. The first ``layer``
blocks see every token; then a pre-LLM ``Pruner`` (the same adapters as the VLM pruning suite:
``random``, ``cls-attn``, ``tome``, ``divprune``, ``visionzip``, ``pool``, ``none``) reduces the patch
tokens to ``keep`` (the [CLS] token always stays), and the remaining blocks, the final norm, the
[CLS] pooling and the projection run on the reduced sequence.

The pruner sees a ``PreLLMContext`` built from block K: ``tokens`` and ``vision_features`` are the
patch tokens after block K, ``vision_attentions`` block K's attention probabilities and
``vision_keys`` its keys (over [CLS] + patches), ``grid`` the patch grid.

Blocks are computed here with explicit matrix products (numerically the block's own computation up to
float round-off; tests check it against ``visual(x)``), so the attention maps are available and
``torch.utils.flop_counter`` sees every multiply–add: fused attention kernels hide theirs.
Merged tokens get no size-weighted (proportional) attention afterwards: the Pruner contract returns
tokens and indices only.

A ``BlockMerger`` pruner (``tome-vit``) instead runs ToMe's block (facebookresearch/ToMe
``tome/patch/timm.py``, ``ToMeBlock``/``ToMeAttention``) in every block from the first: attention with
the log token sizes added to the logits (proportional attention), then its residual, then
``merge_block`` merges ``block_r`` tokens matched on the keys averaged over heads ([CLS] protected),
then the MLP on the merged tokens. ``layer`` does not apply to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from tokbench.adapters.base import PreLLMContext, Pruner, ReducedTokens
from tokbench.errors import AdapterOutputError, ConfigError

NUM_PREFIX = 1  # the [CLS] token


@dataclass(frozen=True)
class BlockOutput:
    """A block's output tokens and, on request, its attention probabilities and keys."""

    tokens: torch.Tensor
    attentions: torch.Tensor | None = None
    keys: torch.Tensor | None = None


@runtime_checkable
class BlockMerger(Protocol):
    """A pruner that merges tokens inside every ViT block (ToMe as published)."""

    def block_r(self, block: int, num_blocks: int, patches: int, keep: int) -> int:
        """Tokens to merge in block ``block`` (0-based) of ``num_blocks``."""
        ...

    def merge_block(
        self, tokens: torch.Tensor, sizes: torch.Tensor | None, metric: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Merge ``r`` of ``tokens`` ([CLS] first, protected) by ``metric``; new tokens and sizes."""
        ...


def check_visual(visual: Any) -> None:
    """Raise ConfigError unless ``visual`` is an open_clip ViT with standard blocks and [CLS] pooling."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    if not isinstance(visual, VisionTransformer):
        raise ConfigError(
            f"ViT token reduction needs an open_clip VisionTransformer, got {type(visual).__name__} "
            "(timm and ResNet towers are not supported)"
        )
    blocks = visual.transformer.resblocks
    if not all(isinstance(block, ResidualAttentionBlock) for block in blocks):
        raise ConfigError("ViT token reduction supports open_clip's standard ResidualAttentionBlock only")
    if not visual.transformer.batch_first or visual.attn_pool is not None or visual.pool_type != "tok":
        raise ConfigError(
            "ViT token reduction needs a batch-first transformer with [CLS] pooling (pool_type 'tok', "
            "no attentional pooler)"
        )


def num_patches(visual: Any) -> int:
    """Patch tokens of the ViT's input grid."""
    return int(visual.grid_size[0] * visual.grid_size[1])


def _attention(
    block: Any, x: torch.Tensor, sizes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The block's attention branch (before the residual), its probabilities and keys (B×H×L×d);
    with ``sizes`` (B×L), ``log(sizes)`` is added to every query's logits (proportional attention)."""
    attention = block.attn
    heads = attention.num_heads
    b, length, width = x.shape
    y = block.ln_1(x)
    q, k, v = F.linear(y, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(width // heads))
    if sizes is not None:
        scores = scores + sizes.log().to(scores.dtype)[:, None, None, :]
    probabilities = scores.softmax(dim=-1)
    mixed = torch.matmul(probabilities, v).transpose(1, 2).reshape(b, length, width)
    return block.ls_1(attention.out_proj(mixed)), probabilities, k


def block_forward(block: Any, x: torch.Tensor, with_attention: bool = False) -> BlockOutput:
    """One ``ResidualAttentionBlock`` on B×L×D tokens, with explicit attention products."""
    branch, probabilities, k = _attention(block, x)
    x = x + branch
    x = x + block.ls_2(block.mlp(block.ln_2(x)))
    if not with_attention:
        return BlockOutput(x)
    keys = k.transpose(1, 2).reshape(x.shape)
    return BlockOutput(x, probabilities, keys)


def merging_block_forward(
    block: Any, x: torch.Tensor, sizes: torch.Tensor | None, merger: BlockMerger, r: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ToMe's block: proportional attention and its residual, ``r`` merges on the head-mean keys,
    then the MLP on the merged tokens; the new tokens and sizes (None while nothing has merged)."""
    branch, _, k = _attention(block, x, sizes)
    x = x + branch
    if r > 0:
        x, sizes = merger.merge_block(x, sizes, k.mean(dim=1), r)
    return x + block.ls_2(block.mlp(block.ln_2(x))), sizes


def encode_image_reduced(
    visual: Any,
    pixels: torch.Tensor,
    pruner: Pruner | None = None,
    keep: int | None = None,
    layer: int = 4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """The image embedding (B×E, not normalised) with patch tokens reduced to ``keep`` after block
    ``layer`` (a ``BlockMerger``: merged in every block), and the sequence length each block saw.
    Without a pruner no token is removed."""
    blocks = visual.transformer.resblocks
    if pruner is not None and not 1 <= layer < len(blocks):
        raise ConfigError(f"layer={layer} must be in [1, {len(blocks) - 1}] for this {len(blocks)}-block ViT")
    x = visual._embeds(pixels)
    lengths = []
    sizes = None
    patches = x.shape[1] - NUM_PREFIX
    if isinstance(pruner, BlockMerger) and (keep is None or not 1 <= keep <= patches):
        raise ConfigError(f"keep={keep} must be in [1, {patches}] patch tokens")
    for index, block in enumerate(blocks):
        lengths.append(x.shape[1])
        if isinstance(pruner, BlockMerger):
            r = pruner.block_r(index, len(blocks), patches, keep)
            x, sizes = merging_block_forward(block, x, sizes, pruner, r)
            continue
        reduce_here = pruner is not None and index == layer - 1
        output = block_forward(block, x, with_attention=reduce_here)
        x = output.tokens
        if reduce_here:
            x = reduce_tokens(visual, output, pruner, keep, generator)
    pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled, lengths


def reduce_tokens(
    visual: Any, output: BlockOutput, pruner: Pruner, keep: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """[CLS] followed by the pruner's ``keep`` tokens chosen from block K's patch tokens."""
    patches = output.tokens[:, NUM_PREFIX:]
    if keep is None or not 1 <= keep <= patches.shape[1]:
        raise ConfigError(f"keep={keep} must be in [1, {patches.shape[1]}] patch tokens")
    context = PreLLMContext(
        tokens=patches,
        vision_features=patches,
        grid=(int(visual.grid_size[0]), int(visual.grid_size[1])),
        vision_attentions=output.attentions,
        vision_keys=output.keys,
        num_prefix=NUM_PREFIX,
        generator=generator,
    )
    reduced = pruner.reduce(context, keep)
    if not isinstance(reduced, ReducedTokens):
        raise AdapterOutputError(
            f"pruner {type(pruner).__name__}.reduce returned {type(reduced).__name__}, expected ReducedTokens"
        )
    expected = (patches.shape[0], keep, patches.shape[2])
    if tuple(reduced.tokens.shape) != expected:
        raise AdapterOutputError(
            f"pruner {type(pruner).__name__} returned tokens of shape {tuple(reduced.tokens.shape)}, "
            f"expected {expected}"
        )
    return torch.cat([output.tokens[:, :NUM_PREFIX], reduced.tokens.to(output.tokens.dtype)], dim=1)


def encoder_flops(visual: Any, lengths: list[int]) -> int:
    """Analytic FLOPs (multiply–add = 2) of one image through the ViT given each block's sequence
    length: patch embedding, per block the qkv/out projections, attention scores and values and the
    MLP, then the projection of the pooled token. Block K's attention serves both the block and the
    pruner, so scoring adds nothing; the pruner's own arithmetic (sorting, merging) is not counted.
    Tests check it against ``torch.utils.flop_counter`` on ``encode_image_reduced``. A
    ``BlockMerger``'s MLPs run on the merged tokens, fewer than ``lengths`` counts: the track measures
    its FLOPs with the counter."""
    width = int(visual.conv1.out_channels)
    patch = int(visual.conv1.kernel_size[0] * visual.conv1.kernel_size[1])
    hidden = int(visual.transformer.resblocks[0].mlp.c_fc.out_features)
    total = 2 * num_patches(visual) * 3 * patch * width
    for length in lengths:
        total += (
            2 * length * 4 * width * width + 2 * 2 * length * length * width + 2 * 2 * length * width * hidden
        )
    if visual.proj is not None:
        total += 2 * width * int(visual.proj.shape[1])
    return total
