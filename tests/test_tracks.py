"""The track contract: a track defined outside the package is planned, measured, stored and listed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tokbench
from tokbench import doctor
from tokbench.adapters.registry import build_model
from tokbench.cli import main
from tokbench.errors import ConfigError, EmptyRunError, RegistryError
from tokbench.recording import build_record
from tokbench.suites import SUITE_PATH_ENV, load_suite
from tokbench.tracks import TRACKS
from tokbench.tracks.base import (
    Measurement,
    Plan,
    RunContext,
    RunOptions,
    RunOutcome,
    Shard,
    Track,
    TrackRequest,
)
from tokbench.tracks.scoring import resolve_device

ECHO_SUITE = """
name: echo
version: "1"
kind: generator
track: echo-test
settings: {samples: 10}
metrics:
  - name: fid
"""


class EchoTrack(Track):
    """A track that counts the items of its share; the suite's ``samples`` setting is the item count."""

    name = "echo-test"
    kinds = ("generator",)

    def plan(self, request: TrackRequest) -> Plan:
        samples = int(request.suite.settings["samples"])
        return Plan(
            model=build_model(request.model),
            protocol={"suite": request.suite.to_dict()},
            device=resolve_device(request.options.device),
            items_requested=samples,
            state=list(range(samples)),
        )

    def measure(self, plan: Plan, run: RunContext) -> int:
        share = run.share(plan.state)
        for index, value in share:
            if value % 5 == 4:  # every fifth item is unusable
                run.skip(index, f"item{value}", ConfigError(f"item{value} is unusable"))
            else:
                run.shard.items_used += 1
        return sum(value for _, value in share)

    def merge(self, plan: Plan, shards: list[Shard]) -> Measurement:
        total = sum(shard.payload for shard in shards)
        return Measurement(
            metrics={"samples": float(len(plan.state)), "total": float(total)}, extra={"echo": True}
        )


@pytest.fixture
def echo_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "echo.yaml").write_text(ECHO_SUITE)
    monkeypatch.setenv(SUITE_PATH_ENV, str(suites))
    TRACKS.register("echo-test", EchoTrack)
    yield suites
    TRACKS.unregister("echo-test")


def test_a_track_from_a_test_module_is_planned_measured_stored_and_listed(
    echo_suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tokbench.evaluate("identity", suite="echo", seed=3, store=tmp_path / "store")
    assert result.metrics == {"samples": 10.0, "total": 45.0}
    record = result.record
    assert record["echo"] is True and record["run"]["seed"] == 3
    assert record["dataset"]["items_used"] == 8 and record["dataset"]["items_skipped"] == 2
    assert [s["item"] for s in record["skipped"]] == ["item4", "item9"]
    assert record["timings"]["processes"] == 1
    assert result.stored is not None and result.stored.status == "added"
    again = tokbench.evaluate("identity", suite="echo", store=tmp_path / "store")
    assert again.stored is not None and again.stored.status == "exists"

    assert main(["list", "suites"]) == 0
    assert any(
        line.split()[:4] == ["echo", "v1", "generator", "track"]
        for line in capsys.readouterr().out.splitlines()
    )
    tracks = {check.name: check for check in doctor.run_checks(store_root=tmp_path / "store")}["tracks"]
    assert "echo-test" in tracks.detail


def test_a_run_that_uses_no_item_is_an_error(echo_suite: Path) -> None:
    (echo_suite / "empty.yaml").write_text(
        ECHO_SUITE.replace("samples: 10", "samples: 0").replace("echo\n", "empty\n")
    )
    with pytest.raises(EmptyRunError, match="no item of 0 could be evaluated"):
        tokbench.evaluate("identity", suite="empty")


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


def test_the_suite_kind_must_be_one_the_track_evaluates(echo_suite: Path) -> None:
    (echo_suite / "pruner.yaml").write_text(
        ECHO_SUITE.replace("kind: generator", "kind: pruner").replace("echo\n", "pruner\n")
    )
    with pytest.raises(ConfigError, match="track 'echo-test' evaluates generator"):
        tokbench.evaluate("identity", suite="pruner")


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
    outcome = RunOutcome({"x": 1.0}, 1, 1, [], {}, {}, extra={"metrics": {}})
    with pytest.raises(ValueError, match="metrics"):
        build_record("id", suite, "h", {}, built, outcome, RunOptions())


def test_every_registered_track_is_a_track_with_kinds() -> None:
    for name in TRACKS.names():
        cls: Any = TRACKS.get(name)
        assert issubclass(cls, Track) and cls.name == name and cls.kinds, name
