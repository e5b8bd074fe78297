"""Records in the committed store stay comparable: today's recon protocol hashes to theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import tokbench
from tokbench.store import RecordStore

STORE = Path(__file__).parent.parent / "leaderboards"


def test_an_identical_recon_run_finds_its_committed_record(tmp_path: Path) -> None:
    store = tmp_path / "leaderboards"
    shutil.copytree(STORE / "reproduced" / "recon", store / "reproduced" / "recon")
    (committed,) = [r for r in RecordStore(store).records(suite="recon") if r["model"]["spec"] == "identity"]
    result = tokbench.evaluate("identity", suite="recon", store=store)  # the committed run's options
    assert result.stored is not None and result.stored.status == "exists"
    assert result.record["protocol_hash"] == committed["protocol_hash"]
