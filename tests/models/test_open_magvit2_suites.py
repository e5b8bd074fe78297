"""Open-MAGVIT2 through the suites: pFID's codebook perturbation on the implicit LFQ codebook, and
recon, pfid at α = 0 (equal to rFID) and tokbench end to end on the embedded data with random
weights of a tiny f16 design."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from zoo_reference import pfid_suite, tokbench_256_suite

import tokbench
from tokbench.adapters.base import Encoded
from tokbench.models.open_magvit2 import OpenMagvit2
from tokbench.models.open_magvit2_modules import OpenMagvit2Config, OpenMagvit2Model
from tokbench.perturb import CodebookPerturbation, PerturbedTokenizer
from tokbench.suites import SUITE_PATH_ENV

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny() -> OpenMagvit2:
    """The f16 design (five levels) at width 32 with 10 LFQ bits: 16×16 tokens at 256×256."""
    config = OpenMagvit2Config(32, (1, 1, 1, 2, 1), 1, 10)
    return OpenMagvit2.from_model(OpenMagvit2Model.random_init(config, seed=0), name="tiny_f16")


def test_codebook_perturbation_moves_tokens_to_near_codes() -> None:
    """pFID on LFQ: a replaced token takes one of the δ codes nearest its latent, so with δ = 2 the
    only candidate besides itself flips the bit of the latent channel closest to 0."""
    tokenizer = _tiny()
    images = torch.rand((2, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    perturbed = PerturbedTokenizer(tokenizer, CodebookPerturbation(alpha=1.0, beta=1.0, delta=2, seed=1))
    indices, latents = tokenizer.encode_latents(images)
    moved = perturbed.encode(images).payload
    changed = moved != indices
    assert changed.any() and not changed.all()  # candidate 0 is the code itself
    flipped = indices ^ (1 << latents.abs().argmin(dim=-1))
    assert torch.equal(moved[changed], flipped[changed])
    assert perturbed.decode(Encoded(payload=moved)).shape == images.shape


SUITES = {
    "om2-pfid0": pfid_suite("om2-pfid0", alpha=0.0, delta=8, seed=3),
    "om2-tokbench": tokbench_256_suite("om2-tokbench"),
}


@pytest.fixture
def suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in SUITES.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))


def test_recon_and_pfid_at_alpha_zero_end_to_end(suites: None, tmp_path: Path) -> None:
    tokenizer = _tiny()
    store = tmp_path / "store"
    recon = tokbench.evaluate(tokenizer, "recon", limit=2, store=store, cache_features=False)
    metrics = recon.metrics
    assert all(math.isfinite(metrics[k]) for k in ("psnr", "ssim", "lpips", "fid", "kid"))
    assert metrics["num_tokens"] == 256 and metrics["bits_per_pixel"] == 256 * 10 / 256**2
    assert recon.stored is not None and recon.stored.status == "added"
    pfid = tokbench.evaluate(tokenizer, "om2-pfid0", limit=2, store=store, cache_features=False)
    assert pfid.metrics["fid"] == metrics["fid"]  # exactly: α = 0 perturbs nothing
    assert pfid.record["protocol"]["perturbation"]["alpha"] == 0.0


def test_tokbench_suite_end_to_end(suites: None, tmp_path: Path) -> None:
    result = tokbench.evaluate(_tiny(), "om2-tokbench", limit=1, store=tmp_path / "store")
    metrics = result.metrics
    assert {"t_acc_256_mean", "t_ned_256_mean"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert result.record["model"]["name"].endswith("OpenMagvit2")
