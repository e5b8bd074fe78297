"""Fixtures of the semantic tests: random-initialised open_clip models of real and shrunk configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: A shrunk CLIP (same classes and tokenizer as ViT-B-32, 2 layers of width 64) registered through
#: open_clip's model-config API, for weights-file round trips that stay small on disk.
TINY_MODEL = "tokbench-test-tiny-vit"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The name of the shrunk config, registered with open_clip."""
    import open_clip

    path: Path = tmp_path_factory.mktemp("open_clip_configs") / f"{TINY_MODEL}.json"
    path.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(path)
    return TINY_MODEL


@pytest.fixture(scope="session")
def small_judge():
    """ViT-S-32 (a real open_clip config, 384-d embeddings) with random weights."""
    from tokbench.judges.clip import ClipJudge

    return ClipJudge("ViT-S-32", None, weights="random")


@pytest.fixture(scope="session")
def tiny_judge(tiny_model: str):
    """The shrunk CLIP with random weights (fast text tower for zero-shot classifiers)."""
    from tokbench.judges.clip import ClipJudge

    return ClipJudge(tiny_model, None, weights="random")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Classifier and feature caches of each test go to its own directory."""
    cache = tmp_path / "tokbench-cache"
    monkeypatch.setenv("TOKBENCH_CACHE", str(cache))
    return cache
