"""A token-count sweep end to end: one record per point, tokens and bytes in each, one report curve."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

import tokbench
from tokbench.errors import ConfigError
from tokbench.report import write_report
from tokbench.report.rate_quality import rate_quality_curves
from tokbench.store import RecordStore

COUNTS = (8, 16, 32, 64, 128)
# The recon protocol without its judges (Inception, LPIPS), so five points run in seconds on a CPU.
LIGHT_SUITE = """\
include: recon
name: token-sweep-test
version: "1"
judges: {}
metrics:
  - name: psnr
  - name: ssim
  - name: bits-per-pixel
  - name: bytes-per-image
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, Path, list]:
    root = tmp_path_factory.mktemp("sweep")
    suite = root / "token-sweep-test.yaml"
    suite.write_text(LIGHT_SUITE, encoding="utf-8")
    store = root / "store"
    results = tokbench.evaluate_sweep(
        "prefix-dct", {"num_tokens": [str(k) for k in COUNTS]}, suite=str(suite), limit=3, store=store
    )
    return suite, store, results


def test_one_record_per_point_with_tokens_and_bytes(swept) -> None:
    _, store, results = swept
    records = RecordStore(store).records(suite="token-sweep-test")
    assert len(results) == len(records) == len(COUNTS)
    by_tokens = {r.record["model"]["arguments"]["num_tokens"]: r.record for r in results}
    assert sorted(by_tokens) == list(COUNTS)
    for count, record in by_tokens.items():
        assert record["metrics"]["num_tokens"] == count
        assert record["metrics"]["bytes_per_image"] == pytest.approx(count * math.log2(16**3) / 8)
        assert record["dataset"]["items_used"] == 3
    psnr = [by_tokens[k]["metrics"]["psnr"] for k in COUNTS]
    assert psnr == sorted(psnr), psnr  # more tokens, better reconstructions


def test_report_draws_one_curve_with_every_point(swept, tmp_path: Path) -> None:
    _, store, _ = swept
    records = RecordStore(store).records(suite="token-sweep-test")
    for axis in ("num_tokens", "bytes_per_image"):
        curves, excluded = rate_quality_curves(records, axis, "psnr")
        assert [(c.name, len(c.points)) for c in curves] == [("prefix-dct", len(COUNTS))]
        assert not excluded
    out = write_report(records, tmp_path / "report.html", suite="token-sweep-test")
    page = out.read_text(encoding="utf-8")
    assert "rate–quality: tokens and bytes per image" in page and "Pareto front" in page


def test_cli_sweep_and_report(swept, tmp_path: Path) -> None:
    suite, _, _ = swept
    store = tmp_path / "store"
    cli = [sys.executable, "-m", "tokbench.cli"]
    sweep = ["--sweep", "num_tokens=4,8,16,32,64", "--limit", "1", "--quiet", "--store", str(store)]
    swept_run = subprocess.run(
        [*cli, "run", "--model", "prefix-dct:levels=8", "--suite", str(suite), *sweep],
        capture_output=True,
        text=True,
    )
    assert swept_run.returncode == 0, swept_run.stderr
    assert len(RecordStore(store).records(suite="token-sweep-test")) == 5
    out = tmp_path / "r.html"
    report = subprocess.run(
        [*cli, "report", "--suite", "token-sweep-test", "--out", str(out), "--store", str(store)],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    assert "Pareto front" in out.read_text(encoding="utf-8")


def test_unsupported_token_count_fails_before_running() -> None:
    with pytest.raises(ConfigError, match=r"num_tokens must be an integer in \[1, 4096\], got 0"):
        tokbench.evaluate_sweep("prefix-dct", {"num_tokens": ["0"]}, limit=1)
