"""Measured cost of a pruned VLM: prefill FLOPs, latency (prefill, per output token), memory.

FLOPs are counted analytically from the model config and the sequence length each layer actually
saw (multiply–add = 2 FLOPs; attention scores and values counted in full, as a dense kernel runs
them); ``tokbench.flops.measured_flops`` counts the same with ``torch.utils.flop_counter`` (which sees
matmuls and convolutions but not CPU fused attention); the tests check the two agree under eager
attention. ``prefill_flops_paper`` gives the convention the FastV, DivPrune and PyramidDrop papers
report (``4nd² + 2n²d + 2ndm`` per decoder layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class PrefillFlops:
    """Prefill FLOPs by part: vision tower, projector, LLM decoder layers and the LM head."""

    vision: int
    projector: int
    llm: int
    head: int

    @property
    def total(self) -> int:
        """All parts."""
        return self.vision + self.projector + self.llm + self.head


def vision_flops(vision: Any) -> int:
    """CLIP-style ViT: patch embedding, then every encoder layer on patches + [CLS]."""
    patches = (vision.image_size // vision.patch_size) ** 2
    tokens = patches + 1
    d, m = vision.hidden_size, vision.intermediate_size
    embed = 2 * patches * 3 * vision.patch_size**2 * d
    per_layer = 2 * tokens * 4 * d * d + 2 * 2 * tokens * tokens * d + 2 * 2 * tokens * d * m
    return embed + vision.num_hidden_layers * per_layer


def projector_flops(config: Any, visual_in: int) -> int:
    """LLaVA's two-layer MLP projector on the visual tokens entering it."""
    dv, d = config.vision_config.hidden_size, config.text_config.hidden_size
    return 2 * visual_in * (dv * d + d * d)


def decoder_layer_flops(text: Any, tokens: int, past: int = 0) -> int:
    """One Llama decoder layer on ``tokens`` queries attending to ``past + tokens`` keys."""
    d, m = text.hidden_size, text.intermediate_size
    head_dim = getattr(text, "head_dim", None) or d // text.num_attention_heads
    q_width = text.num_attention_heads * head_dim
    kv_width = text.num_key_value_heads * head_dim
    projections = 2 * tokens * d * (2 * q_width + 2 * kv_width)
    attention = 2 * 2 * tokens * (past + tokens) * q_width
    mlp = 2 * tokens * 3 * d * m
    return projections + attention + mlp


def prefill_flops(config: Any, sequence_per_layer: list[int], logits_kept: int = 1) -> PrefillFlops:
    """Analytic prefill FLOPs of a LLaVA config given each decoder layer's sequence length."""
    text = config.text_config
    patches = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    return PrefillFlops(
        vision=vision_flops(config.vision_config),
        projector=projector_flops(config, patches),
        llm=sum(decoder_layer_flops(text, n) for n in sequence_per_layer),
        head=2 * logits_kept * text.hidden_size * text.vocab_size,
    )


def prefill_flops_paper(config: Any, sequence_per_layer: list[int]) -> int:
    """``4nd² + 2n²d + 2ndm`` summed over the decoder layers (n = that layer's sequence length).

    The convention of FastV (Chen et al., arXiv:2403.06764, §4), used by DivPrune and PyramidDrop:
    one FLOP per multiply–add, the four d×d attention projections, QKᵀ and AV, and two d×m MLP
    matrices; Llama's third MLP matrix, grouped-query widths, the vision tower, the projector and
    the LM head are not counted. For an MHA Llama the LLM part of ``prefill_flops`` is
    ``8nd² + 4n²d + 6ndm`` per layer.
    """
    d, m = config.text_config.hidden_size, config.text_config.intermediate_size
    return sum(4 * n * d * d + 2 * n * n * d + 2 * n * d * m for n in sequence_per_layer)


def kv_cache_bytes(config: Any, sequence_per_layer: list[int], dtype: torch.dtype) -> int:
    """Bytes of the key/value cache after prefill (each layer holds its own kept sequence)."""
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    width = 2 * text.num_key_value_heads * head_dim
    return sum(sequence_per_layer) * width * torch.empty((), dtype=dtype).element_size()


class PeakMemory:
    """Peak allocated device memory during a block (CUDA); None where no allocator statistics exist."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
