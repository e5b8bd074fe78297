"""Cost: the analytic FLOP count agrees with torch's counter; FLOPs and latency fall with the budget."""

from __future__ import annotations

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
