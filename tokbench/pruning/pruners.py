"""The built-in visual-token pruners, registered as models (``tokbench run --model fastv:budget=64``).

Most are thin adapters over a rule in ``tokbench.pruning.rules``; VisionZip and PyramidDrop follow
their official code step by step here (pinned by ``tests/pruning/test_pruner_goldens.py``). The host
(``tokbench.pruning.host``) applies them before the LLM (``reduce``) or inside it (``schedule`` +
``select_in_layer``).
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
    "FastVOfficial",
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


ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


class NoPruning(Pruner):
    """The unpruned model: every visual token is kept (the reference for "% of unpruned").

    ``vision_attention`` and ``text_attention`` choose the attention implementation of the vision
    tower and of the LLM, so the baseline of a pruner that needs eager attention runs as it does.
    """

    def __init__(
        self,
        budget: int | float | str = 576,
        vlm: str | None = None,
        vision_attention: str = "sdpa",
        text_attention: str = "sdpa",
    ):
        super().__init__(budget, vlm)
        for name, value in (("vision_attention", vision_attention), ("text_attention", text_attention)):
            if value not in ATTENTION_IMPLEMENTATIONS:
                raise ConfigError(
                    f"pruner 'none': {name}={value!r}; use one of {list(ATTENTION_IMPLEMENTATIONS)}"
                )
        #: The attention implementation per tower (``vision``, ``text``) the host runs this baseline with.
        self.attention = {"vision": vision_attention, "text": text_attention}

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
    """VisionZip (Yang et al., CVPR 2025, arXiv:2412.04467) as dvlab-research/VisionZip runs it in
    LLaVA-1.5: on the vision layer LLaVA reads (-2), before the projector. The [CLS] token and the
    patches with the highest head-summed [CLS] attention are the dominant tokens (in sequence
    order); of the other patches, every ``step = n_rest // contextual``-th is a target, each other
    patch joins the target nearest by cosine of the head-averaged keys, and a contextual token is its
    target plus the mean of its members. Output: [CLS], dominant patches, contextual tokens, then
    the projector. ``contextual`` defaults to the paper's 54:10 split (10/64 of the budget: 54+10,
    108+20, 162+30, the [CLS] counted among the dominant tokens); ``contextual=0`` keeps dominant
    tokens only. Where the host keeps [CLS] itself (ViT reduction: no ``prefix_features``) the
    dominant patches take its slot."""

    version: ClassVar[str] = "2"
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
        """[CLS] + dominant + contextual tokens merged in the vision layer's space, then projected."""
        contextual = round(keep * 10 / 64) if self.contextual is None else self.contextual
        prefix = context.prefix_features
        kept_prefix = 0 if prefix is None else prefix.shape[1]
        dominant = keep - contextual - kept_prefix
        if dominant < 0:
            raise ConfigError(
                f"visionzip: contextual={contextual} plus {kept_prefix} [CLS] token exceeds the budget {keep}"
            )
        if context.vision_keys is None:
            raise ConfigError("pruner 'visionzip' needs the vision encoder's keys; the host gave none")
        if context.projector is None and context.tokens.shape != context.vision_features.shape:
            raise ConfigError(
                "pruner 'visionzip' merges vision features and needs the VLM's projector; the host gave none"
            )
        attentions = _vision_attentions(context, "visionzip")
        b, length, width = context.vision_keys.shape
        heads = attentions.shape[1]
        scores = attentions[:, :, 0, context.num_prefix :].sum(dim=1)
        metric = context.vision_keys.view(b, length, heads, width // heads).mean(dim=2)
        merged, index = _visionzip_tokens(
            context.vision_features, scores, metric[:, context.num_prefix :], dominant, contextual
        )
        if prefix is not None:
            merged = torch.cat([prefix, merged], dim=1)
            index = torch.cat([index.new_full((b, kept_prefix), -1), index], dim=1)
        tokens = merged if context.projector is None else context.projector(merged)
        return ReducedTokens(tokens=tokens.to(context.tokens.dtype), index=index)


def _visionzip_tokens(
    features: torch.Tensor, scores: torch.Tensor, metric: torch.Tensor, dominant: int, contextual: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """VisionZip's dominant patches (ascending) and contextual tokens (target order) with their indices."""
    b, n, _ = features.shape
    rest_mask = torch.ones(b, n, dtype=torch.bool, device=features.device)
    rest_mask.scatter_(1, torch.topk(scores, dominant, dim=1).indices, False)
    chosen = torch.nonzero(~rest_mask)[:, 1].view(b, dominant)
    dominant_tokens = rules.gather_tokens(features, chosen)
    if contextual == 0:
        return dominant_tokens, chosen
    rest = torch.nonzero(rest_mask)[:, 1].view(b, n - dominant)
    hidden = rules.gather_tokens(features, rest)
    keys = rules.gather_tokens(metric, rest)
    keys = keys / keys.norm(dim=-1, keepdim=True)
    step = max(1, rest.shape[1] // contextual)
    targets = torch.arange(0, rest.shape[1], step, device=features.device)[:contextual]
    members = torch.ones(rest.shape[1], dtype=torch.bool, device=features.device)
    members[targets] = False
    assign = torch.bmm(keys[:, members], keys[:, targets].transpose(1, 2)).argmax(dim=2)
    sums = hidden.new_zeros(b, contextual, hidden.shape[2])
    sums.scatter_add_(1, assign.unsqueeze(-1).expand(-1, -1, hidden.shape[2]), hidden[:, members])
    counts = torch.zeros(b, contextual, dtype=hidden.dtype, device=features.device)
    counts.scatter_add_(1, assign, torch.ones_like(assign, dtype=hidden.dtype))
    merged = hidden[:, targets] + sums / counts.clamp(min=1).unsqueeze(-1)
    return torch.cat([dominant_tokens, merged], dim=1), torch.cat([chosen, rest[:, targets]], dim=1)


class ToMe(Pruner):
    """ToMe, projector-space adaptation (not the published method): ToMe's bipartite soft matching
    (Bolya et al., ICLR 2023, arXiv:2210.09461; ``rules.tome_merge``) applied once, after the
    projector, to the projected visual tokens, matching on the CLIP layer −2 features, in rounds until
    the budget remains (size-weighted averages). The published form merges ``r`` tokens inside every
    ViT block instead: ``tome-vit``."""

    merges_tokens: ClassVar[bool] = True

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Merge by cosine similarity of the vision features until ``keep`` tokens remain."""
        merged = rules.tome_reduce(context.tokens, keep, metric=context.vision_features)
        return ReducedTokens(tokens=merged.tokens, index=merged.index)


class ToMeViT(ToMe):
    """ToMe as published (Bolya et al., ICLR 2023; facebookresearch/ToMe ``tome/patch/timm.py``) for
    the ``vit-reduction`` suite: in every ViT block, after attention with proportional attention,
    ``r`` tokens merge (``rules.tome_merge`` on the head-mean keys, [CLS] protected), then the MLP
    runs (``tokbench.semantic.vit_reduction.BlockMerger``). ``r`` is constant per block as published;
    without it the ``patches − keep`` merges are spread over the blocks, ``ceil`` per block from the
    first, so exactly ``keep`` patches remain. Outside a ViT, ``reduce`` is the projector-space
    ``tome``."""

    def __init__(self, budget: int | float | str = 576, r: int | None = None, vlm: str | None = None):
        super().__init__(budget, vlm)
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
            raise ConfigError(f"tome-vit: r={r!r} must be an int >= 0 (tokens merged per block)")
        self.r = r

    def block_r(self, block: int, num_blocks: int, patches: int, keep: int) -> int:
        """Tokens to merge in block ``block`` (0-based): ``r``, or the budget's share."""
        if self.r is not None:
            return self.r
        per_block = -(-(patches - keep) // num_blocks)
        return max(0, min(per_block, patches - keep - per_block * block))

    def merge_block(
        self, tokens: torch.Tensor, sizes: torch.Tensor | None, metric: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One ToMe merge of ``r`` tokens ([CLS] first, protected); the merged tokens and sizes."""
        merged = rules.tome_merge(tokens, r, sizes, metric, protected=1)
        return merged.tokens, merged.sizes


class FastV(Pruner):
    """FastV (Chen et al., ECCV 2024, "An image is worth 1/2 tokens after layer 2",
    arXiv:2403.06764): after decoder layer ``layer`` (K), keep the visual tokens that received the
    most attention from the last text token at layer K-1; layers before K see every token. Ranked
    once, in prefill, and the cut prompt is cached for decoding: the form of FastV's lmms-eval
    ``fastv_kvcache.py`` (its selection is the paper fork's at the same K and rank); original
    positions are kept, with gaps."""

    stage: ClassVar[str] = "intra-llm"
    needs_attention: ClassVar[bool] = True
    #: Whether the host re-runs the whole sequence, without a cache, for every generated token.
    reranks_per_token: ClassVar[bool] = False

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
        if context.attentions is None:
            raise ConfigError("pruner 'fastv' needs the previous layer's attention maps; the host gave none")
        scores = rules.query_attention_scores(context.attentions, context.visual_positions)
        return rules.topk_indices(scores, keep)


class FastVOfficial(FastV):
    """FastV as the paper's own code (pkunlp-icler/FastV's transformers fork, its accuracy scripts'
    ``generate(use_cache=False)``) runs it: every generated token re-runs the whole sequence, so
    the visual tokens are re-ranked by the attention of the newest token at layer K-1 each time."""

    reranks_per_token: ClassVar[bool] = True


class PyramidDrop(Pruner):
    """PyramidDrop (Xing et al., CVPR 2025, arXiv:2410.17247) as Cooperx521/PyramidDrop runs it at
    inference: the LLM is split into four stages at layers K, 2K, 3K (default K = L/4: 8, 16, 24 of
    32). At each split the first layer of the new stage ranks the visual tokens by the attention of
    the last instruction token (its own q/k on its layer-normed input, with RoPE, averaged over
    heads) and keeps the top ones: ``budget`` after K, ``int(budget·ratio)`` after 2K and
    ``int(budget·ratio²)`` after 3K; position ids are renumbered after each drop. The default
    (budget 0.5, ratio λ = 0.5) is the published setting, 576 → 288 → 144 → 72."""

    version: ClassVar[str] = "2"
    stage: ClassVar[str] = "intra-llm"
    needs_query_attention: ClassVar[bool] = True
    renumbers_positions: ClassVar[bool] = True

    def __init__(
        self,
        budget: int | float | str = 0.5,
        layer: int | None = None,
        ratio: float = 0.5,
        vlm: str | None = None,
    ):
        super().__init__(budget, vlm)
        if layer is not None and layer < 1:
            raise ConfigError(f"pdrop: layer={layer} must be >= 1 (the first stage boundary)")
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"pdrop: ratio={ratio} must be in (0, 1]")
        self.layer = layer
        self.ratio = ratio

    def schedule(self, num_layers: int, keep: int) -> list[tuple[int, int]]:
        """Drops at layers K, 2K, 3K keeping ``keep``, ``int(keep·λ)``, ``int(keep·λ²)`` tokens."""
        first = num_layers // 4 if self.layer is None else self.layer
        if first < 1 or 3 * first >= num_layers:
            raise ConfigError(
                f"pdrop: layer={first} puts the stage boundaries at {[first, 2 * first, 3 * first]}; "
                f"they must lie in [1, {num_layers}) for the LLM's {num_layers} layers"
            )
        counts = [int(keep * self.ratio**stage) for stage in range(3)]
        if counts[-1] < 1:
            raise ConfigError(
                f"pdrop: budget {keep} with ratio={self.ratio} keeps {counts} visual tokens per stage; "
                "raise the budget or the ratio so the last stage keeps at least one"
            )
        return [(first * (stage + 1), count) for stage, count in enumerate(counts)]

    def scores(self, context: LayerContext) -> torch.Tensor:
        """Head-averaged attention of the last instruction token to each visual token, ``B×N``."""
        if context.query_attention is None:
            raise ConfigError("pruner 'pdrop' needs the layer's last-query attention; the host gave none")
        return context.query_attention.mean(dim=1)[:, context.visual_positions]

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        """The ``keep`` top-ranked visual tokens, in sequence order."""
        return torch.topk(self.scores(context), keep, dim=1).indices.sort(dim=1).values
