"""The ``tokbench`` command end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def tokbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tokbench.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_run_report_leaderboard(tmp_path: Path) -> None:
    run = tokbench("run", "--model", "jpeg", "--suite", "recon", "--limit", "4", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "psnr" in run.stdout and "bits_per_pixel" in run.stdout and "record added" in run.stdout
    records = list((tmp_path / "leaderboards" / "reproduced" / "recon").glob("*.json"))
    assert len(records) == 1

    again = tokbench("run", "--model", "jpeg", "--limit", "4", "--quiet", cwd=tmp_path)
    assert again.returncode == 0 and "already in the store" in again.stdout

    sweep = tokbench(
        "run", "--model", "webp", "--sweep", "quality=20,80", "--limit", "4", "--quiet", cwd=tmp_path
    )
    assert sweep.returncode == 0, sweep.stderr

    report = tokbench("report", "--suite", "recon", "--out", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Plotly.newPlot" in html and "webp:method=4,quality=20" in html

    board = tokbench("leaderboard", "--suite", "recon", "--format", "csv", cwd=tmp_path)
    assert board.returncode == 0
    assert len(board.stdout.strip().splitlines()) == 1 + 3


PLUGIN = textwrap.dedent(
    """
    import torch
    from tokbench import Encoded, Tokenizer

    class Posterize(Tokenizer):
        def __init__(self, levels: int = 8):
            self.levels = levels

        def encode(self, images):
            codes = (images * (self.levels - 1)).round().to(torch.uint8)
            bits = torch.full((images.shape[0],), float(codes[0].numel()))
            return Encoded(payload=codes, bits=bits)

        def decode(self, encoded):
            return encoded.payload.float() / (self.levels - 1)
    """
)


def test_plugin_model_on_a_folder_with_output_json(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "some" / "dir"
    plugin_dir.mkdir(parents=True)
    (plugin_dir / "my_tok.py").write_text(PLUGIN)
    data = tmp_path / "data" / "nested"
    data.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)).save(data / f"{index}.jpg")
    result = tokbench(
        "run",
        "--model",
        "some/dir/my_tok.py:Posterize:levels=4",
        "--suite",
        "recon",
        "--data",
        f"folder:{tmp_path / 'data'}",
        "--output-json",
        "out.json",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["model"]["arguments"] == {"levels": 4}
    assert record["dataset"]["items_used"] == 3
    assert record["metrics"]["bits_per_pixel"] == 3.0


def test_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    result = tokbench("run", "--model", "jpg", "--no-store", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'jpg'" in lines[0] and "jpeg" in lines[0]

    missing = tokbench("run", "--model", "jpeg", "--data", "folder:nowhere", "--no-store", cwd=tmp_path)
    assert missing.returncode == 1 and "nowhere" in missing.stderr

    report = tokbench("report", "--suite", "recon", "--out", "r.html", cwd=tmp_path)
    assert report.returncode == 1 and "no records" in report.stderr


def test_failed_run_stores_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (64, 64)).save(data / "ok.png")
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = tokbench(
        "run", "--model", "jpeg", "--data", f"folder:{data}", "--on-error", "fail", "--quiet", cwd=tmp_path
    )
    assert result.returncode == 1 and "broken.png" in result.stderr
    assert not list(tmp_path.rglob("leaderboards/**/*.json"))


def test_list_models_imports_no_model_module(tmp_path: Path) -> None:
    code = (
        "import sys; from tokbench.cli import main; main(['list', 'models']); "
        "loaded = {'tokbench.models.codecs', 'tokbench.models.titok', 'diffusers'} & set(sys.modules); "
        "print('LOADED' if loaded else 'LAZY')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    *names, lazy = result.stdout.split()
    assert lazy == "LAZY" and names == sorted(names)
    builtins = {"identity", "jpeg", "resize", "sd-vae", "titok", "webp", "prefix-dct", "diffusers-vq"}
    assert builtins <= set(names)


def test_list_and_doctor(tmp_path: Path) -> None:
    assert "recon" in tokbench("list", "suites", cwd=tmp_path).stdout
    assert "imagenet-center-crop" in tokbench("list", "preprocess", cwd=tmp_path).stdout
    doctor = tokbench("doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "[ok] embedded dataset: 24 images" in doctor.stdout


def test_ingest_stores_published_tables_in_the_default_store(tmp_path: Path) -> None:
    published = tmp_path / "published"
    published.mkdir()
    (published / "tokenizers_imagenet256.csv").write_text(
        "model,hub_id,tokens,codebook_size,rfid,gfid,generator,source\n"
        "Tok-A,org/tok-a,32,4096,2.5,,,acme/tok README.md\n",
        encoding="utf-8",
    )
    ingest = tokbench("ingest", "published", "--created-at", "2026-02-01T00:00:00Z", cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    assert "1 reported records in" in ingest.stdout and "1 added" in ingest.stdout
    (path,) = (tmp_path / "leaderboards" / "reported" / "recon").glob("*.json")  # where `tokbench run` stores
    record = json.loads(path.read_text())
    assert record["metric_info"]["rfid"]["higher_is_better"] is False
    missing = tokbench("ingest", "nowhere", cwd=tmp_path)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


COMMITTED_STORE = Path(__file__).resolve().parent.parent / "leaderboards"


def test_leaderboard_is_compact_by_default_and_complete_with_all_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tokbench.cli import main

    assert main(["leaderboard", "--suite", "recon", "--store", str(COMMITTED_STORE)]) == 0
    compact = capsys.readouterr().out
    assert max(len(line) for line in compact.splitlines()) <= 120
    assert "rank  model" in compact and "PSNR dB ↑" in compact and "bpp" in compact
    assert main(["leaderboard", "--suite", "recon", "--store", str(COMMITTED_STORE), "--all-columns"]) == 0
    full = capsys.readouterr().out
    assert "record_id" in full and "kid" in full and "protocol_hash" in full
