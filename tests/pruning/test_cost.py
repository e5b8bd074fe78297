"""Cost: the analytic FLOP count agrees with torch's counter; FLOPs and latency fall with the budget."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from PIL import Image

from tokbench.flops import measured_flops
from tokbench.pruning import cost, pruners
from tokbench.pruning.host import LlavaHost


def _inputs(host: LlavaHost) -> tuple[torch.Tensor, list[int]]:
    return host.codec.pixels(Image.new("RGB", (40, 32), (120, 30, 200))), host.prompt_ids("Is there a cat?")


def test_analytic_flops_match_the_flop_counter_under_eager_attention(tiny_host: LlavaHost) -> None:
    tiny_host.model.set_attn_implementation("eager")
    pixels, ids = _inputs(tiny_host)
    for pruner, keep in ((pruners.NoPruning(), 576), (pruners.Pool(64), 64), (pruners.FastV(64), 64)):
        holder: dict = {}
        counted = measured_flops(
            lambda p=pruner, k=keep, h=holder: h.update(p=tiny_host.prefill(pixels, ids, p, k))
        )
        analytic = cost.prefill_flops(tiny_host.model.config, holder["p"].sequence_per_layer)
        assert counted == analytic.total


def test_prefill_flops_fall_with_the_budget(tiny_host: LlavaHost) -> None:
    """Latency is measured in benchmarks/prune_cost.py, not asserted here (timings flake under load)."""
    pool = pruners.Pool(64)
    tiny_host.configure_for(pool)
    pixels, ids = _inputs(tiny_host)
    flops = {}
    for keep in (576, 192, 128, 64):
        pruner = pruners.NoPruning() if keep == 576 else pruners.Pool(keep)
        pre = tiny_host.prefill(pixels, ids, pruner, keep)
        flops[keep] = cost.prefill_flops(tiny_host.model.config, pre.sequence_per_layer).total
    assert flops[576] > flops[192] > flops[128] > flops[64]


def test_kv_cache_shrinks_with_the_kept_sequence(tiny_host: LlavaHost) -> None:
    config = tiny_host.model.config
    assert cost.kv_cache_bytes(config, [104] * 4, torch.float32) < cost.kv_cache_bytes(
        config, [616] * 4, torch.float32
    )
    assert cost.kv_cache_bytes(config, [10], torch.float16) == 10 * 2 * 2 * 16 * 2


def _llava15_7b() -> SimpleNamespace:
    """The LLaVA-1.5-7B (Vicuna-7B) decoder dimensions: 32 MHA layers, d = 4096, m = 11008."""
    text = SimpleNamespace(
        hidden_size=4096,
        intermediate_size=11008,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
    )
    return SimpleNamespace(text_config=text)


def test_paper_flops_are_4nd2_plus_2n2d_plus_2ndm_per_layer() -> None:
    """FastV's convention by hand for LLaVA-1.5-7B: n = 576 visual + 64 prompt tokens, 32 layers."""
    config = _llava15_7b()
    n, d, m = 576 + 64, 4096, 11008
    per_layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * m
    assert per_layer == 42_949_672_960 + 3_355_443_200 + 57_713_623_040
    assert cost.prefill_flops_paper(config, [n] * 32) == 32 * per_layer  # 3.33 TFLOPs
    pruned = [n] * 2 + [64 + 64] * 30  # FastV K = 2 keeping 64 visual tokens
    assert cost.prefill_flops_paper(config, pruned) == 2 * per_layer + 30 * (
        4 * 128 * d * d + 2 * 128 * 128 * d + 2 * 128 * d * m
    )
    # tokbench's convention on the same layers: 2 FLOPs per multiply-add and Llama's 3 MLP matrices
    tokbench = sum(cost.decoder_layer_flops(config.text_config, k) for k in pruned)
    assert tokbench == sum(8 * k * d * d + 4 * k * k * d + 6 * k * d * m for k in pruned)
