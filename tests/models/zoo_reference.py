"""Helpers shared by the model-family tests (TiTok, LlamaGen VQ, VAR VQVAE, Open-MAGVIT2, the
transformers VQ-VAEs): where a family's golden reference folder is and the mark that skips without it,
a hub environment with no cache, offline flag or proxy, and the tiny suite YAMLs their end-to-end tests
write (pfid at a given α through ``include: pfid``, TokBench at 256 px)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The golden data computed by the official code (one folder per family).
REFERENCE_ROOT = Path(__file__).resolve().parents[3] / "shared" / "reference"
#: What makes the hub reachable or not, or points at another cache: cleared by ``clear_hub_env``.
HUB_VARIABLES = (
    *("HF_HUB_OFFLINE", "TOKBENCH_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE"),
    *("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"),
)


def reference(family: str) -> tuple[Path, pytest.MarkDecorator]:
    """A family's reference folder and the mark that skips a test when it is absent."""
    folder = REFERENCE_ROOT / family
    return folder, pytest.mark.skipif(not folder.is_dir(), reason=f"reference data not found at {folder}")


def clear_hub_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """No hub cache, no offline flags, no proxies, the default endpoint; HF_HOME is ``home``."""
    for name in HUB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home


def pfid_suite(name: str, alpha: float, delta: int, seed: int) -> str:
    """The pfid suite (``include: pfid``) named ``name`` with its perturbation at ``alpha``."""
    return (
        f'include: pfid\nname: {name}\nversion: "test"\n'
        f"settings: {{perturbation: {{alpha: {alpha}, beta: 1.0, delta: {delta}, seed: {seed}}}}}\n"
    )


def tokbench_256_suite(name: str, dataset: str | None = None) -> str:
    """The tokbench suite at 256 px only (fixed bucket edges, reconstructions saved as the originals,
    one OCR batch per instance), named ``name``, on ``dataset`` when given."""
    return (
        f'include: tokbench\nname: {name}\nversion: "test"\n'
        + (f"dataset: {dataset}\n" if dataset else "")
        + """settings:
  bucket_edges: "855802d"
  save: as-original
  ocr_batches: per-instance
  resolutions:
    - {resolution: 256, text: [0.02, 0.03, 0.04, 1.0], face: [0.1, 0.2, 0.3, 1.0]}
"""
    )
