"""The tiny word codec: one id for <image>, round-trip of known words, CLIP-normalised pixels."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tokbench.errors import ConfigError
from tokbench.pruning.prompts import CLIP_MEAN, LLAVA15_TEMPLATE, WordCodec, check_prompt_template


def test_word_codec_encodes_one_image_placeholder_and_decodes_words() -> None:
    codec = WordCodec(image_size=96)
    ids = codec.encode(LLAVA15_TEMPLATE.format(question="Is there a cat?"))
    assert ids[0] == codec.bos_token_id and ids.count(codec.image_token_id) == 1
    assert codec.decode(codec.encode("yes a red cat")[1:]) == "yes a red cat"
    assert codec.encode("zebra")[1] == 0  # unknown word


def test_word_codec_pixels_are_padded_to_square_resized_and_normalised() -> None:
    pixels = WordCodec(image_size=96).pixels(Image.new("RGB", (40, 30), (0, 0, 0)))
    assert pixels.shape == (1, 3, 96, 96)
    assert torch.allclose(pixels[0, 0, 48, 48], torch.tensor(-CLIP_MEAN[0] / 0.26862954), atol=1e-5)
    padding = (122 / 255 - CLIP_MEAN[0]) / 0.26862954  # expand2square's mean colour, top rows
    assert torch.allclose(pixels[0, 0, 0, 48], torch.tensor(padding), atol=1e-5)


def test_templates_need_one_image_and_one_question() -> None:
    assert check_prompt_template(LLAVA15_TEMPLATE) == LLAVA15_TEMPLATE
    with pytest.raises(ConfigError, match="template"):
        check_prompt_template("USER: {question} ASSISTANT:")
