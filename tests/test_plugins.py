"""Extending tokbench from an installed package, without touching it: a metric through the
``tokbench.metrics`` entry-point group and a suite through ``tokbench.suites``, run in recon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The plugin's metric module: a metric is a class with declared states, ``update`` and ``compute``.
METRIC_MODULE = '''
"""A plugin metric: mean absolute error of the red channel, in uint8 levels."""

from typing import ClassVar

import torch

from tokbench.metrics.base import MeanMetric


class RedChannelError(MeanMetric):
    """Mean absolute error of the red channel."""

    key = "red_error"
    label = "Red error"
    unit = "levels"
    higher_is_better = False
    inputs: ClassVar[tuple[str, ...]] = ("originals", "reconstructions")

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        difference = originals[:, 0].double() - reconstructions[:, 0].double()
        return difference.abs().mean(dim=(1, 2))
'''

#: One line more than a built-in suite would need: the plugin metric's entry.
SUITE = """
name: recon-red
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {name: imagenet-center-crop, resolution: 64}
metrics:
  - name: psnr
  - name: red-error
primary: red_error
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """An installed-package stand-in on sys.path: the module, its suites folder and its dist-info."""
    site = tmp_path / "site"
    package = site / "tokbench_red"
    (package / "suites").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "metric.py").write_text(METRIC_MODULE)
    (package / "suites" / "__init__.py").write_text("")
    (package / "suites" / "recon-red.yaml").write_text(SUITE)
    info = site / "tokbench_red-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tokbench-red\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tokbench.metrics]\nred-error = tokbench_red.metric:RedChannelError\n\n"
        "[tokbench.suites]\nred = tokbench_red.suites\n"
    )
    return site


def _tokbench(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "tokbench.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_metric_from_an_installed_package_runs_in_recon(plugin: Path, tmp_path: Path) -> None:
    listed = _tokbench(plugin, tmp_path, "list", "metrics")
    assert "red-error" in listed.stdout.split(), listed.stderr
    suites = _tokbench(plugin, tmp_path, "list", "suites")
    assert any(line.split()[:2] == ["recon-red", "v1"] for line in suites.stdout.splitlines()), suites.stderr

    out = tmp_path / "record.json"
    run = _tokbench(
        plugin, tmp_path, "run", "--model", "jpeg:quality=10", "--suite", "recon-red", "--limit", "3",
        "--no-store", "--quiet", "--output-json", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = json.loads(out.read_text())
    assert record["metrics"]["red_error"] > 0.0 and "red_error_ci95" in record["metrics"]
    assert record["metric_info"]["red_error"] == {
        "metric": "red-error",
        "label": "Red error",
        "unit": "levels",
        "higher_is_better": False,
    }
    assert record["suite"]["primary"] == "red_error"
    assert record["protocol"]["metric_versions"] == {"psnr": "1", "red-error": "1"}
