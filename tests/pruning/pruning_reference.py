"""Helpers of the pruner golden tests: the reference folder and LLaVA hosts built on its tiny models.

``shared/reference/pruning`` (beside the repository) holds the official code's selections on a tiny
CLIP vision tower and tiny Llamas; these build the same networks inside tokbench's LLaVA host.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tokbench.pruning.host import LlavaHost
from tokbench.pruning.prompts import LLAVA15_TEMPLATE, WordCodec

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "pruning"
#: Module mark of every test that reads the reference.
NEEDS_REFERENCE = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"pruning reference data not found at {REFERENCE}"
)
IMAGE_START, IMAGE_TOKENS = 35, 576  # the LLaVA-1.5 layout of the reference runs
#: LlamaConfig fields of the stored tiny Llamas (``tiny_llama_config`` of each method's json).
LLAMA_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "rope_theta")  # fmt: skip


def close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    """Equal within ``tolerance``, relative and absolute."""
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance)


def reference_meta(method: str) -> dict[str, Any]:
    """A method's reference settings, layout and notes (``<method>.json``)."""
    return json.loads((REFERENCE / f"{method}.json").read_text())


def reference_data(method: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A method's reference settings (``<method>.json``) and tensors (``<method>.safetensors``)."""
    return reference_meta(method), load_file(REFERENCE / f"{method}.safetensors")


def reference_host(vision: Any, text: Any, image_size: int) -> LlavaHost:
    """A random-weight LLaVA-1.5 (layer −2 features, GELU projector) of the given configs."""
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


def build_clip_host(projector: dict[str, torch.Tensor] | None) -> LlavaHost:
    """A LLaVA whose vision tower is the reference's tiny CLIP (24 layers, 577 tokens); its
    projector is ``projector`` (DivPrune's stored 32→64→64 MLP) or the identity (FasterVLM,
    VisionZip), with a random LLM of the matching width."""
    from transformers import CLIPVisionConfig, LlamaConfig

    clip = REFERENCE / "tiny_clip"
    width = 32 if projector is None else 64
    text = LlamaConfig(vocab_size=WordCodec(336).vocab_size, hidden_size=width, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    host = reference_host(CLIPVisionConfig.from_pretrained(clip), text, image_size=336)
    tower = host.model.model.vision_tower
    weights = load_file(clip / "model.safetensors")
    if not hasattr(tower, "vision_model"):  # transformers 5 keeps the bare CLIPVisionTransformer
        weights = {name.removeprefix("vision_model."): value for name, value in weights.items()}
    tower.load_state_dict(weights)
    if projector is None:
        host.model.model.multi_modal_projector = torch.nn.Identity()
    else:
        names = {"mm_projector.0": "linear_1", "mm_projector.2": "linear_2"}
        host.model.model.multi_modal_projector.load_state_dict(
            {
                f"{names[name.rsplit('.', 1)[0]]}.{name.rsplit('.', 1)[1]}": value
                for name, value in projector.items()
            }
        )
    return host


def clip_pixels(method: str) -> torch.Tensor:
    """The official CLIPImageProcessor output for the stored 336×336 images (bitwise, per the README),
    checked against the pixel sum ``<method>.json`` recorded."""
    config = json.loads((REFERENCE / "tiny_clip" / "preprocessor_config.json").read_text())
    images = load_file(REFERENCE / "tiny_clip" / "input_images.safetensors")["images_uint8"]
    mean = torch.tensor(config["image_mean"], dtype=torch.float32)
    std = torch.tensor(config["image_std"], dtype=torch.float32)
    pixels = ((images.float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous()
    expected = reference_meta(method)["pixel_values_sum_f64"]
    assert pixels.double().sum().item() == pytest.approx(expected, rel=1e-9)
    return pixels


def build_llama_host(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> LlavaHost:
    """A LLaVA whose LLM is a reference tiny Llama with its stored weights (small random vision)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    text = LlamaConfig(**{name: meta["tiny_llama_config"][name] for name in LLAMA_FIELDS})
    vision = CLIPVisionConfig(image_size=96, patch_size=4, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=3, num_attention_heads=2)  # fmt: skip
    host = reference_host(vision, text, image_size=96)
    weights = {
        name.removeprefix("model."): value for name, value in tensors.items() if name.startswith("model.")
    }
    host.model.model.language_model.load_state_dict(weights)
    return host


def record_layer_inputs(
    layers: list[torch.nn.Module], store: Callable[[int, dict[str, Any]], None]
) -> list[Any]:
    """Pre-hooks (after the host's) handing each layer's index and keyword inputs to ``store``."""

    def capture(index: int):
        def hook(_module: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
            store(index, kwargs)

        return hook

    return [layer.register_forward_pre_hook(capture(i), with_kwargs=True) for i, layer in enumerate(layers)]
