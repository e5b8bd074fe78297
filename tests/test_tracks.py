"""Track dispatch: a suite's ``track:`` selects the function that runs it; settings enter the hash."""

from __future__ import annotations

from pathlib import Path

import pytest

import tokbench
from tokbench.adapters.registry import build_model
from tokbench.errors import ConfigError, RegistryError
from tokbench.provenance import protocol_hash
from tokbench.recording import RunResult, build_record, claim_record, store_result
from tokbench.records import make_record_id
from tokbench.runner import RunOptions, RunOutcome
from tokbench.suites import SUITE_PATH_ENV, load_suite
from tokbench.tracks import TRACKS, TrackRequest

ECHO_SUITE = """
name: echo
version: "1"
kind: generator
track: echo-test
settings: {samples: 10}
metrics:
  - name: fid
"""


def _echo_track(request: TrackRequest) -> RunResult:
    """A track that records what it was asked: the settings become a metric."""
    built = build_model(request.model)
    protocol = {"suite": request.suite.to_dict()}
    slot = claim_record(request.suite.name, protocol, built.spec, request.store, request.force)
    if slot.existing is not None:
        return slot.existing
    assert slot.digest == protocol_hash(protocol)
    assert slot.record_id == make_record_id(request.suite.name, slot.digest, built.spec)
    outcome = RunOutcome(
        metrics={"samples": float(request.suite.settings["samples"])},
        items_requested=10,
        items_used=10,
        skipped=[],
        not_applicable={},
        timings={"total_seconds": 0.0},
    )
    record = build_record(
        slot.record_id,
        request.suite,
        slot.digest,
        protocol,
        built,
        outcome,
        request.options,
        extra={"echo": True},
    )
    return store_result(slot.store, record, request.force)


@pytest.fixture
def echo_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "echo.yaml").write_text(ECHO_SUITE)
    monkeypatch.setenv(SUITE_PATH_ENV, str(suites))
    TRACKS.register("echo-test", _echo_track)
    return suites


def test_a_suite_runs_through_its_track(echo_suite: Path, tmp_path: Path) -> None:
    result = tokbench.evaluate("identity", suite="echo", seed=3, store=tmp_path / "store")
    assert result.metrics == {"samples": 10.0}
    assert result.record["echo"] is True
    assert result.record["run"]["seed"] == 3
    assert result.record["dataset"]["name"] == "(none)"
    assert result.stored is not None and result.stored.status == "added"
    again = tokbench.evaluate("identity", suite="echo", store=tmp_path / "store")
    assert again.stored is not None and again.stored.status == "exists"


def test_track_and_settings_enter_the_config_only_when_set(echo_suite: Path) -> None:
    config = load_suite("echo").to_dict()
    assert config["track"] == "echo-test" and config["settings"] == {"samples": 10}
    assert config["dataset"] is None and config["preprocess"] is None
    recon = load_suite("recon").to_dict()
    assert "track" not in recon and "settings" not in recon


def test_unknown_track_is_named(echo_suite: Path) -> None:
    (echo_suite / "typo.yaml").write_text(
        ECHO_SUITE.replace("echo-test", "echo-tset").replace("echo\n", "typo\n")
    )
    with pytest.raises(RegistryError, match="echo-tset"):
        tokbench.evaluate("identity", suite="typo")


def test_recon_track_still_needs_dataset_and_preprocess(echo_suite: Path) -> None:
    text = ECHO_SUITE.replace("track: echo-test\n", "").replace("kind: generator", "kind: tokenizer")
    (echo_suite / "norecon.yaml").write_text(text.replace("echo\n", "norecon\n"))
    with pytest.raises(ConfigError, match=r"missing key.*dataset.*preprocess"):
        load_suite("norecon")


def test_settings_must_be_a_mapping(echo_suite: Path) -> None:
    (echo_suite / "bad.yaml").write_text(
        ECHO_SUITE.replace("{samples: 10}", "[1, 2]").replace("echo\n", "bad\n")
    )
    with pytest.raises(ConfigError, match="settings must be a mapping"):
        load_suite("bad")


def test_extra_record_keys_cannot_overwrite_standard_fields(echo_suite: Path) -> None:
    suite = load_suite("echo")
    built = build_model("identity")
    outcome = RunOutcome({"x": 1.0}, 1, 1, [], {}, {})
    with pytest.raises(ValueError, match="metrics"):
        build_record("id", suite, "h", {}, built, outcome, RunOptions(), extra={"metrics": {}})
