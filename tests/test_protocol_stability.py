"""Records in the committed store stay comparable: today's recon protocol hashes to theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import tokbench
from tokbench.store import RecordStore
from tokbench.suites import load_suite

STORE = Path(__file__).parent.parent / "leaderboards"


def _committed(suite: str, version: str, spec: str) -> dict:
    """The one committed reproduced record of ``spec`` under ``suite`` ``version``."""
    (record,) = [
        r
        for r in RecordStore(STORE).records(suite=suite, source="reproduced")
        if r["suite"]["version"] == version and r["model"]["spec"] == spec
    ]
    return record


def test_an_identical_recon_run_finds_its_committed_record(tmp_path: Path) -> None:
    store = tmp_path / "leaderboards"
    shutil.copytree(STORE / "reproduced" / "recon", store / "reproduced" / "recon")
    committed = _committed("recon", load_suite("recon").version, "identity")
    result = tokbench.evaluate("identity", suite="recon", store=store)  # the committed run's options
    assert result.stored is not None and result.stored.status == "exists"
    assert result.record["protocol_hash"] == committed["protocol_hash"]


def test_recon_clean_is_recon_v2_under_its_own_name() -> None:
    """recon v3 changed only the Inception resize; recon-clean keeps v2's, which its records used."""
    v2 = _committed("recon", "2", "identity")["suite"]["config"]
    clean = load_suite("recon-clean").to_dict()
    assert (clean["name"], clean["version"]) == ("recon-clean", "1")
    assert {**clean, "name": "recon", "version": "2"} == v2
    v3 = load_suite("recon").to_dict()
    assert v3["judges"]["inception"] == {"name": "inception-v3-tf", "options": {"resize": "tf1-bilinear"}}
    assert {**v3, "version": "2", "judges": v2["judges"]} == v2
