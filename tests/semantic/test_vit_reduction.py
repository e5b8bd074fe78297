"""Token reduction inside open_clip's ViT: exactness without reduction, token counts, FLOPs."""

from __future__ import annotations

import pytest
import torch

from tokbench.adapters.registry import build_model
from tokbench.errors import ConfigError
from tokbench.flops import measured_flops
from tokbench.semantic.vit_reduction import (
    _attention,
    check_visual,
    encode_image_reduced,
    encoder_flops,
    num_patches,
)


@pytest.fixture(scope="module")
def visual(small_judge):
    return small_judge.model.visual


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _pruner(name: str, budget: int):
    return build_model(f"{name}:budget={budget}").adapter


def test_without_reduction_it_is_the_models_own_forward(visual, pixels) -> None:
    check_visual(visual)
    with torch.inference_mode():
        embedding, lengths = encode_image_reduced(visual, pixels)
        reference = visual(pixels)
    assert torch.allclose(embedding, reference, atol=1e-5, rtol=1e-5)
    assert lengths == [50] * 12 and num_patches(visual) == 49


@pytest.mark.parametrize("name", ["random", "cls-attn", "tome"])
def test_token_counts_after_reduction(visual, pixels, name: str) -> None:
    with torch.inference_mode():
        embedding, lengths = encode_image_reduced(
            visual, pixels, _pruner(name, 12), 12, layer=4, generator=torch.Generator().manual_seed(0)
        )
    assert embedding.shape == (1, 384) and torch.isfinite(embedding).all()
    assert lengths == [50] * 4 + [13] * 8  # [CLS] + 12 kept patches after block 4


def test_keeping_every_token_changes_nothing(visual, pixels) -> None:
    with torch.inference_mode():
        full, _ = encode_image_reduced(visual, pixels)
        kept, lengths = encode_image_reduced(visual, pixels, _pruner("cls-attn", 49), 49, layer=4)
    assert torch.allclose(kept, full, atol=1e-5) and lengths == [50] * 12


def test_flops_fall_with_tokens_kept(visual, pixels) -> None:
    image = pixels[:1]
    counted = []
    with torch.inference_mode():
        for keep in (49, 25, 7):
            pruner = _pruner("cls-attn", keep)
            flops = measured_flops(
                lambda p=pruner, k=keep: encode_image_reduced(visual, image, p, k, layer=4)
            )
            _, lengths = encode_image_reduced(visual, image, pruner, keep, layer=4)
            assert flops == encoder_flops(visual, lengths)  # the analytic count is exact for selection
            counted.append(flops)
    assert counted[0] > counted[1] > counted[2]
    assert counted[0] == encoder_flops(visual, [50] * 12)


def test_bad_layer_and_keep(visual, pixels) -> None:
    with pytest.raises(ConfigError, match=r"layer=12 must be in \[1, 11\]"):
        encode_image_reduced(visual, pixels, _pruner("random", 7), 7, layer=12)
    with pytest.raises(ConfigError, match=r"keep=50 must be in \[1, 49\]"):
        encode_image_reduced(visual, pixels, _pruner("random", 7), 50, layer=2)


def test_only_open_clip_vision_transformers(small_judge) -> None:
    with pytest.raises(ConfigError, match="needs an open_clip VisionTransformer"):
        check_visual(small_judge.model)


def test_tome_vit_without_merges_is_the_models_own_forward(visual, pixels) -> None:
    with torch.inference_mode():
        embedding, lengths = encode_image_reduced(visual, pixels, build_model("tome-vit:r=0").adapter, 49)
        reference = visual(pixels)
    assert torch.allclose(embedding, reference, atol=1e-5, rtol=1e-5) and lengths == [50] * 12


def test_tome_vit_merges_r_tokens_in_every_block(visual, pixels) -> None:
    with torch.inference_mode():
        embedding, lengths = encode_image_reduced(visual, pixels, build_model("tome-vit:r=2").adapter, 49)
    assert torch.isfinite(embedding).all() and lengths == [50 - 2 * block for block in range(12)]


def test_tome_vit_budget_spreads_the_merges_to_leave_keep_patches(visual, pixels) -> None:
    pruner = _pruner("tome-vit", 13)
    assert [pruner.block_r(block, 12, 49, 13) for block in range(12)] == [3] * 12
    assert [pruner.block_r(block, 12, 49, 30) for block in range(12)] == [2] * 9 + [1, 0, 0]
    with torch.inference_mode():
        _, lengths = encode_image_reduced(visual, pixels, pruner, 13)
    assert lengths == [50 - 3 * block for block in range(12)]  # 50 - 36 = 1 + 13 tokens leave block 12


def test_proportional_attention_counts_a_merged_token_as_its_size(visual) -> None:
    """A token of size 2 gets the attention its two identical originals got (ToMe's prop_attn)."""
    x = torch.randn(1, 5, 384, generator=torch.Generator().manual_seed(1))
    x[:, 2] = x[:, 1]
    block = visual.transformer.resblocks[3]
    with torch.inference_mode():
        full, _, _ = _attention(block, x)
        merged, _, _ = _attention(block, x[:, [0, 1, 3, 4]], torch.tensor([[1.0, 2.0, 1.0, 1.0]]))
    torch.testing.assert_close(merged, full[:, [0, 1, 3, 4]], rtol=1e-5, atol=1e-5)
