"""Fixtures shared by the model-family tests (helpers without fixtures: ``zoo_reference``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from zoo_reference import clear_hub_env


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: tiny models gain nothing from more on a shared machine (the golden
    tolerances cover 1 vs 2 threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No hub cache, no offline flags, no proxies, the default endpoint; an empty HF_HOME in tmp."""
    return clear_hub_env(monkeypatch, tmp_path / "hf_home")
