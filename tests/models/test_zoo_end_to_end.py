"""Every zoo adapter that no family test runs end to end: the real recon suite and TokBench at 256 px
on the embedded set with random weights of its (reduced) real architecture, and for the discrete
ones pFID at alpha 0 equal to rFID. Families with their own end-to-end tests (titok, llamagen-vq,
var-vqvae, open-magvit2, janus-vq, hunyuan-image-vae, diffusers-autoencoder) are not repeated."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_model_contract import CASES
from zoo_reference import pfid_suite, tokbench_256_suite

import tokbench
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.suites import SUITE_PATH_ENV

ZOO = ("dc-ae", "flux2-vae", "qwen-image-vae", "rae", "chameleon-vq", "emu3-vq")
SUITES = {
    "zoo-tokbench-256": tokbench_256_suite("zoo-tokbench-256"),
    "zoo-pfid-alpha0": pfid_suite("zoo-pfid-alpha0", alpha=0.0, delta=4, seed=0),
}


def _build(name: str):
    """The contract case's tiny model; RAE's only accepts its encoder size, so it is built at 256 px
    (the released size) with 16-pixel patches instead of the contract's 16 px."""
    if name != "rae":
        return CASES[name].build()
    import diffusers
    import torch
    from diffusers_autoencoder_tiny import TINY

    from tokbench.adapters.registry import MODELS

    config = {**TINY["AutoencoderRAE"], "encoder_input_size": 256, "patch_size": 16, "encoder_patch_size": 16}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MODELS.get("rae").from_model(diffusers.AutoencoderRAE(**config).eval())


@pytest.fixture(autouse=True)
def _suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in SUITES.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))


@pytest.mark.slow  # three or four suite runs per model (Inception, LPIPS, OCR, face): still run in CI
@pytest.mark.parametrize("name", ZOO)
def test_zoo_adapter_runs_recon_tokbench_and_pfid(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    for module in case.requires:
        pytest.importorskip(module)
    model = _build(name)
    store = tmp_path / "store"
    recon = tokbench.evaluate(model, "recon", limit=2, batch_size=2, cache_features=False, store=store)
    assert recon.record["dataset"]["items_used"] == 2 and recon.stored.status == "added"
    assert all(math.isfinite(recon.metrics[k]) for k in ("psnr", "ssim", "lpips", "fid"))
    text = tokbench.evaluate(model, "zoo-tokbench-256", limit=1, batch_size=1, store=store)
    assert text.record["dataset"]["items_used"] == 1
    assert {"t_acc_256_mean", "t_ned_256_mean"} <= set(text.metrics)
    if isinstance(model, DiscreteTokenizer) and model.is_discrete:
        pfid = tokbench.evaluate(model, "zoo-pfid-alpha0", limit=2, batch_size=2, cache_features=False)
        assert pfid.metrics["fid"] == recon.metrics["fid"]
