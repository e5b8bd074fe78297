"""The three adapter contracts: tokenizers, generators and pruners.

Every image tensor that crosses an adapter boundary is float32, N×3×H×W, RGB, in [0, 1]; adapters
that need another range convert inside themselves. The runner owns batching, ordering and seeds.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tokbench.errors import ConfigError


@dataclass(frozen=True)
class ModelCard:
    """What ``tokbench list models --details`` and the coverage table show for one released variant."""

    #: Model family as papers name it, e.g. "LlamaGen VQ".
    family: str
    #: The spec that builds it, e.g. "llamagen-vq:variant=ds16-c2i".
    spec: str
    #: "discrete", "continuous", "codec", "generator" or "pruner".
    kind: str
    #: Tokens (or latent positions) per image at ``resolution``; None where undefined.
    tokens: int | None = None
    #: Codebook size of a discrete tokenizer; None otherwise.
    codebook: int | None = None
    #: Spatial downsampling factor; None for 1-D tokenizers and codecs.
    downsampling: int | None = None
    #: Input resolution the variant was trained at (pixels per side); None when any.
    resolution: int | None = None
    #: Hub id or URL of the official weights; "" when weightless.
    hub_id: str = ""
    #: How the implementation is verified: "golden: <reference folder>", "library: <package class>",
    #: "none" (with the reason in ``note``).
    verification: str = "none"
    note: str = ""


class Adapter:
    """Common attributes of every adapter: a kind, a version and optional weights provenance."""

    kind: ClassVar[str] = ""
    #: Bump when the adapter's behaviour changes; it goes into the record.
    version: ClassVar[str] = "1"
    #: Constructor arguments that only say where files are (e.g. ``weights``): they are recorded but
    #: left out of the model's identity, which the weights sha256 carries instead.
    location_arguments: ClassVar[tuple[str, ...]] = ("weights",)
    #: An argument the spec may give without its name, right after the model name
    #: (``reconstructions:DIR`` for ``reconstructions:path=DIR``).
    positional_argument: ClassVar[str | None] = None

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the loaded weights, or None for adapters without weights."""
        return None

    def to(self, device: torch.device) -> Adapter:
        """Move any networks to ``device``; weightless adapters ignore it."""
        return self

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """One card per released variant this adapter builds (none for generic adapters)."""
        return ()


@dataclass(frozen=True)
class Encoded:
    """What ``Tokenizer.encode`` returns for a batch.

    ``payload`` is whatever ``decode`` needs (token ids, latents, compressed byte strings).
    ``bits`` holds each image's size in bits: the real encoded size for codecs, or
    tokens × log2(codebook size) for discrete tokenizers; None when no size is defined.
    """

    payload: Any
    bits: torch.Tensor | None = None
    num_tokens: int | None = None


class Tokenizer(Adapter, ABC):
    """Turns images into a compact representation and back (VQ, 1D tokenizers, VAEs, codecs)."""

    kind: ClassVar[str] = "tokenizer"

    @abstractmethod
    def encode(self, images: torch.Tensor) -> Encoded:
        """Encode a float32 N×3×H×W batch in [0, 1]."""

    @abstractmethod
    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Decode to a float32 N×3×H×W batch in [0, 1], one image per input, in order."""


class VideoTokenizer(Adapter, ABC):
    """Turns video clips into a compact representation and back (video VAEs, video codecs).

    Clips cross the boundary as float32 N×T×3×H×W, RGB, in [0, 1]. ``Encoded.bits`` holds each
    clip's size in bits (real bytes for codecs; tokens × log2(K) for discrete tokenizers; None when
    undefined); ``Encoded.num_tokens`` the tokens (or latent positions) per clip.
    """

    kind: ClassVar[str] = "video-tokenizer"
    #: Frames per clip the tokenizer accepts: T with ``(T - frame_offset) % frame_multiple == 0``
    #: (causal video VAEs with 4× temporal compression take 4k + 1 frames: multiple 4, offset 1).
    frame_multiple: ClassVar[int] = 1
    frame_offset: ClassVar[int] = 0

    def accepts_frames(self, count: int) -> bool:
        """Whether a clip of ``count`` frames fits the tokenizer's temporal compression."""
        return count > self.frame_offset - 1 and (count - self.frame_offset) % self.frame_multiple == 0

    @abstractmethod
    def encode(self, clips: torch.Tensor) -> Encoded:
        """Encode a float32 N×T×3×H×W batch of clips in [0, 1]."""

    @abstractmethod
    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Decode to float32 N×T×3×H×W in [0, 1], one clip per input, in order, same T, H, W."""


class VariableLengthTokenizer(ABC):
    """Mixin for tokenizers whose ordered 1-D token sequence can be cut to its first ``num_tokens``
    tokens (FlexTok, One-D-Piece, ...), so that ``--sweep num_tokens=8,16,...`` traces a rate curve.

    A subclass takes ``num_tokens`` as a constructor argument (checked with ``check_num_tokens``),
    declares the counts it supports and its codebook size, and returns from ``encode`` an
    ``Encoded`` with ``num_tokens`` and ``bits=self.token_bits(n)`` (tokens × log2(codebook size)).
    """

    #: The token counts the tokenizer can keep, e.g. ``range(1, 257)`` or ``(1, 2, 4, ..., 256)``.
    supported_num_tokens: ClassVar[Sequence[int]] = ()
    num_tokens: int

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of codebook entries a token indexes (its size is log2 of this, in bits)."""

    def check_num_tokens(self, value: int) -> int:
        """``value`` when it is a supported token count, else a ConfigError listing the choices."""
        if isinstance(value, bool) or not isinstance(value, int) or value not in self.supported_num_tokens:
            choices = self.supported_num_tokens
            shown = (
                f"an integer in [{choices.start}, {choices.stop - 1}]"
                if isinstance(choices, range) and choices.step == 1
                else ", ".join(map(str, choices))
            )
            raise ConfigError(f"{type(self).__name__}: num_tokens must be {shown}, got {value!r}")
        return value

    def token_bits(self, count: int) -> torch.Tensor:
        """Bits of each of ``count`` images: ``num_tokens × log2(codebook_size)`` (float64, shape N)."""
        return torch.full((count,), self.num_tokens * math.log2(self.codebook_size), dtype=torch.float64)


class Generator(Adapter, ABC):
    """Samples images from class labels or prompts (AR, masked, diffusion).

    Sampling settings (guidance scale, steps, sampler, ...) are constructor arguments, so they are
    part of the model spec (``dit:guidance_scale=1.5,steps=250``) and are validated when the model is
    built, before any sampling; ``sampling_settings`` names them for records. The runner gives one
    seed per image, so an image depends only on its condition and its seed, never on batching.
    """

    kind: ClassVar[str] = "generator"
    #: Names of the constructor arguments that are sampling settings (recorded with every run).
    sampling_settings: ClassVar[tuple[str, ...]] = ()

    @property
    def num_classes(self) -> int | None:
        """Number of class labels a class-conditional generator accepts (0 … n-1); None otherwise."""
        return None

    def settings(self) -> dict[str, Any]:
        """The sampling settings in use, ``{name: value}`` for every name in ``sampling_settings``."""
        return {name: getattr(self, name) for name in self.sampling_settings}

    @abstractmethod
    def sample(self, conditions: list[Any], seeds: list[int]) -> torch.Tensor:
        """Return one float32 3×H×W image in [0, 1] per condition, stacked as N×3×H×W; image i is
        drawn from ``seeds[i]`` alone (its own random generator)."""


class Pruner(Adapter):
    """Reduces the visual tokens a vision-language model sees, at one of two insertion points.

    *pre-LLM* pruners override ``reduce``: after the projector they select or merge the visual
    tokens (``PreLLMContext`` holds the projected tokens, the vision features with the [CLS] token
    and the projector, the vision encoder's attention maps and keys when ``needs_attention``, and the
    text query). *intra-LLM* pruners override ``schedule`` and ``select_in_layer``: at decoder layer K
    they drop visual tokens using the LLM's own attention (FastV, PyramidDrop). ``budget`` is a token
    count (``64``) or a ratio of the visual tokens (``0.25``); the host resolves it with
    ``resolve_budget``. ``vlm`` overrides the suite's host VLM (e.g. ``vlm=tiny-random`` for an
    offline smoke run).
    """

    kind: ClassVar[str] = "pruner"
    #: "pre-llm" or "intra-llm": where the host applies the pruner.
    stage: ClassVar[str] = "pre-llm"
    training_free: ClassVar[bool] = True
    #: Needs attention maps (the host then runs eager attention and records it).
    needs_attention: ClassVar[bool] = False
    #: Needs the text query (its token embeddings are in the context).
    needs_text_query: ClassVar[bool] = False
    #: Outputs merged (averaged) tokens rather than a subset of the originals.
    merges_tokens: ClassVar[bool] = False
    #: Intra-LLM: ranks with the last token's attention in the dropping layer itself, computed from
    #: its layer-normed input with its own q/k projections and RoPE (``LayerContext.query_attention``).
    needs_query_attention: ClassVar[bool] = False
    #: Intra-LLM: position ids are renumbered 0..L'-1 after each drop (decoding continues from L'),
    #: instead of keeping the original positions with gaps.
    renumbers_positions: ClassVar[bool] = False

    def __init__(self, budget: int | float | str = 576, vlm: str | None = None):
        self.budget = parse_budget(budget)
        #: The host VLM (hub id, local directory or ``tiny-random``); None → the suite's ``vlm`` setting.
        self.vlm = vlm

    def reduce(self, context: PreLLMContext, keep: int) -> ReducedTokens:
        """Pre-LLM: return ``keep`` visual tokens per image (selected or merged)."""
        raise NotImplementedError(f"{type(self).__name__} is an intra-LLM pruner; it has no reduce()")

    def schedule(self, num_layers: int, keep: int) -> list[tuple[int, int]]:
        """Intra-LLM: ``(layer, visual tokens kept from that layer on)`` pairs, layers increasing."""
        return []

    def select_in_layer(self, context: LayerContext, keep: int) -> torch.Tensor:
        """Intra-LLM: indices (``B×keep``, sorted) into the visual tokens still present."""
        raise NotImplementedError(f"{type(self).__name__} is a pre-LLM pruner; it has no select_in_layer()")


@dataclass(frozen=True)
class PreLLMContext:
    """What a pre-LLM pruner sees for a batch of images (after the projector)."""

    #: B×N×D projected visual tokens (what the LLM would receive).
    tokens: torch.Tensor
    #: B×N×Dv vision features at the selected vision layer (before the projector).
    vision_features: torch.Tensor
    #: (rows, cols) of the patch grid, row-major.
    grid: tuple[int, int]
    #: B×H×(P+N)×(P+N) attention of the selected vision layer (P prefix tokens, e.g. [CLS]) or None.
    vision_attentions: torch.Tensor | None = None
    #: B×(P+N)×Dk keys of the selected vision layer (heads concatenated, head-major), or None.
    vision_keys: torch.Tensor | None = None
    #: Number of prefix tokens ([CLS]) in ``vision_attentions``/``vision_keys``.
    num_prefix: int = 1
    #: B×T×D embeddings of the text tokens of the prompt.
    text_embeddings: torch.Tensor | None = None
    generator: torch.Generator | None = None
    #: B×P×Dv prefix tokens ([CLS]) at the selected vision layer, which a pruner may keep (index -1);
    #: None where the host keeps them itself.
    prefix_features: torch.Tensor | None = None
    #: Maps B×K×Dv vision-layer tokens to ``tokens``' space (the VLM's projector); None when
    #: ``tokens`` are the vision features themselves.
    projector: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class LayerContext:
    """What an intra-LLM pruner sees at the decoder layer where it drops tokens."""

    layer: int
    #: B×H×Q×K attention of the previous decoder layer over the current sequence (``needs_attention``).
    attentions: torch.Tensor | None
    #: Positions (in the current sequence) of the visual tokens still present, increasing.
    visual_positions: torch.Tensor
    #: B×Q×D hidden states entering the layer.
    hidden_states: torch.Tensor
    #: B×H×K attention of the last query to every key of the current sequence in this layer itself,
    #: before the drop (``needs_query_attention``).
    query_attention: torch.Tensor | None = None


@dataclass(frozen=True)
class ReducedTokens:
    """A pre-LLM pruner's output: ``B×K×D`` tokens and, per slot, the original patch index it stands
    for (-1 for a kept prefix token such as [CLS], which comes first)."""

    tokens: torch.Tensor
    index: torch.Tensor


@dataclass(frozen=True)
class Budget:
    """A token budget: an absolute ``count`` or a ``ratio`` of the visual tokens (exactly one set)."""

    count: int | None = None
    ratio: float | None = None

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.ratio:g}"


def parse_budget(value: int | float | str) -> Budget:
    """``64`` / ``"64"`` → 64 tokens; ``0.25`` / ``"0.25"`` → a quarter of the visual tokens."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"budget={value!r} is not a token count (64) or a ratio (0.25)") from None
    if number <= 0:
        raise ConfigError(f"budget={value!r} must be positive: a token count >= 1 or a ratio in (0, 1]")
    if number < 1 or (number == 1 and "." in text):
        return Budget(ratio=number)
    if number != int(number):
        raise ConfigError(f"budget={value!r}: a token count must be a whole number, a ratio at most 1")
    return Budget(count=int(number))


def resolve_budget(budget: Budget, available: int) -> int:
    """The kept-token count for ``available`` visual tokens; a count above ``available`` raises."""
    if budget.count is not None:
        if budget.count > available:
            raise ConfigError(
                f"budget={budget.count} exceeds the {available} visual tokens of this model; "
                f"use budget <= {available} or a ratio such as 0.25"
            )
        return budget.count
    return max(1, round(float(budget.ratio) * available))
