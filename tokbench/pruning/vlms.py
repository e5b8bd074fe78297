"""Loading the VLM host: a hub/local LLaVA checkpoint, or the tiny random-weight VLM for offline runs.

``tiny-random`` has LLaVA-1.5's real module structure (CLIP vision tower, 2-layer GELU projector,
Llama decoder) and its 24×24 = 576 visual-token grid, at a tiny width, with **random weights**:
its accuracies are meaningless and records say so (``vlm.random_weights: true``); it exists for
tests, smoke runs and relative cost measurements.
"""

from __future__ import annotations

from typing import Any

import torch

from tokbench.errors import ConfigError, WeightsError
from tokbench.pruning.host import LlavaHost
from tokbench.pruning.prompts import LLAVA15_TEMPLATE, ProcessorCodec, WordCodec

TINY_RANDOM = "tiny-random"
DEFAULT_VLM = "llava-hf/llava-1.5-7b-hf"


def tiny_config(vocab_size: int, image_token_id: int, seed_layers: int = 4) -> Any:
    """A LLaVA-1.5-shaped ``LlavaConfig``: 96-px images, 4-px patches (24×24 grid), tiny widths."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        image_size=96,
        patch_size=4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=seed_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )


def tiny_random_host(seed: int = 0, device: str | torch.device = "cpu") -> LlavaHost:
    """The tiny random-weight LLaVA (seeded), with the word-level codec."""
    from transformers import LlavaForConditionalGeneration

    codec = WordCodec(image_size=96)
    config = tiny_config(vocab_size=codec.vocab_size, image_token_id=codec.image_token_id)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlavaForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    return LlavaHost(model.to(device), codec, TINY_RANDOM, random_weights=True, template=LLAVA15_TEMPLATE)


def load_host(vlm: str, device: str | torch.device = "cpu", seed: int = 0) -> LlavaHost:
    """``tiny-random`` or a LLaVA checkpoint (hub id or local directory), on ``device``.

    Checkpoints load in float16 on CUDA and float32 elsewhere; an offline miss raises a
    ``WeightsError`` naming the checkpoint and how to supply it.
    """
    if vlm == TINY_RANDOM:
        return tiny_random_host(seed, device)
    try:
        from transformers import AutoConfig, AutoProcessor, LlavaForConditionalGeneration
    except ImportError as exc:
        raise ConfigError(f"VLM {vlm!r} needs transformers: pip install 'tokbench[vlm]' ({exc})") from None
    try:
        config = AutoConfig.from_pretrained(vlm)
    except (OSError, ValueError) as exc:
        raise WeightsError(_missing(vlm, exc)) from None
    if getattr(config, "vision_config", None) is None:
        raise ConfigError(
            f"VLM {vlm!r} is a {type(config).__name__} without a vision tower; the prune suite needs a "
            "LLaVA-family checkpoint (LlavaForConditionalGeneration), e.g. llava-hf/llava-1.5-7b-hf"
        )
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(vlm)
        model = LlavaForConditionalGeneration.from_pretrained(vlm, dtype=dtype, attn_implementation="sdpa")
    except (OSError, ValueError) as exc:
        raise WeightsError(_missing(vlm, exc)) from None
    return LlavaHost(
        model.to(device), ProcessorCodec(processor), vlm, random_weights=False, template=LLAVA15_TEMPLATE
    )


def _missing(vlm: str, exc: Exception) -> str:
    return (
        f"could not load the VLM checkpoint {vlm!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
        "It is downloaded from the Hugging Face hub when online; offline, put it in the hub cache "
        "(HF_HOME) or pass a local directory with settings/argument vlm=PATH. For an offline smoke "
        "run use vlm=tiny-random (random weights, meaningless accuracy)."
    )
