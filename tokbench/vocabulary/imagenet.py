"""ImageNet-1k class names (by WordNet synset) and the prompt templates of CLIP's zero-shot evaluation.

The 1,000 classes are in label order (the sorted synset ids) in ``imagenet_classes.tsv`` beside this
module, with the class names OpenAI curated for CLIP's zero-shot ImageNet evaluation (two names repeat,
so labels are indices, never names). The templates are the 80 prompts of that evaluation and its
7-prompt subset; ``{}`` stands for the class name.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tokbench.errors import ConfigError

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.tsv")
IMAGENET_CLASS_COUNT = 1000

OPENAI_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

SIMPLE_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

#: Template sets by name (a zero-shot metric option).
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "openai-80": OPENAI_IMAGENET_TEMPLATES,
    "openai-7": SIMPLE_IMAGENET_TEMPLATES,
    "photo": ("a photo of a {}.",),
}


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1,000 (synset, class name) pairs in label order, read and checked once."""
    rows = []
    for number, line in enumerate(CLASSES_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        synset, separator, name = line.partition("\t")
        if not separator or not synset.startswith("n") or not name:
            raise ConfigError(f"{CLASSES_FILE}:{number}: expected 'synset<TAB>name', got {line!r}")
        rows.append((synset, name))
    if len(rows) != IMAGENET_CLASS_COUNT or len({s for s, _ in rows}) != IMAGENET_CLASS_COUNT:
        raise ConfigError(
            f"{CLASSES_FILE} must list {IMAGENET_CLASS_COUNT} distinct synsets, got {len(rows)}"
        )
    return tuple(rows)


def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 class names in label order."""
    return tuple(name for _, name in imagenet_classes())


def imagenet_synset_index() -> dict[str, int]:
    """Synset id (``n01440764``) → label."""
    return {synset: index for index, (synset, _) in enumerate(imagenet_classes())}


def read_prompts(text: str, source: str) -> list[str]:
    """One prompt per line of ``text`` (a prompt file's contents); an empty line is an error.

    A final newline is allowed; lines are stripped of their line ending only, so leading or trailing
    spaces that are part of a prompt are kept, and a line of spaces counts as empty.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ConfigError(f"prompt file {source} is empty; write one prompt per line")
    prompts = []
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            raise ConfigError(
                f"prompt file {source}, line {number} is empty; write one prompt per line with no blank lines"
            )
        prompts.append(line)
    return prompts


def read_prompt_file(path: Path) -> list[str]:
    """The prompts of a UTF-8 text file, one per line (see ``read_prompts``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read prompt file {path}: {error}") from None
    return read_prompts(text, str(path))
