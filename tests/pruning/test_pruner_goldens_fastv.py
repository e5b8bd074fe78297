"""FastV (both forms), FasterVLM and DivPrune against the official code's selections
(pkunlp-icler/FastV d165972, Theia-4869/FasterVLM f5d5f12, vbdi/divprune 799e2d9), on the
reference's tiny random models: kept indices, their order, position ids, scores and kept tokens.

Reference data: ``shared/reference/pruning`` (its README, Part 1: "FastV", "FasterVLM",
"DivPrune", "Suggested checks"). Indices and position ids are compared exactly; floats to 1e-5
(features), 2e-6 (attention probabilities), or 1e-6 where a step starts from the stored
intermediates.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pruning_reference import (
    IMAGE_START,
    IMAGE_TOKENS,
    NEEDS_REFERENCE,
    build_clip_host,
    build_llama_host,
    clip_pixels,
    close,
    record_layer_inputs,
    reference_data,
    reference_meta,
)

from tokbench.adapters import build_model
from tokbench.adapters.base import Budget, LayerContext, PreLLMContext, resolve_budget
from tokbench.pruning import pruners, rules
from tokbench.pruning.host import LlavaHost, _HookState, _layer_hooks

pytestmark = NEEDS_REFERENCE
# run name, K, rank: the paper fork's inplace runs, its mask run and lmms-eval's fastv_kvcache.py
FASTV_RUNS = [
    ("fork_inplace_K2_sys35_rank144", 2, 144),
    ("fork_inplace_K3_sys35_rank288", 3, 288),
    ("fork_mask_K2_sys35_rank288", 2, 288),
    ("lmms_kvcache_K3_ratio0.5", 3, 288),
]


# --------------------------------------------------------------------------------------------- FastV


class _RecordingFastV(pruners.FastV):
    """FastV that keeps every layer context the host gave it."""

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        self.contexts.append(context)
        return super().select_in_layer(context, keep)


@pytest.fixture(scope="module")
def fastv() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    return reference_data("fastv")


@pytest.fixture(scope="module")
def fastv_host(fastv: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> LlavaHost:
    """A LLaVA whose LLM is the reference's tiny 4-layer Llama (its stored weights)."""
    return build_llama_host(*fastv)


@pytest.mark.parametrize("form", [pruners.FastV, pruners.FastVOfficial])
@pytest.mark.parametrize(("run", "layer", "rank"), FASTV_RUNS)
def test_fastv_in_the_host_reproduces_the_official_selection(
    fastv_host: LlavaHost,
    fastv: tuple[dict[str, Any], dict[str, torch.Tensor]],
    form: type[pruners.FastV],
    run: str,
    layer: int,
    rank: int,
) -> None:
    """Prefill (the first generated token of the per-token form): layer K-1's last attention row,
    the kept positions in ascending order and the original position ids (with gaps) from layer K."""
    _meta, golden = fastv
    pruner = type("Recording", (_RecordingFastV, form), {})(rank, layer=layer)
    pruner.contexts = []
    assert fastv_host.configure_for(pruner) == {"vision": "sdpa", "text": "eager"}
    language_model = fastv_host.model.model.language_model
    state = _HookState(visual=torch.arange(IMAGE_START, IMAGE_START + IMAGE_TOKENS))
    seen: dict[int, torch.Tensor] = {}
    embeds = golden["inputs_embeds"]
    with torch.no_grad(), _layer_hooks(fastv_host, pruner, rank, state, prefill=True):
        handles = record_layer_inputs(
            language_model.layers,
            lambda index, kwargs: seen.__setitem__(index, kwargs["position_embeddings"][0]),
        )
        fastv_host.model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    for handle in handles:
        handle.remove()
    (context,) = pruner.contexts
    close(context.attentions[:, :, -1], golden[f"{run}/attn_layerKm1_lastrow"], 2e-6)
    kept = golden[f"{run}/kept_indices"]
    assert torch.equal(state.layer_kept[layer], kept)
    assert state.sequence_counts == [640] * layer + [len(kept)] * (4 - layer)
    positions = golden[f"{run}/position_ids_at_layer_K"]
    positions = positions[kept] if positions.numel() == 640 else positions  # mask form: nothing cut
    cos, _sin = language_model.rotary_emb(embeds, positions[None])
    for index in range(layer, 4):
        assert torch.equal(seen[index], cos)


@pytest.mark.parametrize("sys_length", [35, 36])
def test_fastv_ranking_from_the_stored_attention_row(
    fastv: tuple[dict[str, Any], dict[str, torch.Tensor]], sys_length: int
) -> None:
    """The top 144 of the stored layer-1 row over the ranked span (sys 36 ranks 36..611, as the
    official scripts' ``--fast-v-sys-length 36`` does)."""
    _meta, golden = fastv
    run = f"fork_inplace_K2_sys{sys_length}_rank144"
    row = golden[f"{run}/attn_layerKm1_lastrow"]
    attentions = torch.zeros(1, 4, 640, 640)
    attentions[:, :, -1] = row
    visual = torch.arange(sys_length, sys_length + IMAGE_TOKENS)
    chosen = pruners.FastV(144).select_in_layer(LayerContext(1, attentions, visual, None, None), 144)[0]
    assert torch.equal(visual[chosen], golden[f"{run}/kept_image_indices"])


def test_fastv_official_reranks_at_every_generated_token(tiny_host: LlavaHost) -> None:
    """The per-token form re-runs the whole sequence for each new token (one ranking per token,
    each over one more query position); the prefill-once form ranks once."""
    pixels = torch.rand(
        1, 3, tiny_host.image_size, tiny_host.image_size, generator=torch.Generator().manual_seed(0)
    )
    lengths = {}
    for name in ("fastv", "fastv-official"):
        pruner = type("Recording", (_RecordingFastV, type(build_model(f"{name}:budget=8").adapter)), {})(8)
        pruner.contexts = []
        tiny_host.configure_for(pruner)
        answer = tiny_host.generate(pixels, "What is it?", pruner, 8, max_new_tokens=4)
        lengths[name] = [context.attentions.shape[-1] for context in pruner.contexts]
        assert len(lengths[name]) == (answer.new_tokens if name == "fastv-official" else 1)
    first = lengths["fastv"][0]
    assert lengths["fastv-official"] == list(range(first, first + len(lengths["fastv-official"])))


# -------------------------------------------------------------------------- FasterVLM and DivPrune


@pytest.fixture(scope="module")
def fastervlm() -> dict[str, torch.Tensor]:
    return reference_data("fastervlm")[1]


@pytest.fixture(scope="module")
def divprune() -> dict[str, torch.Tensor]:
    return reference_data("divprune")[1]


def _image_embeds(host: LlavaHost, pruner: Any, pixels: torch.Tensor, keep: int) -> list[Any]:
    """The prefill's kept index and the visual tokens it fed the LLM, per image."""
    ids = host.prompt_ids("What is in the image?")
    slot = ids.index(host.codec.image_token_id)
    embeds: list[torch.Tensor] = []
    handle = host.model.model.language_model.register_forward_pre_hook(
        lambda _m, _a, kwargs: embeds.append(kwargs["inputs_embeds"]), with_kwargs=True
    )
    try:
        out = []
        for image in pixels:
            pre = host.prefill(image[None], ids, pruner, keep)
            out.append((pre.kept_index, embeds[-1][0, slot : slot + keep]))
        return out
    finally:
        handle.remove()


class _RecordingClsAttention(pruners.ClsAttention):
    """FasterVLM's rule that keeps the contexts the host gave it."""

    def reduce(self, context: Any, keep: int) -> Any:
        self.contexts.append(context)
        return super().reduce(context, keep)


@pytest.fixture(scope="module")
def identity_clip_host() -> LlavaHost:
    return build_clip_host(None)


@pytest.mark.parametrize("keep", [58, 64, 144, 192])
def test_fastervlm_in_the_host_reproduces_the_official_tokens(
    identity_clip_host: LlavaHost, fastervlm: dict[str, torch.Tensor], keep: int
) -> None:
    """CLIP layer -2's [CLS] row (head mean), top T, kept in ascending patch order, per image."""
    host = identity_clip_host
    pruner = _RecordingClsAttention(keep)
    pruner.contexts = []
    assert host.configure_for(pruner)["vision"] == "eager"
    for image, (index, tokens) in enumerate(_image_embeds(host, pruner, clip_pixels("fastervlm"), keep)):
        context = pruner.contexts[image]
        close(context.vision_attentions[0, :, 0, 1:], fastervlm["cls_attention_layer_m2"][image], 2e-6)
        close(context.tokens[0], fastervlm["image_features_hs_m2_patch"][image], 1e-5)
        assert torch.equal(index, fastervlm[f"T{keep}/kept_indices"][image])
        close(tokens, fastervlm[f"T{keep}/kept_features"][image], 1e-5)


@pytest.mark.parametrize("keep", [58, 64, 144, 192])
def test_fastervlm_from_the_stored_attention(fastervlm: dict[str, torch.Tensor], keep: int) -> None:
    """The batch of two from the stored [CLS] rows and layer -2 patch features."""
    rows = fastervlm["cls_attention_layer_m2"]
    attentions = torch.zeros(2, 2, 577, 577)
    attentions[:, :, 0, 1:] = rows
    features = fastervlm["image_features_hs_m2_patch"]
    context = PreLLMContext(
        tokens=features, vision_features=features, grid=(24, 24), vision_attentions=attentions
    )
    reduced = pruners.ClsAttention(keep).reduce(context, keep)
    close(reduced.tokens, fastervlm[f"T{keep}/kept_features"], 1e-6)
    assert torch.equal(reduced.index, fastervlm[f"T{keep}/kept_indices"])
    assert torch.equal(reduced.index, fastervlm[f"T{keep}/topk_order"].sort(dim=1).values)
    close(rules.cls_attention_scores(attentions), fastervlm["cls_attention_mean_over_heads"], 1e-6)


@pytest.mark.parametrize("run", ["r56", "r64", "r128", "r192"])
def test_divprune_from_the_stored_projected_tokens(divprune: dict[str, torch.Tensor], run: str) -> None:
    """The greedy pick order on the stored projected tokens of image 0, and the kept set sorted."""
    tokens = divprune["visual_tokens"]
    order = divprune[f"direct/{run}/selection_order"]
    keep = resolve_budget(
        Budget(ratio=reference_meta("divprune")["direct"][run]["threshold_ratio"]),
        576,
    )
    assert keep == order.numel()
    assert torch.equal(rules.divprune_order(tokens, keep), order)
    context = PreLLMContext(tokens=tokens[None], vision_features=tokens[None], grid=(24, 24))
    reduced = pruners.DivPrune(keep).reduce(context, keep)
    assert torch.equal(reduced.index[0], order.sort().values)
    assert torch.equal(reduced.tokens[0], tokens[order.sort().values])


def test_divprune_in_the_host_reproduces_the_llava_path(divprune: dict[str, torch.Tensor]) -> None:
    """SUBSET_RATIO 0.098 (56 tokens) through the host: the projected tokens of image 0, the kept
    image tokens in ascending order and the LLM input (the kept tokens, positions 0..L'-1)."""
    projector = {name: value for name, value in divprune.items() if name.startswith("mm_projector.")}
    host = build_clip_host(projector)
    keep = resolve_budget(build_model("divprune:budget=0.098").adapter.budget, 576)
    assert keep == 56
    pruner = pruners.DivPrune(keep)
    host.configure_for(pruner)
    ((index, tokens),) = _image_embeds(host, pruner, clip_pixels("fastervlm")[:1], keep)
    visual = divprune["visual_tokens"]
    expected = divprune["llava_path/kept_image_indices"]
    assert torch.equal(index, expected)
    assert torch.equal(rules.divprune_order(visual, keep), divprune["llava_path/selection_order"])
    close(tokens, visual[expected], 1e-5)
