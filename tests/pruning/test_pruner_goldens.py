"""VisionZip and PyramidDrop against the official code's selections (dvlab-research/VisionZip
3151f6d, Cooperx521/PyramidDrop 6444f30), run through the LLaVA host on the reference's tiny random
models: kept indices, their order, merged tokens, scores and position ids.

Reference data: ``shared/reference/pruning`` (its README, Part 1: "VisionZip", "PyramidDrop",
"Suggested checks"). Indices and position ids are compared exactly; floats to 1e-5 (features,
relative and absolute), 2e-6 (attention probabilities and scores), or 1e-6 where a step starts from
the stored intermediates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tokbench.adapters.base import LayerContext, PreLLMContext
from tokbench.pruning import pruners
from tokbench.pruning.host import LlavaHost, _HookState, _layer_hooks, last_query_attention
from tokbench.pruning.prompts import LLAVA15_TEMPLATE, WordCodec

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "pruning"
pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"pruning reference data not found at {REFERENCE}"
)
VISIONZIP_RUNS = [(54, 10), (108, 20), (162, 30)]
IMAGE_START, IMAGE_TOKENS = 35, 576  # the LLaVA-1.5 layout of the PyramidDrop reference


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


# ----------------------------------------------------------------------------------------- VisionZip


class _RecordingVisionZip(pruners.VisionZip):
    """VisionZip that keeps the context the host gave it."""

    def reduce(self, context: PreLLMContext, keep: int) -> Any:
        self.context = context
        return super().reduce(context, keep)


@pytest.fixture(scope="module")
def visionzip() -> dict[str, torch.Tensor]:
    return load_file(REFERENCE / "visionzip.safetensors")


@pytest.fixture(scope="module")
def clip_host() -> LlavaHost:
    """A LLaVA whose vision tower is the reference's tiny CLIP (24 layers, 577 tokens) and whose
    projector is the identity, as in the reference run (the LLM is random and 32 wide to match)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    clip = REFERENCE / "tiny_clip"
    text = LlamaConfig(vocab_size=WordCodec(336).vocab_size, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    host = _host(CLIPVisionConfig.from_pretrained(clip), text, image_size=336)
    tower = host.model.model.vision_tower
    weights = load_file(clip / "model.safetensors")
    if not hasattr(tower, "vision_model"):  # transformers 5 keeps the bare CLIPVisionTransformer
        weights = {name.removeprefix("vision_model."): value for name, value in weights.items()}
    tower.load_state_dict(weights)
    host.model.model.multi_modal_projector = torch.nn.Identity()
    return host


def _clip_pixels() -> torch.Tensor:
    """The official CLIPImageProcessor output for the stored 336×336 images (bitwise, per the README)."""
    config = json.loads((REFERENCE / "tiny_clip" / "preprocessor_config.json").read_text())
    images = load_file(REFERENCE / "tiny_clip" / "input_images.safetensors")["images_uint8"]
    mean = torch.tensor(config["image_mean"], dtype=torch.float32)
    std = torch.tensor(config["image_std"], dtype=torch.float32)
    pixels = ((images.float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous()
    expected = json.loads((REFERENCE / "visionzip.json").read_text())["pixel_values_sum_f64"]
    assert pixels.double().sum().item() == pytest.approx(expected, rel=1e-9)
    return pixels


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
        for image, pixels in enumerate(_clip_pixels()):
            pre = clip_host.prefill(pixels[None], ids, pruner, keep)
            context = pruner.context
            states = torch.cat([context.prefix_features, context.vision_features], dim=1)[0]
            _close(states, visionzip["hidden_states_m2"][image], 1e-5)
            _close(context.vision_attentions[0, :, 0], visionzip["attn_m2_cls_row"][image], 2e-6)
            keys = context.vision_keys[0].view(577, 2, 16).mean(dim=1)
            _close(keys, visionzip["metric_keys_m2_headmean"][image], 1e-5)
            assert torch.equal(pre.kept_index, _expected_index(visionzip, run, image))
            _close(embeds[-1][0, slot : slot + keep], visionzip[f"{run}/output_tokens"][image], 1e-5)
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
    _close(reduced.tokens, visionzip[f"{run}/output_tokens"], 1e-6)


# --------------------------------------------------------------------------------------- PyramidDrop


class _RecordingPyramidDrop(pruners.PyramidDrop):
    """PyramidDrop that keeps every layer context the host gave it."""

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        self.contexts.append(context)
        return super().select_in_layer(context, keep)


@pytest.fixture(scope="module")
def pyramiddrop() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    meta = json.loads((REFERENCE / "pyramiddrop.json").read_text())
    return meta, load_file(REFERENCE / "pyramiddrop.safetensors")


@pytest.fixture(scope="module")
def llama_host(pyramiddrop: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> LlavaHost:
    """A LLaVA whose LLM is the reference's tiny 8-layer Llama (its stored weights)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    meta, tensors = pyramiddrop
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


def _seen(layers: list[torch.nn.Module], record: list[dict[int, Any]]) -> list[Any]:
    """Pre-hooks (after the host's) storing each layer's position ids and rotary embeddings."""

    def capture(index: int):
        def hook(_module: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
            record[0][index] = kwargs["position_ids"][0]
            record[1][index] = kwargs["position_embeddings"]

        return hook

    return [layer.register_forward_pre_hook(capture(i), with_kwargs=True) for i, layer in enumerate(layers)]


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
        handles = _seen(language_model.layers, prefill)
        out = llama_host.model(inputs_embeds=golden["inputs_embeds"], use_cache=True, logits_to_keep=1)
    for handle in handles:
        handle.remove()
    for stage, context in enumerate(pruner.contexts):
        layer = meta["stages"][stage]["ranking_layer_index_0based"]
        assert context.layer == layer
        hidden = golden[f"stage{stage}/hidden_states_in"]
        scale = float(hidden.abs().max())  # magnitudes up to 51: compare relative to the tensor
        torch.testing.assert_close(context.hidden_states, hidden, rtol=1e-5, atol=1e-5 * scale)
        _close(pruner.scores(context)[0], golden[f"stage{stage}/scores"], 2e-6)
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
        handles = _seen(language_model.layers, decode)
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
    _close(pdrop.scores(context)[0], golden[f"stage{stage}/scores"], 1e-6)
    chosen = pdrop.select_in_layer(context, info["image_tokens_after"])[0]
    assert torch.equal(chosen, golden[f"stage{stage}/topk_local_indices"].sort().values)
