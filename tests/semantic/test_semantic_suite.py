"""The semantic suite end to end: the CLI on the embedded data with a random-initialised CLIP, the
offline error, zero-shot on labelled folders, and judge-option overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import tokbench
from tokbench.cli import main, parse_judge_options
from tokbench.errors import ConfigError
from tokbench.suites import load_suite, with_judge_options


def test_cli_semantic_run_on_embedded_data(tmp_path: Path) -> None:
    """Acceptance: `tokbench run --model jpeg:quality=10 --suite semantic` with a random CLIP
    (ViT-B-32, the suite's architecture) writes a record with embedding cosine and FD-CLIP."""
    out = tmp_path / "record.json"
    status = main(
        ["run", "--model", "jpeg:quality=10", "--suite", "semantic", "--judge-option", "clip.weights=random",
         "--limit", "2", "--store", str(tmp_path / "store"), "--quiet", "--output-json", str(out)]
    )  # fmt: skip
    assert status == 0
    record = json.loads(out.read_text())
    metrics = record["metrics"]
    assert (
        -1.0 <= metrics["clip_cosine"] <= 1.0 and metrics["fd_clip"] >= 0.0 and metrics["fd_clip_count"] == 2
    )
    assert "class labels" in record["not_applicable"]["zs_top1"]
    judge = record["protocol"]["judges"]["clip"]
    assert judge["model"] == "ViT-B-32" and judge["pretrained"] == "laion2b_s34b_b79k"
    assert judge["weights"] == "random" and judge["weights_sha256"] is None
    assert record["suite"]["config"]["judges"]["clip"]["options"]["weights"] == "random"


def test_cli_offline_error_names_model_tag_and_remedies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKBENCH_OFFLINE", "1")
    monkeypatch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr("tokbench.judges.clip._cached_checkpoint", lambda source: None)
    status = main(["run", "--model", "jpeg:quality=10", "--suite", "semantic", "--no-store", "--quiet"])
    error = capsys.readouterr().err
    assert status == 1
    for part in ("ViT-B-32", "laion2b_s34b_b79k", "weights=PATH", "TOKBENCH_WEIGHTS_DIR", "weights=random"):
        assert part in error


def _class_folder(root: Path) -> Path:
    for name, colour in (("red_thing", (220, 20, 20)), ("blue_thing", (20, 20, 220))):
        for index in range(2):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (48, 40), tuple(c + 10 * index for c in colour)).save(
                root / name / f"{index}.png"
            )
    return root


def test_zero_shot_on_a_labelled_folder(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "semantic-photo.yaml").write_text(
        "include: semantic\nname: semantic-photo\nversion: t1\n"
        "metrics:\n  - {name: clip-cosine, judge: clip}\n"
        "  - {name: zero-shot, judge: clip, options: {templates: photo}}\n"
    )
    monkeypatch.setenv("TOKBENCH_SUITE_PATH", str(suites))
    result = tokbench.evaluate(
        "identity",
        suite="semantic-photo",
        data=f"classfolder:{_class_folder(tmp_path / 'data')}",
        judge_options={"clip": {"model": tiny_model, "pretrained": None, "weights": "random"}},
    )
    metrics = result.metrics
    assert metrics["zs_top1"] == metrics["zs_top1_reference"] and metrics["zs_top1_drop"] == 0.0
    assert metrics["zs_top5"] == 100.0  # two classes
    assert metrics["clip_cosine"] == pytest.approx(1.0)
    assert result.record["not_applicable"] == {}
    assert result.record["protocol"]["dataset"]["name"].startswith("classfolder:")


def test_judge_options_are_parsed_and_checked() -> None:
    assert parse_judge_options(["clip.weights=random", "clip.pretrained=null", "inception.fast=true"]) == {
        "clip": {"weights": "random", "pretrained": None},
        "inception": {"fast": True},
    }
    with pytest.raises(ConfigError, match=r"ALIAS\.KEY=VALUE"):
        parse_judge_options(["weights=random"])
    suite = load_suite("semantic")
    assert with_judge_options(suite, {"clip": {"weights": "random"}}).judges["clip"].options == {
        "model": "ViT-B-32",
        "pretrained": "laion2b_s34b_b79k",
        "weights": "random",
    }
    with pytest.raises(ConfigError, match=r"has no judge 'clp'; its judges are clip"):
        with_judge_options(suite, {"clp": {"weights": "random"}})


BESIDE_FID = """include: {parent}
name: {parent}-clip
version: t1
preprocess: {{name: imagenet-center-crop, resolution: 32}}
judges:
  inception: {{name: inception-v3-tf, options: {{resize: clean}}}}
  clip: {{name: clip, options: {{model: {clip}, pretrained: null, weights: random}}}}
metrics:
  - {{name: fid, judge: inception}}
  - {{name: fd-clip, judge: clip}}
{extra}"""


@pytest.mark.parametrize("parent", ["recon", "pfid"])
def test_fd_clip_beside_fid_in_recon_and_pfid(
    parent: str, tmp_path: Path, tiny_model: str, tiny_titok, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's recipe: a suite that includes recon (or pfid) and adds a CLIP judge reports
    FD-CLIP beside Inception-FID in one run (pfid keeps its perturbation)."""
    extra = (
        "settings: {perturbation: {alpha: 0.5, beta: 1.0, delta: 8, seed: 0}}\n" if parent == "pfid" else ""
    )
    (tmp_path / f"{parent}-clip.yaml").write_text(
        BESIDE_FID.format(parent=parent, clip=tiny_model, extra=extra)
    )
    monkeypatch.setenv("TOKBENCH_SUITE_PATH", str(tmp_path))
    result = tokbench.evaluate(tiny_titok(), f"{parent}-clip", limit=3, cache_features=False)
    assert result.metrics["fid_count"] == result.metrics["fd_clip_count"] == 3
    assert result.metrics["fid"] > 0 and result.metrics["fd_clip"] > 0
    assert set(result.record["protocol"]["judges"]) == {"inception", "clip"}
    perturbation = result.record["protocol"].get("perturbation")
    assert (perturbation is not None) == (parent == "pfid")
