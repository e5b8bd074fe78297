"""The built-in visual-token pruners, registered as models (``tokbench run --model fastv:budget=64``).

Each is a thin adapter over a rule in ``tokbench.pruning.rules``; the host (``tokbench.pruning.host``)
applies it before the LLM (``reduce``) or inside it (``schedule`` + ``select_in_layer``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tokbench.adapters.base import LayerContext, PreLLMContext, Pruner, ReducedTokens
from tokbench.errors import ConfigError
from tokbench.pruning import rules

__all__ = [
    "ClsAttention",
    "DivPrune",
    "FastV",
    "NoPruning",
    "Pool",
    "PyramidDrop",
    "RandomPruning",
    "ToMe",
    "VisionZip",
]


def _batch_index(tokens: torch.Tensor, keep: int) -> torch.Tensor:
    return torch.arange(keep, device=tokens.device).expand(tokens.shape[0], keep)


def _selected(context: PreLLMContext, index: torch.Tensor) -> ReducedTokens:
    return ReducedTokens(tokens=rules.gather_tokens(context.tokens, index), index=index)


class NoPruning(Pruner):
    """The unpruned model: every visual token is kept (the reference for "% of unpruned")."""

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Return the tokens unchanged; ``keep`` must equal the token count."""
        n = context.tokens.shape[1]
        if keep != n:
            raise ConfigError(f"pruner 'none' keeps all {n} visual tokens; drop budget={keep} or use another")
        return ReducedTokens(tokens=context.tokens, index=_batch_index(context.tokens, n))


class RandomPruning(Pruner):
    """Uniformly random visual tokens, seeded per run (the baseline that "Rethinking visual token
    reduction" studies found hard to beat, e.g. Wen et al. 2025, arXiv:2502.11501)."""

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Keep ``keep`` tokens drawn without replacement with the run's generator."""
        n = context.tokens.shape[1]
        rows = [rules.random_indices(n, keep, context.generator) for _ in range(context.tokens.shape[0])]
        return _selected(context, torch.stack(rows).to(context.tokens.device))


class Pool(Pruner):
    """Spatial average pooling of the projected token grid to the budget (plain downsampling)."""

    merges_tokens: ClassVar[bool] = True

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Average-pool the row-major grid to an a×b grid with a·b = keep."""
        pooled = rules.pool_tokens(context.tokens, context.grid, keep)
        return ReducedTokens(tokens=pooled, index=_pool_centres(context.grid, keep, pooled))


def _pool_centres(grid: tuple[int, int], keep: int, pooled: torch.Tensor) -> torch.Tensor:
    """The original index nearest each pooled cell's centre (for reporting which region a slot is)."""
    h, w = grid
    a, b = rules.pool_grid(grid, keep)
    rows = ((torch.arange(a) + 0.5) * h / a).long().clamp(max=h - 1)
    cols = ((torch.arange(b) + 0.5) * w / b).long().clamp(max=w - 1)
    index = (rows[:, None] * w + cols[None, :]).flatten().to(pooled.device)
    return index.expand(pooled.shape[0], keep)


class ClsAttention(Pruner):
    """FasterVLM (Zhang et al. 2024, "[CLS] attention is all you need for training-free visual token
    pruning", arXiv:2412.01818): keep the patches the vision encoder's [CLS] attends to most."""

    needs_attention: ClassVar[bool] = True

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Top-``keep`` patches of the head-averaged [CLS] row of the selected vision layer."""
        scores = rules.cls_attention_scores(_vision_attentions(context, "cls-attn"), context.num_prefix)
        return _selected(context, rules.topk_indices(scores, keep))


def _vision_attentions(context: PreLLMContext, name: str) -> torch.Tensor:
    if context.vision_attentions is None:
        raise ConfigError(f"pruner {name!r} needs the vision encoder's attention maps; the host gave none")
    return context.vision_attentions


class DivPrune(Pruner):
    """DivPrune (Alvar et al., CVPR 2025, arXiv:2503.02175): the max–min diverse subset of the
    projected visual tokens (greedy, cosine distance), per image."""

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Greedy max–min diversity selection on each image's projected tokens."""
        rows = [rules.divprune_indices(tokens, keep) for tokens in context.tokens]
        return _selected(context, torch.stack(rows))


class VisionZip(Pruner):
    """VisionZip (Yang et al., CVPR 2025, arXiv:2412.04467): dominant tokens by [CLS] attention plus
    contextual tokens merged by key similarity; ``contextual`` defaults to the paper's 54:10 split
    (10/64 of the budget: 54+10, 108+20, 162+30)."""

    needs_attention: ClassVar[bool] = True
    merges_tokens: ClassVar[bool] = True

    def __init__(
        self, budget: int | float | str = 576, contextual: int | None = None, vlm: str | None = None
    ):
        super().__init__(budget, vlm)
        if contextual is not None and contextual < 0:
            raise ConfigError(f"visionzip: contextual={contextual} must be >= 0")
        self.contextual = contextual

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Dominant + contextual tokens; the merge runs on the projected tokens."""
        contextual = round(keep * 10 / 64) if self.contextual is None else self.contextual
        if contextual > keep:
            raise ConfigError(f"visionzip: contextual={contextual} exceeds the budget {keep}")
        if context.vision_keys is None:
            raise ConfigError("pruner 'visionzip' needs the vision encoder's keys; the host gave none")
        scores = rules.cls_attention_scores(_vision_attentions(context, "visionzip"), context.num_prefix)
        keys = context.vision_keys[:, context.num_prefix :]
        merged = rules.visionzip_merge(context.tokens, scores, keys, keep - contextual, contextual)
        return ReducedTokens(tokens=merged.tokens, index=merged.index)


class ToMe(Pruner):
    """ToMe (Bolya et al., ICLR 2023, arXiv:2210.09461) bipartite soft matching applied to the
    projected visual tokens, in rounds, until the budget remains (size-weighted averages)."""

    merges_tokens: ClassVar[bool] = True

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Merge by cosine similarity of the vision features until ``keep`` tokens remain."""
        merged = rules.tome_reduce(context.tokens, keep, metric=context.vision_features)
        return ReducedTokens(tokens=merged.tokens, index=merged.index)


class FastV(Pruner):
    """FastV (Chen et al., ECCV 2024, "An image is worth 1/2 tokens after layer 2",
    arXiv:2403.06764): after decoder layer ``layer`` (K), keep the visual tokens that received the
    most attention from the last text token at layer K-1; layers before K see every token."""

    stage: ClassVar[str] = "intra-llm"
    needs_attention: ClassVar[bool] = True

    def __init__(self, budget: int | float | str = 576, layer: int = 2, vlm: str | None = None):
        super().__init__(budget, vlm)
        if layer < 1:
            raise ConfigError(f"fastv: layer={layer} must be >= 1 (the attention of layer K-1 ranks tokens)")
        self.layer = layer

    def schedule(self, num_layers: int, keep: int) -> list[tuple[int, int]]:
        """One drop at layer K."""
        if self.layer >= num_layers:
            raise ConfigError(
                f"{type(self).__name__}: layer={self.layer} must be < the LLM's {num_layers} layers"
            )
        return [(self.layer, keep)]

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        """Top-``keep`` visual tokens by the last query's head-averaged attention."""
        scores = rules.query_attention_scores(context.attentions, context.visual_positions)
        return rules.topk_indices(scores, keep)


class PyramidDrop(FastV):
    """PyramidDrop (Xing et al., CVPR 2025, arXiv:2410.17247): staged drops ranked by the last
    instruction token's attention. Here the budget is kept from layer ``layer`` (K) on, and at
    half and three quarters of the depth the visual tokens are multiplied again by ``ratio`` (λ);
    the record reports the layer-averaged visual token count."""

    def __init__(
        self, budget: int | float | str = 576, layer: int = 2, ratio: float = 0.5, vlm: str | None = None
    ):
        super().__init__(budget, layer, vlm)
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"pdrop: ratio={ratio} must be in (0, 1]")
        self.ratio = ratio

    def schedule(self, num_layers: int, keep: int) -> list[tuple[int, int]]:
        """Stage boundaries K, L/2, 3L/4 (those after K), each keeping ``ratio`` of the previous."""
        stages = super().schedule(num_layers, keep)
        for boundary in (num_layers // 2, (3 * num_layers) // 4):
            if boundary > stages[-1][0]:
                stages.append((boundary, max(1, round(stages[-1][1] * self.ratio))))
        return stages
