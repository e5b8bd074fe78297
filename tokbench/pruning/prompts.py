"""Prompt codecs: text ↔ token ids and image → pixel values for the VLM host.

``ProcessorCodec`` wraps a checkpoint's Hugging Face processor (tokenizer + image processor
settings). ``WordCodec`` is the offline stand-in for the tiny random VLM: a word-level tokenizer
over a fixed vocabulary. Both prepare images as LLaVA-1.5 does (``image_aspect_ratio: pad``):
``expand2square`` on the processor's mean colour, then CLIP's resize, centre crop and normalisation
computed with PIL as ``CLIPImageProcessor`` does (pinned by ``llava15_preprocess`` golden pixels).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from tokbench.errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_PLACEHOLDER = "<image>"
#: LLaVA's ``conv_vicuna_v1`` system prompt.
VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions."
)
#: LLaVA-1.5's evaluation prompt (vicuna_v1, roles USER/ASSISTANT, sep " "), one image first.
LLAVA15_TEMPLATE = f"{VICUNA_V1_SYSTEM} USER: {IMAGE_PLACEHOLDER}\n{{question}} ASSISTANT:"


def expand2square(image: Image.Image, mean: tuple[float, ...]) -> Image.Image:
    """LLaVA's ``expand2square``: the image centred on a square canvas of colour int(255·mean)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), tuple(int(x * 255) for x in mean))
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def clip_pixels(
    image: Image.Image, shortest_edge: int, crop: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """``CLIPImageProcessor`` on a PIL image: bicubic resize of the shortest edge, centre crop,
    ``(x/255 − mean)/std`` in float32; ``1×3×crop×crop``."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    resized_long = int(shortest_edge * long / short)
    size = (shortest_edge, resized_long) if width <= height else (resized_long, shortest_edge)
    resized = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    array = np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.uint8)
    pixels = (array.astype(np.float32) / np.float32(255) - np.asarray(mean, np.float32)) / np.asarray(
        std, np.float32
    )
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]


def llava15_pixels(
    image: Image.Image, shortest_edge: int, crop: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """LLaVA-1.5's image preparation: ``expand2square`` on the mean colour, then ``clip_pixels``."""
    return clip_pixels(expand2square(image.convert("RGB"), mean), shortest_edge, crop, mean, std)


class PromptCodec(Protocol):
    """What the host needs from a tokenizer and image processor."""

    image_token_id: int
    eos_token_id: int

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (with the BOS the model expects); ``<image>`` is one id."""

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special tokens dropped."""

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """``1×3×S×S`` normalised pixel values for the vision tower."""


class ProcessorCodec:
    """A checkpoint's processor (e.g. ``llava-hf/llava-1.5-7b-hf``)."""

    def __init__(self, processor: Any):
        self.processor = processor
        tokenizer = processor.tokenizer
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER))
        self.eos_token_id = int(tokenizer.eos_token_id)

    def encode(self, text: str) -> list[int]:
        """Tokenise with the checkpoint's tokenizer (BOS added as it is configured)."""
        return list(self.processor.tokenizer(text)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Decode, skipping special tokens."""
        return str(self.processor.tokenizer.decode(ids, skip_special_tokens=True)).strip()

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """LLaVA-1.5's padding and CLIP preprocessing with the checkpoint's processor settings."""
        settings = self.processor.image_processor
        crop = settings.crop_size["height"]
        return llava15_pixels(
            image, settings.size["shortest_edge"], crop, tuple(settings.image_mean), tuple(settings.image_std)
        )


#: Words of the tiny codec (the prompt template, benchmark instructions and short answers).
_TINY_TEXT = (
    "a an the and or of to in on at is are was be it this that there what which who how many color "
    "image picture photo question answer using single word phrase yes no please with from by for as "
    "chat between curious user user's artificial intelligence assistant gives helpful detailed polite "
    "answers questions reference ocr token options option letter given choices directly context hint "
    "left right top bottom red green blue black white yellow one two three four five six seven eight "
    "nine ten zero cat dog person car sign text written say does do object shown"
)
TINY_WORDS = tuple(_TINY_TEXT.split(" "))
TINY_SPECIALS = ("<unk>", "<s>", "</s>", IMAGE_PLACEHOLDER)
_PIECES = re.compile(r"<image>|</s>|<s>|[A-Za-z']+|\d|[^\sA-Za-z\d]")


class WordCodec:
    """Word-level tokenizer over a fixed vocabulary for the tiny random VLM; unknown words → <unk>."""

    def __init__(self, image_size: int):
        letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
        punctuation = list(".,:?!;()'\"-/\n")
        self.vocabulary = [
            *TINY_SPECIALS,
            *dict.fromkeys([*TINY_WORDS, *letters, *map(str, range(10)), *punctuation]),
        ]
        self.ids = {word: i for i, word in enumerate(self.vocabulary)}
        self.vocab_size = len(self.vocabulary)
        self.image_token_id = TINY_SPECIALS.index(IMAGE_PLACEHOLDER)
        self.eos_token_id = TINY_SPECIALS.index("</s>")
        self.bos_token_id = TINY_SPECIALS.index("<s>")
        self.image_size = image_size

    def encode(self, text: str) -> list[int]:
        """BOS + word ids (whitespace dropped)."""
        pieces = [p for p in _PIECES.findall(text) if p.strip() or p == "\n"]
        return [self.bos_token_id, *(self.ids.get(p, self.ids.get(p.lower(), 0)) for p in pieces)]

    def decode(self, ids: list[int]) -> str:
        """Space-joined words, specials dropped."""
        return " ".join(self.vocabulary[i] for i in ids if len(TINY_SPECIALS) <= i < self.vocab_size)

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """LLaVA-1.5's preparation at the tiny vision tower's size (CLIP mean and std)."""
        return llava15_pixels(image, self.image_size, self.image_size, CLIP_MEAN, CLIP_STD)


def check_prompt_template(template: str) -> str:
    """A template with exactly one ``<image>`` and one ``{question}``."""
    if template.count(IMAGE_PLACEHOLDER) != 1 or template.count("{question}") != 1:
        raise ConfigError(f"prompt template must contain one <image> and one {{question}}, got {template!r}")
    return template
