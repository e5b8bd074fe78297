"""FastV (both forms), FasterVLM and DivPrune against the official code's selections
(pkunlp-icler/FastV d165972, Theia-4869/FasterVLM f5d5f12, vbdi/divprune 799e2d9), on the
reference's tiny random models: kept indices, their order, position ids, scores and kept tokens.

Reference data: ``shared/reference/pruning`` (its README, Part 1: "FastV", "FasterVLM",
"DivPrune", "Suggested checks"). Indices and position ids are compared exactly; floats to 1e-5
(features), 2e-6 (attention probabilities), or 1e-6 where a step starts from the stored
intermediates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tokbench.adapters import build_model
from tokbench.adapters.base import LayerContext
from tokbench.pruning import pruners
from tokbench.pruning.host import LlavaHost, _HookState, _layer_hooks
from tokbench.pruning.prompts import LLAVA15_TEMPLATE, WordCodec

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "pruning"
pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"pruning reference data not found at {REFERENCE}"
)
IMAGE_START, IMAGE_TOKENS = 35, 576  # the LLaVA-1.5 layout of the reference runs
# run name, K, rank: the paper fork's inplace runs, its mask run and lmms-eval's fastv_kvcache.py
FASTV_RUNS = [
    ("fork_inplace_K2_sys35_rank144", 2, 144),
    ("fork_inplace_K3_sys35_rank288", 3, 288),
    ("fork_mask_K2_sys35_rank288", 2, 288),
    ("lmms_kvcache_K3_ratio0.5", 3, 288),
]


def _close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance)


def _host(vision: Any, text: Any, image_size: int) -> LlavaHost:
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    codec = WordCodec(image_size=image_size)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=codec.image_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    return LlavaHost(model, codec, "reference", random_weights=True, template=LLAVA15_TEMPLATE)


# --------------------------------------------------------------------------------------------- FastV


class _RecordingFastV(pruners.FastV):
    """FastV that keeps every layer context the host gave it."""

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        self.contexts.append(context)
        return super().select_in_layer(context, keep)


@pytest.fixture(scope="module")
def fastv() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    meta = json.loads((REFERENCE / "fastv.json").read_text())
    return meta, load_file(REFERENCE / "fastv.safetensors")


@pytest.fixture(scope="module")
def fastv_host(fastv: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> LlavaHost:
    """A LLaVA whose LLM is the reference's tiny 4-layer Llama (its stored weights)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    meta, tensors = fastv
    fields = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "rope_theta")  # fmt: skip
    text = LlamaConfig(**{name: meta["tiny_llama_config"][name] for name in fields})
    vision = CLIPVisionConfig(image_size=96, patch_size=4, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=3, num_attention_heads=2)  # fmt: skip
    host = _host(vision, text, image_size=96)
    weights = {
        name.removeprefix("model."): value for name, value in tensors.items() if name.startswith("model.")
    }
    host.model.model.language_model.load_state_dict(weights)
    return host


def _seen_positions(layers: list[torch.nn.Module], record: dict[int, torch.Tensor]) -> list[Any]:
    """Pre-hooks (after the host's) storing the rotary cosines each layer is given."""

    def capture(index: int):
        def hook(_module: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
            record[index] = kwargs["position_embeddings"][0]

        return hook

    return [layer.register_forward_pre_hook(capture(i), with_kwargs=True) for i, layer in enumerate(layers)]


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
        handles = _seen_positions(language_model.layers, seen)
        fastv_host.model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    for handle in handles:
        handle.remove()
    (context,) = pruner.contexts
    _close(context.attentions[:, :, -1], golden[f"{run}/attn_layerKm1_lastrow"], 2e-6)
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
