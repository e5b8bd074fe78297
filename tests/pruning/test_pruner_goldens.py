"""VisionZip and PyramidDrop against the official code's selections (dvlab-research/VisionZip
3151f6d, Cooperx521/PyramidDrop 6444f30), run through the LLaVA host on the reference's tiny random
models: kept indices, their order, merged tokens, scores and position ids.

Reference data: ``shared/reference/pruning`` (its README, Part 1: "VisionZip", "PyramidDrop",
"Suggested checks"). Indices and position ids are compared exactly; floats to 1e-5 (features,
relative and absolute), 2e-6 (attention probabilities and scores), or 1e-6 where a step starts from
the stored intermediates.
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
)

from tokbench.adapters.base import LayerContext, PreLLMContext
from tokbench.pruning import pruners
from tokbench.pruning.host import LlavaHost, _HookState, _layer_hooks, last_query_attention

pytestmark = NEEDS_REFERENCE
VISIONZIP_RUNS = [(54, 10), (108, 20), (162, 30)]


# ----------------------------------------------------------------------------------------- VisionZip


class _RecordingVisionZip(pruners.VisionZip):
    """VisionZip that keeps the context the host gave it."""

    def reduce(self, context: PreLLMContext, keep: int) -> Any:
        self.context = context
        return super().reduce(context, keep)


@pytest.fixture(scope="module")
def visionzip() -> dict[str, torch.Tensor]:
    return reference_data("visionzip")[1]


@pytest.fixture(scope="module")
def clip_host() -> LlavaHost:
    """A LLaVA whose vision tower is the reference's tiny CLIP (24 layers, 577 tokens) and whose
    projector is the identity, as in the reference run (the LLM is random and 32 wide to match)."""
    return build_clip_host(None)


def _expected_index(golden: dict[str, torch.Tensor], run: str, image: int) -> torch.Tensor:
    """[CLS] (-1), the dominant patches ascending, then the contextual targets in target order."""
    dominant = golden[f"{run}/all_indices"][image, 1:].sort().values - 1
    targets = golden[f"{run}/target_token_indices"][image] - 1
    return torch.cat([torch.tensor([-1]), dominant, targets])


@pytest.mark.parametrize(("dominant", "contextual"), VISIONZIP_RUNS)
def test_visionzip_in_the_host_reproduces_the_official_tokens(
    clip_host: LlavaHost, visionzip: dict[str, torch.Tensor], dominant: int, contextual: int
) -> None:
    run, keep = f"d{dominant}_c{contextual}", dominant + contextual
    pruner = _RecordingVisionZip(keep)
    clip_host.configure_for(pruner)
    ids = clip_host.prompt_ids("What is in the image?")
    slot = ids.index(clip_host.codec.image_token_id)
    embeds: list[torch.Tensor] = []
    language_model = clip_host.model.model.language_model
    handle = language_model.register_forward_pre_hook(
        lambda _m, _a, kwargs: embeds.append(kwargs["inputs_embeds"]), with_kwargs=True
    )
    try:
        for image, pixels in enumerate(clip_pixels("visionzip")):
            pre = clip_host.prefill(pixels[None], ids, pruner, keep)
            context = pruner.context
            states = torch.cat([context.prefix_features, context.vision_features], dim=1)[0]
            close(states, visionzip["hidden_states_m2"][image], 1e-5)
            close(context.vision_attentions[0, :, 0], visionzip["attn_m2_cls_row"][image], 2e-6)
            keys = context.vision_keys[0].view(577, 2, 16).mean(dim=1)
            close(keys, visionzip["metric_keys_m2_headmean"][image], 1e-5)
            assert torch.equal(pre.kept_index, _expected_index(visionzip, run, image))
            close(embeds[-1][0, slot : slot + keep], visionzip[f"{run}/output_tokens"][image], 1e-5)
    finally:
        handle.remove()


@pytest.mark.parametrize(("dominant", "contextual"), VISIONZIP_RUNS)
def test_visionzip_from_the_stored_intermediates(
    visionzip: dict[str, torch.Tensor], dominant: int, contextual: int
) -> None:
    """The batch of two from the stored layer -2 states, [CLS] attention row and head-mean keys."""
    run, keep = f"d{dominant}_c{contextual}", dominant + contextual
    states = visionzip["hidden_states_m2"]
    attentions = torch.zeros(2, 2, 577, 577)
    attentions[:, :, 0] = visionzip["attn_m2_cls_row"]
    metric = visionzip["metric_keys_m2_headmean"]
    context = PreLLMContext(
        tokens=states[:, 1:],
        vision_features=states[:, 1:],
        grid=(24, 24),
        vision_attentions=attentions,
        vision_keys=torch.cat([metric, metric], dim=-1),  # two equal heads: their mean is the metric
        prefix_features=states[:, :1],
    )
    reduced = pruners.VisionZip(keep, contextual=contextual).reduce(context, keep)
    for image in range(2):
        assert torch.equal(reduced.index[image], _expected_index(visionzip, run, image))
    close(reduced.tokens, visionzip[f"{run}/output_tokens"], 1e-6)


# --------------------------------------------------------------------------------------- PyramidDrop


class _RecordingPyramidDrop(pruners.PyramidDrop):
    """PyramidDrop that keeps every layer context the host gave it."""

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        self.contexts.append(context)
        return super().select_in_layer(context, keep)


@pytest.fixture(scope="module")
def pyramiddrop() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    return reference_data("pyramiddrop")


@pytest.fixture(scope="module")
def llama_host(pyramiddrop: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> LlavaHost:
    """A LLaVA whose LLM is the reference's tiny 8-layer Llama (its stored weights)."""
    return build_llama_host(*pyramiddrop)


def _positions_and_rotary(record: list[dict[int, Any]]) -> Any:
    """A ``record_layer_inputs`` store: each layer's position ids and rotary embeddings."""

    def store(index: int, kwargs: dict[str, Any]) -> None:
        record[0][index] = kwargs["position_ids"][0]
        record[1][index] = kwargs["position_embeddings"]

    return store


def test_pdrop_in_the_host_reproduces_the_official_stages(
    llama_host: LlavaHost, pyramiddrop: tuple[dict[str, Any], dict[str, torch.Tensor]]
) -> None:
    meta, golden = pyramiddrop
    pruner = _RecordingPyramidDrop()
    pruner.contexts = []
    keep = IMAGE_TOKENS // 2
    assert llama_host.configure_for(pruner) == {"vision": "sdpa", "text": "sdpa"}  # as the reference run
    assert pruner.schedule(llama_host.num_layers, keep) == [(2, 288), (4, 144), (6, 72)]
    language_model = llama_host.model.model.language_model
    state = _HookState(visual=torch.arange(IMAGE_START, IMAGE_START + IMAGE_TOKENS))
    prefill: list[dict[int, Any]] = [{}, {}]
    with torch.no_grad(), _layer_hooks(llama_host, pruner, keep, state, prefill=True):
        handles = record_layer_inputs(language_model.layers, _positions_and_rotary(prefill))
        out = llama_host.model(inputs_embeds=golden["inputs_embeds"], use_cache=True, logits_to_keep=1)
    for handle in handles:
        handle.remove()
    for stage, context in enumerate(pruner.contexts):
        layer = meta["stages"][stage]["ranking_layer_index_0based"]
        assert context.layer == layer
        hidden = golden[f"stage{stage}/hidden_states_in"]
        scale = float(hidden.abs().max())  # magnitudes up to 51: compare relative to the tensor
        torch.testing.assert_close(context.hidden_states, hidden, rtol=1e-5, atol=1e-5 * scale)
        close(pruner.scores(context)[0], golden[f"stage{stage}/scores"], 2e-6)
        kept = state.layer_kept[layer]
        image = kept[(kept >= IMAGE_START) & (kept < IMAGE_START + IMAGE_TOKENS)] - IMAGE_START
        assert torch.equal(image, golden[f"stage{stage}/kept_original_image_indices"])
        assert torch.equal(prefill[0][layer], golden[f"stage{stage}/position_ids_out"][0])
    assert [state.visual_counts, state.sequence_counts] == [
        [576, 576, 288, 288, 144, 144, 72, 72],
        [640, 640, 352, 352, 208, 208, 136, 136],
    ]
    lengths = [out.past_key_values.get_seq_length(i) for i in range(llama_host.num_layers)]
    assert lengths == meta["kv_cache_len_per_layer_after_prefill"]
    decode: list[dict[int, Any]] = [{}, {}]
    with torch.no_grad(), _layer_hooks(llama_host, pruner, keep, state, prefill=False):
        handles = record_layer_inputs(language_model.layers, _positions_and_rotary(decode))
        llama_host.model(inputs_embeds=golden["decode_token_embeds"], past_key_values=out.past_key_values)
    for handle in handles:
        handle.remove()
    for index in range(llama_host.num_layers):
        for seen, step in ((prefill, "prefill"), (decode, "decode1")):
            ids = seen[0][index]
            assert torch.equal(ids, golden[f"position_ids_seen_by_layer{index}/{step}"])
            cos, sin = language_model.rotary_emb(golden["inputs_embeds"], ids[None])
            assert torch.equal(seen[1][index][0], cos) and torch.equal(seen[1][index][1], sin)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_pdrop_ranking_from_the_stored_stage_inputs(
    llama_host: LlavaHost, pyramiddrop: tuple[dict[str, Any], dict[str, torch.Tensor]], stage: int
) -> None:
    """The ranking layer's own q/k with RoPE on the stored hidden states and position ids."""
    meta, golden = pyramiddrop
    info = meta["stages"][stage]
    language_model = llama_host.model.model.language_model
    hidden = golden[f"stage{stage}/hidden_states_in"]
    rotary = language_model.rotary_emb(hidden, golden[f"stage{stage}/position_ids_in"])
    with torch.no_grad():
        query = last_query_attention(
            language_model.layers[info["ranking_layer_index_0based"]], hidden, rotary
        )
    visual = torch.arange(IMAGE_START, IMAGE_START + info["image_tokens_before"])
    context = LayerContext(info["ranking_layer_index_0based"], None, visual, hidden, query)
    pdrop = pruners.PyramidDrop()
    close(pdrop.scores(context)[0], golden[f"stage{stage}/scores"], 1e-6)
    chosen = pdrop.select_in_layer(context, info["image_tokens_after"])[0]
    assert torch.equal(chosen, golden[f"stage{stage}/topk_local_indices"].sort().values)
