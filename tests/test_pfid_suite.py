"""pFID end to end through ``evaluate``: α = 0 equals rFID exactly; results do not depend on batching."""

from __future__ import annotations

from pathlib import Path

import pytest

import tokbench
from tokbench.suites import SUITE_PATH_ENV, load_suite

SUITE = """
name: {name}
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {{name: imagenet-center-crop, resolution: 32}}
judges:
  inception: {{name: inception-v3-tf, options: {{resize: clean}}}}
metrics:
  - {{name: fid, judge: inception}}
{perturbation}
"""


@pytest.fixture
def suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tinyrecon.yaml").write_text(SUITE.format(name="tinyrecon", perturbation=""))
    for name, alpha in (("tinypfid0", 0.0), ("tinypfid", 0.5)):
        perturbation = f"settings: {{perturbation: {{alpha: {alpha}, beta: 1.0, delta: 8, seed: 3}}}}"
        (tmp_path / f"{name}.yaml").write_text(SUITE.format(name=name, perturbation=perturbation))
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))


def test_alpha_zero_is_rfid_and_batching_does_not_matter(suites: None, tiny_titok) -> None:
    model = tiny_titok()
    options = {"limit": 6, "cache_features": False}
    rfid = tokbench.evaluate(model, "tinyrecon", batch_size=4, **options).metrics["fid"]
    assert tokbench.evaluate(model, "tinypfid0", batch_size=4, **options).metrics["fid"] == rfid  # exactly

    perturbed = [tokbench.evaluate(model, "tinypfid", batch_size=b, **options) for b in (1, 4)]
    assert perturbed[0].metrics["fid"] == pytest.approx(perturbed[1].metrics["fid"], rel=1e-12)
    assert perturbed[0].metrics["fid"] != pytest.approx(rfid, rel=1e-6)
    record = perturbed[0].record
    assert record["suite"]["config"]["settings"]["perturbation"] == {
        "alpha": 0.5,
        "beta": 1.0,
        "delta": 8,
        "seed": 3,
    }
    assert record["protocol"]["perturbation"]["scheme"] == "tokbench-pfid/1"


def test_pfid_scores_like_recon() -> None:
    """pfid at alpha = 0 is recon's rFID: same data, preprocessing and Inception judge (TF1 resize)."""
    pfid, recon = load_suite("pfid"), load_suite("recon")
    assert (pfid.dataset, pfid.preprocess) == (recon.dataset, recon.preprocess)
    assert pfid.judges["inception"] == recon.judges["inception"]
    assert pfid.judges["inception"].options == {"resize": "tf1-bilinear"}
