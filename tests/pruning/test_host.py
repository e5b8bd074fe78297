"""The LLaVA host with pruning hooks, on the tiny random-weight VLM (real module structure)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tokbench.adapters.base import Pruner
from tokbench.errors import ConfigError
from tokbench.pruning import pruners, rules
from tokbench.pruning.host import LlavaHost

QUESTION = "Is there a cat in the image?"


def _pixels(host: LlavaHost) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    array = (torch.rand(40, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return host.codec.pixels(Image.fromarray(array))


def _unpruned_logits(host: LlavaHost, ids: list[int], pixels: torch.Tensor) -> torch.Tensor:
    slot = ids.index(host.codec.image_token_id)
    full = ids[:slot] + [host.codec.image_token_id] * host.num_visual_tokens + ids[slot + 1 :]
    with torch.no_grad():
        return host.model(input_ids=torch.tensor([full]), pixel_values=pixels).logits


def test_none_reproduces_the_unpruned_logits_bitwise(tiny_host: LlavaHost) -> None:
    tiny_host.configure_for(pruners.NoPruning())
    pixels, ids = _pixels(tiny_host), tiny_host.prompt_ids(QUESTION)
    reference = _unpruned_logits(tiny_host, ids, pixels)
    pruned = tiny_host.prefill(pixels, ids, pruners.NoPruning(), 576, all_logits=True)
    assert torch.equal(reference, pruned.logits)


PRE_LLM = [
    pruners.RandomPruning,
    pruners.Pool,
    pruners.ClsAttention,
    pruners.DivPrune,
    pruners.VisionZip,
    pruners.ToMe,
]


@pytest.mark.parametrize("cls", PRE_LLM, ids=lambda c: c.__name__)
def test_pre_llm_pruners_keep_exactly_the_budget(tiny_host: LlavaHost, cls: type) -> None:
    pruner = cls(64)
    tiny_host.configure_for(pruner)
    ids = tiny_host.prompt_ids(QUESTION)
    pre = tiny_host.prefill(_pixels(tiny_host), ids, pruner, 64, torch.Generator().manual_seed(0))
    assert pre.visual_tokens_per_layer == [64] * tiny_host.num_layers
    assert pre.sequence_per_layer == [len(ids) - 1 + 64] * tiny_host.num_layers
    assert pre.kept_index.shape == (64,)


def test_cls_attn_keeps_the_top_k_of_the_vision_cls_row(tiny_host: LlavaHost) -> None:
    pruner = pruners.ClsAttention(32)
    tiny_host.configure_for(pruner)
    captured = {}
    layer = tiny_host._vision_layer()
    handle = layer.self_attn.register_forward_hook(lambda _m, _i, out: captured.update(a=out[1]))
    try:
        pre = tiny_host.prefill(_pixels(tiny_host), tiny_host.prompt_ids(QUESTION), pruner, 32)
    finally:
        handle.remove()
    expected = rules.topk_indices(captured["a"][:, :, 0, 1:].mean(1), 32)[0]
    assert torch.equal(pre.kept_index, expected)


def _layer_outputs(host: LlavaHost, run) -> list[torch.Tensor]:
    outputs, handles = [], []
    for layer in host.model.model.language_model.layers:
        handles.append(layer.register_forward_hook(lambda _m, _i, out: outputs.append(out.clone())))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def test_fastv_drops_visual_tokens_after_layer_k_only(tiny_host: LlavaHost) -> None:
    fastv = pruners.FastV(64, layer=2)
    tiny_host.configure_for(fastv)
    pixels, ids = _pixels(tiny_host), tiny_host.prompt_ids(QUESTION)
    full = _layer_outputs(tiny_host, lambda: tiny_host.prefill(pixels, ids, pruners.NoPruning(), 576))
    holder = {}
    pruned = _layer_outputs(
        tiny_host, lambda: holder.setdefault("p", tiny_host.prefill(pixels, ids, fastv, 64))
    )
    assert torch.equal(pruned[0], full[0]) and torch.equal(pruned[1], full[1])  # layers before K
    assert pruned[2].shape[1] == full[2].shape[1] - 576 + 64
    assert holder["p"].visual_tokens_per_layer == [576, 576, 64, 64]


def test_fastv_ranks_by_the_last_text_token_attention_of_layer_k_minus_1(tiny_host: LlavaHost) -> None:
    fastv = pruners.FastV(16, layer=2)
    tiny_host.configure_for(fastv)
    pixels, ids = _pixels(tiny_host), tiny_host.prompt_ids(QUESTION)
    captured = {}
    attn = tiny_host.model.model.language_model.layers[1].self_attn
    handle = attn.register_forward_hook(lambda _m, _i, out: captured.update(a=out[1]))
    try:
        tiny_host.prefill(pixels, ids, pruners.NoPruning(), 576)
    finally:
        handle.remove()
    slot = ids.index(tiny_host.codec.image_token_id)
    expected = rules.topk_indices(captured["a"][:, :, -1, slot : slot + 576].mean(1), 16)[0] + slot
    pre = tiny_host.prefill(pixels, ids, fastv, 16)
    assert torch.equal(pre.hook_state.layer_kept[2][slot : slot + 16], expected)


def test_fastv_at_full_budget_generates_like_the_unpruned_model(tiny_host: LlavaHost) -> None:
    fastv, none = pruners.FastV(576, layer=2), pruners.NoPruning()
    tiny_host.configure_for(fastv)  # both eager in the LLM
    pixels = _pixels(tiny_host)
    a = tiny_host.generate(pixels, QUESTION, fastv, 576, max_new_tokens=6)
    b = tiny_host.generate(pixels, QUESTION, none, 576, max_new_tokens=6)
    assert a.text == b.text and a.new_tokens == b.new_tokens


@pytest.mark.parametrize(("cls", "prefills"), [(pruners.FastV, 1), (pruners.FastVOfficial, 2)])
def test_warm_up_runs_one_prefill_and_one_decode_step(
    tiny_host: LlavaHost, monkeypatch: pytest.MonkeyPatch, cls: type, prefills: int
) -> None:
    pruner = cls(64, layer=2)
    tiny_host.configure_for(pruner)
    calls = {"prefill": 0, "forward": 0}
    prefill, forward = LlavaHost.prefill, type(tiny_host.model).forward

    def counted_prefill(*args, **kwargs):
        calls["prefill"] += 1
        return prefill(*args, **kwargs)

    def counted_forward(*args, **kwargs):
        calls["forward"] += 1
        return forward(*args, **kwargs)

    monkeypatch.setattr(LlavaHost, "prefill", counted_prefill)
    monkeypatch.setattr(type(tiny_host.model), "forward", counted_forward)
    tiny_host.warm_up(_pixels(tiny_host), QUESTION, pruner, 64)
    assert calls == {"prefill": prefills, "forward": 2}  # the rerank form's decode step is a prefill


@pytest.mark.parametrize(
    ("pruner", "expected"),
    [
        (pruners.NoPruning(), {"vision": "sdpa", "text": "sdpa"}),
        (pruners.ClsAttention(64), {"vision": "eager", "text": "sdpa"}),
        (pruners.FastV(64), {"vision": "sdpa", "text": "eager"}),
        (pruners.NoPruning(text_attention="eager"), {"vision": "sdpa", "text": "eager"}),
    ],
)
def test_configure_for_sets_and_returns_the_effective_attention(
    tiny_host: LlavaHost, pruner: Pruner, expected: dict[str, str]
) -> None:
    assert tiny_host.configure_for(pruner) == expected == tiny_host.attention_implementation()
    tiny_host.configure_for(pruners.NoPruning())  # the session host back to SDPA


def test_visionzip_keeps_the_vision_cls_token_first_through_the_projector(tiny_host: LlavaHost) -> None:
    pruner = pruners.VisionZip(64)
    tiny_host.configure_for(pruner)
    captured = {}
    layer = tiny_host._vision_layer()
    handle = layer.self_attn.register_forward_hook(lambda _m, _i, out: captured.update(a=out[1]))
    embeds = []
    language_model = tiny_host.model.model.language_model
    hook = language_model.register_forward_pre_hook(
        lambda _m, _a, kwargs: embeds.append(kwargs["inputs_embeds"]), with_kwargs=True
    )
    ids = tiny_host.prompt_ids(QUESTION)
    pixels = _pixels(tiny_host)
    try:
        pre = tiny_host.prefill(pixels, ids, pruner, 64)
    finally:
        handle.remove()
        hook.remove()
    dominant = rules.topk_indices(captured["a"][:, :, 0, 1:].sum(1), 64 - 10 - 1)[0]
    assert pre.kept_index[0] == -1 and torch.equal(pre.kept_index[1:54], dominant)
    tower = tiny_host.model.model.vision_tower(pixels, output_hidden_states=True)
    cls = tiny_host.model.model.multi_modal_projector(tower.hidden_states[-2][:, :1])
    slot = ids.index(tiny_host.codec.image_token_id)
    torch.testing.assert_close(embeds[0][:, slot : slot + 1], cls)


def test_pdrop_renumbers_positions_after_each_drop_and_in_decoding(tiny_host: LlavaHost) -> None:
    pdrop = pruners.PyramidDrop(64)  # 4 layers: drops before layers 1, 2, 3 to 64, 32, 16
    assert tiny_host.configure_for(pdrop) == {"vision": "sdpa", "text": "sdpa"}
    language_model = tiny_host.model.model.language_model
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handles = [  # what attention receives from the (hooked) decoder layer
        layer.self_attn.register_forward_pre_hook(
            lambda _m, _a, kwargs: seen.append((kwargs["position_ids"], kwargs["position_embeddings"][0])),
            with_kwargs=True,
        )
        for layer in language_model.layers
    ]
    try:
        out = tiny_host.generate(_pixels(tiny_host), QUESTION, pdrop, 64, max_new_tokens=2)
    finally:
        for handle in handles:
            handle.remove()
    lengths = out.sequence_per_layer
    assert out.visual_tokens_per_layer == [576, 64, 32, 16]
    assert lengths == [out.prompt_tokens - 576 + n for n in out.visual_tokens_per_layer]
    assert out.new_tokens == 2 and len(seen) == 2 * len(lengths)  # prefill, then one decoding step
    for index, length in enumerate(lengths):  # prefill: 0..L'-1; the new token continues from L'
        prefill, decode = seen[index], seen[len(lengths) + index]
        for (ids, cos), expected in ((prefill, torch.arange(length)), (decode, torch.tensor([length]))):
            assert torch.equal(ids, expected[None])
            assert torch.equal(cos, language_model.rotary_emb(cos, expected[None])[0])


def test_a_model_without_a_vision_tower_is_refused() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tokbench.pruning.prompts import LLAVA15_TEMPLATE, WordCodec

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    with pytest.raises(ConfigError, match="no vision tower"):
        LlavaHost(LlamaForCausalLM(config), WordCodec(96), "llama-only", True, LLAVA15_TEMPLATE)


def test_an_unreachable_checkpoint_names_itself_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from tokbench.errors import WeightsError
    from tokbench.pruning.vlms import load_host

    def offline(name: str, **_: object) -> None:
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load the files of {name}.")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    with pytest.raises(WeightsError, match=r"llava-hf/llava-1.5-7b-hf.*HF_HOME.*tiny-random"):
        load_host("llava-hf/llava-1.5-7b-hf")
