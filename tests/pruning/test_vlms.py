"""The tiny random VLM keeps LLaVA-1.5's structure and grid, is seeded, and says it is random."""

from __future__ import annotations

import torch

from tokbench.pruning.vlms import TINY_RANDOM, tiny_random_host


def test_tiny_random_has_the_llava_structure_and_576_tokens(tiny_host) -> None:
    inner = tiny_host.model.model
    assert type(tiny_host.model).__name__ == "LlavaForConditionalGeneration"
    assert type(inner.vision_tower).__name__ == "CLIPVisionModel"
    assert type(inner.language_model).__name__ == "LlamaModel"
    assert tiny_host.num_visual_tokens == 576 and tiny_host.grid == (24, 24)
    assert tiny_host.random_weights and tiny_host.name == TINY_RANDOM


def test_tiny_random_is_seeded_and_leaves_the_global_rng_alone(tiny_host) -> None:
    state = torch.random.get_rng_state()
    other = tiny_random_host(seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    first = next(tiny_host.model.parameters())
    assert torch.equal(first, next(other.model.parameters()))
