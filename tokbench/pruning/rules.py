"""Pure visual-token selection and merging rules, shared by the VLM pruners and ViT token reduction.

Every function works on tensors only (no model, no I/O) and is deterministic given its inputs (and
the generator for ``random_indices``). Conventions, stable across versions (functions are added,
never renamed):

- ``n`` tokens, ``keep`` tokens kept; index tensors are int64 and **sorted in original order**, so
  a kept subsequence preserves the spatial/positional order of the tokens.
- Batched inputs are ``B×N×D`` (tokens), ``B×N`` (scores); unbatched ``N×D`` / ``N`` work too where
  stated. Merging rules return a ``MergeResult`` (tokens, sizes, the original index of the token
  that represents each output slot).
- Bad arguments raise ``tokbench.errors.ConfigError`` naming the argument and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tokbench.errors import ConfigError

__all__ = [
    "MergeResult",
    "check_keep",
    "cls_attention_scores",
    "divprune_indices",
    "divprune_order",
    "gather_tokens",
    "pool_grid",
    "pool_tokens",
    "query_attention_scores",
    "random_indices",
    "tome_merge",
    "tome_reduce",
    "topk_indices",
]


@dataclass(frozen=True)
class MergeResult:
    """Merged tokens (``B×K×D``), how many originals each one averages (``B×K``, float), the
    original index of the token that stands for each slot (``B×K`` int64, increasing along K) and,
    from ``tome_merge``, the output slot each input token went to (``B×N`` int64)."""

    tokens: torch.Tensor
    sizes: torch.Tensor
    index: torch.Tensor
    source: torch.Tensor | None = None


def check_keep(n: int, keep: int, what: str = "tokens") -> int:
    """Validate a kept-token count against ``n`` available tokens and return it."""
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise ConfigError(f"keep must be an int number of {what}, got {keep!r}")
    if keep < 1:
        raise ConfigError(f"keep must be >= 1 (got {keep}); a budget of zero or fewer {what} is undefined")
    if keep > n:
        raise ConfigError(f"keep={keep} exceeds the {n} {what} available; use a budget <= {n}")
    return keep


def random_indices(n: int, keep: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``keep`` distinct indices of ``range(n)`` drawn uniformly, sorted (the random baseline)."""
    check_keep(n, keep)
    return torch.randperm(n, generator=generator)[:keep].sort().values


def topk_indices(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` largest scores along the last dim, sorted; ties go to the lower index."""
    check_keep(scores.shape[-1], keep)
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    return order[..., :keep].sort(dim=-1).values


def gather_tokens(tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``tokens[b, indices[b]]`` for ``B×N×D`` tokens and ``B×K`` indices (or ``N×D`` and ``K``)."""
    if tokens.dim() == 2:
        return tokens[indices]
    return torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def cls_attention_scores(attentions: torch.Tensor, num_prefix: int = 1) -> torch.Tensor:
    """Head-averaged attention of the [CLS] query (row 0) to each patch, ``B×N_patches``.

    ``attentions`` is a vision encoder's ``B×H×(P+N)×(P+N)`` map with ``P = num_prefix`` leading
    non-patch tokens; FasterVLM ([CLS] attention, Zhang et al. 2024, arXiv:2412.01818) and
    VisionZip's dominant tokens rank patches with it.
    """
    return attentions[:, :, 0, num_prefix:].float().mean(dim=1)


def query_attention_scores(
    attentions: torch.Tensor, positions: torch.Tensor, query: int = -1
) -> torch.Tensor:
    """Head-averaged attention of query row ``query`` to the key ``positions``, ``B×len(positions)``.

    FastV (Chen et al., ECCV 2024, arXiv:2403.06764) ranks visual tokens by the attention they get
    from the last text token at layer K-1; ``attentions`` is the LLM's ``B×H×Q×K`` map.
    """
    return attentions[:, :, query, positions].float().mean(dim=1)


def pool_grid(grid: tuple[int, int], keep: int) -> tuple[int, int]:
    """Output grid ``(a, b)`` with ``a*b == keep``, ``a <= h``, ``b <= w`` and the aspect ratio
    closest to the input grid's; raises when ``keep`` has no such factorisation."""
    h, w = grid
    check_keep(h * w, keep)
    candidates = [(a, keep // a) for a in range(1, h + 1) if keep % a == 0 and keep // a <= w]
    if not candidates:
        raise ConfigError(f"keep={keep} cannot be laid out as an a×b grid within the {h}×{w} token grid")
    return min(candidates, key=lambda ab: (abs(math.log(ab[0] / ab[1]) - math.log(h / w)), -ab[0]))


def pool_tokens(tokens: torch.Tensor, grid: tuple[int, int], keep: int) -> torch.Tensor:
    """Spatial average pooling of ``B×(h·w)×D`` row-major tokens to ``B×keep×D`` (row-major).

    The plain-downsampling baseline that benchmark studies found competitive with many pruners
    (e.g. Wen et al. 2025, "Token Pruning in Multimodal LLMs: are we solving the right problem?",
    arXiv:2502.11501); adaptive average pooling to the grid from ``pool_grid``.
    """
    h, w = grid
    if tokens.shape[1] != h * w:
        raise ConfigError(f"pool_tokens: {tokens.shape[1]} tokens do not form the {h}×{w} grid")
    a, b = pool_grid(grid, keep)
    maps = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)
    pooled = F.adaptive_avg_pool2d(maps.float(), (a, b)).to(tokens.dtype)
    return pooled.flatten(2).transpose(1, 2)


def divprune_indices(features: torch.Tensor, keep: int) -> torch.Tensor:
    """DivPrune's ``keep`` tokens of ``N×D`` ``features`` (one image), sorted (see ``divprune_order``)."""
    return divprune_order(features, keep).sort().values


def divprune_order(features: torch.Tensor, keep: int) -> torch.Tensor:
    """DivPrune (Alvar et al., CVPR 2025, arXiv:2503.02175): greedy max–min diversity selection.

    Distance is ``1 - cosine similarity``. The first token is the one farthest from its nearest
    neighbour; each next token maximises its minimum distance to the tokens already chosen.
    ``features`` is ``N×D`` (one image); returns the ``keep`` indices in the order they are picked.
    The picks stay on the device (no host synchronisation per step).
    """
    n = features.shape[0]
    check_keep(n, keep)
    unit = F.normalize(features.double(), dim=-1)
    distance = 1.0 - unit @ unit.T
    if n == 1:
        return torch.zeros(1, dtype=torch.long, device=features.device)
    nearest = distance.masked_fill(torch.eye(n, dtype=torch.bool, device=features.device), math.inf)
    pick = torch.argmax(nearest.min(dim=0).values).view(1)
    chosen = [pick]
    closest = distance.index_select(0, pick)[0].index_fill(0, pick, -math.inf)
    for _ in range(keep - 1):
        pick = torch.argmax(closest).view(1)
        chosen.append(pick)
        closest = torch.minimum(closest, distance.index_select(0, pick)[0]).index_fill(0, pick, -math.inf)
    return torch.cat(chosen)


def tome_merge(
    tokens: torch.Tensor,
    r: int,
    sizes: torch.Tensor | None = None,
    metric: torch.Tensor | None = None,
    protected: int = 0,
) -> MergeResult:
    """One round of ToMe bipartite soft matching as facebookresearch/ToMe ``bipartite_soft_matching``
    + ``merge_wavg`` + ``merge_source`` compute it (Bolya et al., ICLR 2023, arXiv:2210.09461).

    Even positions form set A and odd positions set B, over all tokens; each A token's edge is its
    most cosine-similar B token (``metric``, default the tokens). The first ``protected`` tokens
    never merge (ToMe's class token: its A row is −inf; a second one, the distillation token, its B
    column). ``r`` is clamped to ``(N − protected) // 2``; the ``r`` A tokens with the best edges
    (ranked descending, ties by position) merge into their B token by a size-weighted average
    (sizes summed). ToMe outputs ``[unmerged A, all B]``; here the same slots are in original order
    (``index``), and ``source`` gives the slot each input token ended in.
    """
    b, n, d = tokens.shape
    if r < 0:
        raise ConfigError(f"tome_merge: r={r} must be >= 0")
    r = min(r, (n - protected) // 2)
    if sizes is None:
        sizes = tokens.new_ones(b, n, dtype=torch.float32)
    index = torch.arange(n, device=tokens.device).expand(b, n)
    if r == 0:
        return MergeResult(tokens, sizes, index, index)
    metric = tokens if metric is None else metric
    unit = F.normalize(metric.float(), dim=-1)
    scores = unit[:, 0::2] @ unit[:, 1::2].transpose(1, 2)
    scores[:, : (protected + 1) // 2, :] = -math.inf
    scores[:, :, : protected // 2] = -math.inf
    best, match = scores.max(dim=-1)
    merged_a = torch.argsort(best, dim=-1, descending=True, stable=True)[:, :r]
    src_pos = 2 * merged_a
    dst_pos = 2 * torch.gather(match, 1, merged_a) + 1
    weighted = tokens.float() * sizes.unsqueeze(-1)
    weighted = weighted.scatter_add(
        1, dst_pos.unsqueeze(-1).expand(-1, -1, d), gather_tokens(weighted, src_pos)
    )
    new_sizes = sizes.scatter_add(1, dst_pos, torch.gather(sizes, 1, src_pos))
    alive = torch.ones(b, n, dtype=torch.bool, device=tokens.device)
    alive.scatter_(1, src_pos, False)
    kept = torch.argsort((~alive).to(torch.uint8), dim=1, stable=True)[:, : n - r]
    source = torch.zeros(b, n, dtype=torch.long, device=tokens.device)
    source.scatter_(1, kept, torch.arange(n - r, device=tokens.device).expand(b, n - r))
    source.scatter_(1, src_pos, torch.gather(source, 1, dst_pos))
    kept_sizes = torch.gather(new_sizes, 1, kept)
    kept_tokens = (gather_tokens(weighted, kept) / kept_sizes.unsqueeze(-1)).to(tokens.dtype)
    return MergeResult(kept_tokens, kept_sizes, kept, source)


def tome_reduce(
    tokens: torch.Tensor, keep: int, metric: torch.Tensor | None = None, protected: int = 0
) -> MergeResult:
    """Repeated ``tome_merge`` rounds (each removes at most half) until ``keep`` tokens remain.

    ``index`` refers to positions in the input ``tokens``. Without ``metric`` each round matches on
    the merged tokens themselves; a given ``metric`` follows the surviving tokens between rounds.
    """
    b, n, _ = tokens.shape
    if keep <= protected:
        raise ConfigError(f"tome_reduce: keep={keep} must exceed the {protected} protected tokens")
    check_keep(n, keep)
    sizes = tokens.new_ones(b, n, dtype=torch.float32)
    index = torch.arange(n, device=tokens.device).expand(b, n)
    while tokens.shape[1] > keep:
        r = min(tokens.shape[1] - keep, (tokens.shape[1] - protected) // 2)
        step = tome_merge(tokens, r, sizes, metric, protected)
        metric = None if metric is None else gather_tokens(metric, step.index)
        tokens, sizes, index = step.tokens, step.sizes, torch.gather(index, 1, step.index)
    return MergeResult(tokens, sizes, index)
