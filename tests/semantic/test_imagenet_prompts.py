"""ImageNet class names and prompt templates, and prompt files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokbench.errors import ConfigError
from tokbench.vocabulary.imagenet import (
    OPENAI_IMAGENET_TEMPLATES,
    SIMPLE_IMAGENET_TEMPLATES,
    TEMPLATE_SETS,
    imagenet_class_names,
    imagenet_classes,
    imagenet_synset_index,
    read_prompt_file,
    read_prompts,
)


def test_thousand_classes_in_synset_order() -> None:
    classes = imagenet_classes()
    synsets = [synset for synset, _ in classes]
    assert len(classes) == 1000 and synsets == sorted(synsets) and len(set(synsets)) == 1000
    assert classes[0] == ("n01440764", "tench") and classes[999] == ("n15075141", "toilet paper")
    assert imagenet_synset_index()["n02123045"] == 281  # tabby cat
    assert imagenet_class_names()[281] == "tabby cat"


def test_names_and_templates_are_the_standard_clip_ones() -> None:
    """The same names and templates open_clip ships for CLIP's zero-shot ImageNet evaluation."""
    from open_clip import zero_shot_metadata as reference

    assert imagenet_class_names() == tuple(reference.IMAGENET_CLASSNAMES)
    assert tuple(t("{}") for t in reference.OPENAI_IMAGENET_TEMPLATES) == OPENAI_IMAGENET_TEMPLATES
    assert tuple(t("{}") for t in reference.SIMPLE_IMAGENET_TEMPLATES) == SIMPLE_IMAGENET_TEMPLATES
    assert len(TEMPLATE_SETS["openai-80"]) == 80 and len(TEMPLATE_SETS["openai-7"]) == 7
    assert all(template.count("{}") == 1 for templates in TEMPLATE_SETS.values() for template in templates)


def test_prompt_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("a red bus\n  a cat on a mat \r\n", encoding="utf-8")
    assert read_prompt_file(path) == ["a red bus", "  a cat on a mat "]


@pytest.mark.parametrize("text", ["a\n\nb\n", "a\n   \n", "\n"])
def test_prompt_file_with_an_empty_line_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"prompts\.txt, line \d+ is empty"):
        read_prompt_file(path)


def test_empty_or_unreadable_prompt_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is empty"):
        read_prompts("", "p.txt")
    with pytest.raises(ConfigError, match="cannot read prompt file"):
        read_prompt_file(tmp_path / "missing.txt")
