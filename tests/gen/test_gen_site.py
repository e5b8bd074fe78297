"""Reproduced gen records on the site: on the gen page, and paired with their tokenizer's rFID."""

from __future__ import annotations

import copy
from pathlib import Path

import tokbench
from tokbench.report.site import build_site, correlation_points


def test_a_reproduced_gen_record_is_on_the_site_and_pairs_with_its_tokenizer(
    gen_env: Path, projection_judge, reference_writer, tiny_dit
) -> None:
    reference_writer(gen_env / "ref.npz", images=5)
    store = gen_env / "store"
    options = {"reference": gen_env / "ref.npz", "work_dir": gen_env / "w", "batch_size": 8}
    result = tokbench.evaluate(tiny_dit(), "tinyproj", store=store, **options)
    gen_record = copy.deepcopy(result.record)
    gen_record["generation"]["tokenizer"] = "sd-vae:variant=sd-ft-ema"  # as DiT's hub variants say

    recon = copy.deepcopy(result.record)  # a stand-in reproduced recon record of that VAE
    recon["suite"] = {"name": "recon", "version": "2", "config": {}}
    recon["model"] = {
        "name": "sd-vae",
        "spec": "sd-vae:random_init=False,sample=False,variant=sd-ft-ema@0123456789ab",
        "kind": "tokenizer",
        "arguments": {"random_init": False, "sample": False, "variant": "sd-ft-ema"},
    }
    recon["metrics"] = {"fid": 1.5}
    (point,) = correlation_points([recon], [gen_record], "rfid")
    assert (point.x, point.y) == (1.5, result.metrics["gfid"])
    recon["model"]["arguments"]["variant"] = "sd-ft-mse"
    assert correlation_points([recon], [gen_record], "rfid") == []

    summary = build_site(store, gen_env / "site")
    page = (summary.out / "tinyproj.html").read_text()  # the suite's page (gen.html for suite gen)
    assert f"records/{result.record['record_id']}.html" in page
    assert "gfid ↓" in page  # ranked by gfid, lower is better
