"""The tokbench track end to end: orderings that must hold, details next to the record, honest counts."""

from __future__ import annotations

from pathlib import Path

import pytest

import tokbench
from tokbench.data.registry import DATASETS
from tokbench.errors import ConfigError
from tokbench.recording import RunResult
from tokbench.suites import SUITE_PATH_ENV
from tokbench.textface.details import aggregate_details, details_path, read_details
from tokbench.textface.embedded import EmbeddedTokbenchDataset, read_manifest
from tokbench.textface.settings import settings_from

SUITE = """
include: tokbench
name: {name}
version: "test"
dataset: {dataset}
settings:
  bucket_edges: "855802d"
  save: {save}
  ocr_batches: per-instance
  resolutions:
{resolutions}
"""
RESOLUTIONS = {
    256: "    - {resolution: 256, text: [0.02, 0.03, 0.04, 1.0], face: [0.1, 0.2, 0.3, 1.0]}",
    1024: "    - {resolution: 1024, text: [0.005, 0.01, 0.02, 1.0], face: [0.02, 0.05, 0.1, 1.0]}",
}
SUBSET = ("text-retina", "text-page", "faces-0", "faces-1")


class _EmbeddedSubset(EmbeddedTokbenchDataset):
    """Four images of the embedded set with text and faces in every bucket at 256 and 1024."""

    name = "tokbench-embedded-subset"

    def __init__(self) -> None:
        manifest = read_manifest()
        manifest["images"] = [image for image in manifest["images"] if image["id"] in SUBSET]
        super().__init__(manifest)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, official_root: Path) -> dict[str, RunResult]:
    """identity and jpeg:quality=10 on the subset at 256 and 1024; identity on the bad official fixture."""
    suites = tmp_path_factory.mktemp("suites")
    both = "\n".join(RESOLUTIONS.values())
    (suites / "tb-subset.yaml").write_text(
        SUITE.format(
            name="tb-subset", dataset="tokbench-embedded-subset", save="as-original", resolutions=both
        )
    )
    (suites / "tb-official.yaml").write_text(
        SUITE.format(
            name="tb-official",
            dataset=f"tokbench:{official_root}",
            save="as-original",
            resolutions=RESOLUTIONS[256],
        )
    )
    DATASETS.register("tokbench-embedded-subset", _EmbeddedSubset)
    store = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SUITE_PATH_ENV, str(suites))
        results = {
            model: tokbench.evaluate(model, suite="tb-subset", store=store, batch_size=2)
            for model in ("identity", "jpeg:quality=10")
        }
        results["official"] = tokbench.evaluate("identity", suite="tb-official", store=store)
        results["again"] = tokbench.evaluate("identity", suite="tb-subset", store=store)
    return results


def test_identity_is_better_at_1024_than_at_256(runs: dict[str, RunResult]) -> None:
    metrics = runs["identity"].metrics
    for metric in ("t_acc", "t_ned", "f_sim"):
        for resolution in (256, 1024):
            assert {f"{metric}_{resolution}_{b}" for b in ("small", "medium", "large")} <= set(metrics)
    assert metrics["t_acc_1024_mean"] > metrics["t_acc_256_mean"]
    assert metrics["f_sim_1024_mean"] > metrics["f_sim_256_mean"]
    assert metrics["f_sim_1024_mean"] >= 0.97


def test_strong_compression_scores_below_identity(runs: dict[str, RunResult]) -> None:
    identity, jpeg = runs["identity"].metrics, runs["jpeg:quality=10"].metrics
    for resolution in (256, 1024):
        assert jpeg[f"t_ned_{resolution}_mean"] < identity[f"t_ned_{resolution}_mean"]
        assert jpeg[f"f_sim_{resolution}_mean"] < identity[f"f_sim_{resolution}_mean"]


def test_details_sit_next_to_the_record_and_reaggregate(runs: dict[str, RunResult]) -> None:
    result = runs["identity"]
    assert result.stored is not None and result.stored.status == "added"
    path = details_path(result.stored.path)
    assert path.is_file() and result.record["tokbench"]["details"]["file"] == path.name
    rows = read_details(path)
    assert len(rows) == result.record["tokbench"]["details"]["rows"]
    edges = {
        r.side: {"text": list(r.text), "face": list(r.face)}
        for r in settings_from(result.record["suite"]["config"]["settings"], "t").resolutions
    }
    again = aggregate_details(rows, edges)
    assert again.keys() == result.metrics.keys() - {"encode_seconds_per_image"}
    for key, value in again.items():
        assert value == pytest.approx(result.metrics[key], abs=1e-9)
    assert runs["again"].stored is not None and runs["again"].stored.status == "exists"


def test_bad_instances_are_counted_never_dropped(runs: dict[str, RunResult]) -> None:
    record = runs["official"].record
    counts = record["tokbench"]["not_scored"]
    assert counts == {"text_annotation": 2, "text_image": 1, "text_vocabulary": 1}
    assert record["tokbench"]["instances"] == {"text": 6, "face": 1}
    reasons = " | ".join(entry["reason"] for entry in record["skipped"])
    assert "empty ground-truth string" in reasons and "outside the 400x200 image" in reasons
    assert "missing.png is missing" in reasons and "'é' outside the easyocr-en-g2 vocabulary" in reasons
    scored = record["tokbench"]["scored_per_bucket"]["256"]
    assert sum(scored["text"].values()) == 2 and sum(scored["face"].values()) == 1
    assert record["dataset"]["items_requested"] == 3 and record["dataset"]["items_used"] == 2
    assert record["protocol"]["judges"]["ocr"]["name"] == "easyocr-en-g2"


def test_settings_are_validated() -> None:
    base = {"bucket_edges": "855802d", "save": "as-original", "ocr_batches": "official"}
    entry = {"resolution": 256, "text": [0.02, 0.03, 0.04, 1.0], "face": [0.1, 0.2, 0.3, 1.0]}
    assert settings_from({**base, "resolutions": [entry]}, "s").ocr_batches == "official"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['extra'\]"):
        settings_from({**base, "resolutions": [entry], "extra": 1}, "s")
    with pytest.raises(ConfigError, match=r"missing \['save'\]"):
        settings_from({"bucket_edges": "855802d", "ocr_batches": "official", "resolutions": [entry]}, "s")
    with pytest.raises(ConfigError, match="strictly increasing"):
        settings_from({**base, "resolutions": [{**entry, "text": [0.1, 0.1, 0.2, 1]}]}, "s")
    with pytest.raises(ConfigError, match=r"settings\.save must be one of"):
        settings_from({**base, "save": "png", "resolutions": [entry]}, "s")
    with pytest.raises(ConfigError, match="ocr_batches must be one of"):
        settings_from({**base, "ocr_batches": "64", "resolutions": [entry]}, "s")
    # the first release's face edges at 256 start at 0: a suite naming the later release must use its own
    first_release = {**entry, "face": [0.0, 0.1, 0.2, 1.0]}
    with pytest.raises(ConfigError, match=r"face edges at 256 are \[0.0, 0.1, 0.2, 1.0\], TokBench 855802d"):
        settings_from({**base, "resolutions": [first_release]}, "s")
    assert settings_from({**base, "bucket_edges": "a77070c", "resolutions": [first_release]}, "s")
    with pytest.raises(ConfigError, match="none at this resolution"):
        settings_from({**base, "resolutions": [{**entry, "resolution": 480}]}, "s")
    assert settings_from(
        {**base, "bucket_edges": "custom", "resolutions": [{**entry, "resolution": 480}]}, "s"
    )


def test_site_shows_reproduced_beside_reported(runs: dict[str, RunResult], tmp_path: Path) -> None:
    import copy
    import json
    import re

    from tokbench.records import make_record_id
    from tokbench.report.site import build_site
    from tokbench.reported import TABLES, ingest_published
    from tokbench.store import RecordStore

    published = tmp_path / "published"
    published.mkdir()
    (published / "README.md").write_text("TokBench numbers as published.\n")
    columns = TABLES["tokbench_image_256.csv"].columns
    values = ["Resize", "baseline", *["90"] * (len(columns) - 3), "TokBench project page leaderboard"]
    (published / "tokbench_image_256.csv").write_text(",".join(columns) + "\n" + ",".join(values) + "\n")
    store = tmp_path / "store"
    ingest_published(published, store)
    record = copy.deepcopy(runs["identity"].record)
    record["suite"]["name"] = "tokbench"
    record["record_id"] = make_record_id("tokbench", record["protocol_hash"], record["model"]["spec"])
    RecordStore(store).add(record)
    text = (build_site(store, tmp_path / "site").out / "tokbench.html").read_text(encoding="utf-8")
    assert "256px: reproduced beside reported" in text and "bucket bars" in text
    figures = [
        json.loads(b) for b in re.findall(r'class="plotly-figure"[^>]*>(.*?)</script>', text, re.DOTALL)
    ]
    labels = {x for f in figures for t in f["data"] if t["type"] == "bar" for x in t["x"]}
    assert {"identity · reproduced", "Resize · reported"} <= labels
