"""Shared fixtures: the tiny random LLaVA host and the benchmark fixture directory."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "benchmarks"


@pytest.fixture(scope="session")
def tiny_host():
    from tokbench.pruning.vlms import tiny_random_host

    return tiny_random_host(seed=0)


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    return FIXTURE
