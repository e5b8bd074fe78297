"""The leaderboard store (tokbench/store.py): layout, add/get/scan, frames, crashes and concurrency."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest
from test_records import PROTOCOL_HASH, make_test_record

from tokbench.errors import ConfigError, StoreError
from tokbench.records import make_record_id, record_to_json
from tokbench.store import FRAME_COLUMNS, RecordStore, ScanResult, default_store_root, records_to_frame

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
WORKER_CODE = (
    "import sys; sys.path[:0] = sys.argv[1:3]; import test_store; test_store.run_worker(sys.argv[3:])"
)
BIG_RECORDS = 4  # the killed writer cycles through this many large records


def numbered_record(index: int, **overrides) -> dict:
    """A valid record of its own model ``index``, created ``index`` seconds after a fixed time."""
    fields = {
        "model": {"name": f"model {index}", "spec": f"jpeg:quality={index}"},
        "created_at": f"2026-01-01T00:{index // 60:02d}:{index % 60:02d}Z",
    }
    return make_test_record(**{**fields, **overrides})


def big_record(index: int) -> dict:
    """A record whose file is ~16 MB, so that writing it takes a while."""
    return make_test_record(
        model={"name": f"big {index}", "spec": f"big:index={index}"},
        metrics={f"metric_{i}": i / 7 for i in range(2000)},
        environment={"log": f"{index}" * 16_000_000},
    )


def run_worker(argv: list[str]) -> None:
    """Subprocess entry point: ``loop ROOT`` rewrites big records forever; ``batch ROOT START COUNT`` adds."""
    mode, root = argv[0], Path(argv[1])
    store = RecordStore(root, lock_timeout=60)
    if mode == "loop":
        records = [big_record(index) for index in range(BIG_RECORDS)]
    else:
        start, count = int(argv[2]), int(argv[3])
        records = [numbered_record(index) for index in range(start, start + count)]
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "loop":
        for record in itertools.cycle(records):
            store.add(record, force=True)
    statuses = [store.add(record).status for record in records]
    print(json.dumps(statuses), flush=True)


def start_worker(*args: str) -> subprocess.Popen:
    """Start ``run_worker(args)`` in a fresh interpreter; it waits for ``go`` once ``wait_ready`` returns."""
    return subprocess.Popen(
        [sys.executable, "-c", WORKER_CODE, str(REPO_ROOT), str(TESTS_DIR), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_ready(worker: subprocess.Popen) -> None:
    line = worker.stdout.readline()
    assert line == "ready\n", f"worker failed to start (exit code {worker.poll()})"


def go(worker: subprocess.Popen) -> None:
    worker.stdin.write("go\n")
    worker.stdin.flush()


def sleep_until_a_temp_file_appears(directory: Path, timeout: float = 30.0) -> None:
    """Poll ``directory`` until a writer's temporary file exists, i.e. a write is under way."""
    deadline = time.monotonic() + timeout
    while not any(directory.glob("*.partial")):
        assert time.monotonic() < deadline, f"no write started in {directory} within {timeout} s"
        time.sleep(0.0005)


def write_raw(store: RecordStore, record: dict, text: str) -> Path:
    """Put ``text`` where ``record`` belongs, bypassing validation (a hand-edited or corrupted file)."""
    path = store.path_for(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "leaderboards", lock_timeout=10)


def test_add_writes_one_file_at_source_suite_record_id(store: RecordStore) -> None:
    record = make_test_record(metrics={"psnr": math.inf, "ssim": 1.0})
    result = store.add(record)
    expected = store.root / "reproduced" / "recon-test" / f"{record['record_id']}.json"
    assert (result.status, result.path, result.record_id) == ("added", expected, record["record_id"])
    assert expected.read_text(encoding="utf-8") == record_to_json(record)
    files = sorted(path.relative_to(store.root) for path in store.root.rglob("*") if path.is_file())
    assert files == sorted([Path(".lock"), expected.relative_to(store.root)])
    assert store.get(record["record_id"])["metrics"] == {"psnr": "inf", "ssim": 1.0}
    assert oct(expected.stat().st_mode & 0o777) == oct(0o644)


def test_duplicate_add_reports_exists_and_leaves_the_file_unchanged(store: RecordStore) -> None:
    record = numbered_record(1)
    path = store.add(record).path
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
    changed = numbered_record(1, metrics={"psnr": 99.0})
    result = store.add(changed)
    assert (result.status, result.path) == ("exists", path)
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_force_replaces_the_file_atomically(store: RecordStore) -> None:
    path = store.add(numbered_record(1)).path
    changed = numbered_record(1, metrics={"psnr": 99.0})
    result = store.add(changed, force=True)
    assert (result.status, result.path) == ("replaced", path)
    assert path.read_text(encoding="utf-8") == record_to_json(changed)
    assert list(path.parent.iterdir()) == [path]


def test_add_rejects_an_invalid_record_and_writes_nothing(store: RecordStore) -> None:
    record = numbered_record(1, metrics={"psnr": math.nan})
    with pytest.raises(StoreError, match=r"^record to add: metrics\.psnr: NaN is not allowed"):
        store.add(record)
    assert not store.root.exists()


def test_records_are_ordered_by_time_then_id_and_filtered(store: RecordStore) -> None:
    earliest = numbered_record(1, created_at="2026-01-01T01:00:00+01:00")  # 00:00:00Z, sorts as a time
    records = [numbered_record(5), numbered_record(3), earliest, numbered_record(4, source="reported")]
    twin = make_test_record(suite={"name": "recon-other", "version": "2"}, created_at="2026-01-01T00:00:00Z")
    for record in [*records, twin]:
        store.add(record)
    tied = sorted([earliest["record_id"], twin["record_id"]])
    assert [r["record_id"] for r in store.records()][:2] == tied
    ids = [r["record_id"] for r in store.records(suite="recon-test")]
    assert ids == [earliest["record_id"], *(numbered_record(i)["record_id"] for i in (3, 4, 5))]
    assert [r["record_id"] for r in store.records(source="reported")] == [records[3]["record_id"]]
    assert store.records(suite="recon-other", source="reported") == []
    assert store.records() == list(store.scan().records)


def test_get_and_find_distinguish_sources(store: RecordStore) -> None:
    reproduced = numbered_record(1)
    reported = numbered_record(1, source="reported", metrics={"psnr": 30.0})
    assert store.add(reproduced).status == "added"
    assert store.find(reproduced["record_id"], "reported") is None
    assert store.add(reported).status == "added"  # the same id under the other source
    with pytest.raises(StoreError, match=r"is in several files .*; pass source="):
        store.get(reproduced["record_id"])
    assert store.get(reproduced["record_id"], source="reported")["metrics"] == {"psnr": 30.0}
    assert store.find(reproduced["record_id"], "reproduced") == json.loads(record_to_json(reproduced))
    with pytest.raises(StoreError, match=r"no record '0{20}' in store"):
        store.get("0" * 20)
    with pytest.raises(ConfigError, match="record_id must be 20 lowercase hex"):
        store.get("*")


BAD_FILES = [  # (id, how the file is corrupted, field named in the message)
    ("missing-field", lambda text: text.replace('"dataset"', '"datasets"'), "dataset"),
    ("wrong-type", lambda text: text.replace('"psnr": 31.25', '"psnr": "31.25"'), "metrics.psnr"),
    ("nan-metric", lambda text: text.replace('"psnr": 31.25', '"psnr": NaN'), "metrics.psnr"),
    ("bad-record-id", lambda text: text.replace(make_test_record()["record_id"], "0" * 20), "record_id"),
]


@pytest.mark.parametrize(("corrupt", "field"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_a_malformed_file_is_named_with_its_field(store: RecordStore, corrupt, field: str) -> None:
    good = numbered_record(2)
    store.add(good)
    record = make_test_record()
    text = corrupt(record_to_json(record))
    assert text != record_to_json(record)
    path = write_raw(store, {**record, "record_id": json.loads(text)["record_id"]}, text)
    with pytest.raises(StoreError, match=rf"^{re.escape(str(path))}: {field}: "):
        store.records()
    with pytest.raises(StoreError, match=rf"^{re.escape(str(path))}: {field}: "):
        store.to_frame()
    scan = store.scan()
    assert [r["record_id"] for r in scan.records] == [good["record_id"]]
    assert [(problem.path, problem.message.split(": ")[1]) for problem in scan.problems] == [(path, field)]


def test_misplaced_files_are_problems(store: RecordStore) -> None:
    record = numbered_record(1)
    store.add(record)
    text = record_to_json(record)
    wrong_suite = store.root / "reproduced" / "recon-other" / f"{record['record_id']}.json"
    wrong_depth = store.root / "reproduced" / f"{record['record_id']}.json"
    typo_source = store.root / "reproducd" / "recon-test" / f"{record['record_id']}.json"
    for path in (wrong_suite, wrong_depth, typo_source):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    problems = {problem.path: problem.message for problem in store.scan().problems}
    assert set(problems) == {wrong_suite, wrong_depth, typo_source}
    assert "belongs at reproduced/recon-test/" in problems[wrong_suite]
    assert "'reproducd' is not a source directory" in problems[typo_source]
    assert "record files live at <source>/<suite>/<record_id>.json" in problems[wrong_depth]
    with pytest.raises(StoreError, match=r"and 2 more bad files"):
        store.records()


def test_readers_ignore_stale_temp_files_and_add_removes_them(store: RecordStore) -> None:
    first = numbered_record(1)
    directory = store.add(first).path.parent
    stale = directory / ".tmp-killed.partial"
    stale.write_text(record_to_json(numbered_record(2))[:100], encoding="utf-8")
    assert [r["record_id"] for r in store.records()] == [first["record_id"]]
    assert store.scan().problems == ()
    assert store.add(numbered_record(3)).status == "added"
    assert not stale.exists()
    assert sorted(p.suffix for p in directory.iterdir()) == [".json", ".json"]


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = numbered_record(1)
    path = store.add(record).path

    def failing_replace(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    expected = rf"^cannot write record file {re.escape(str(path))}: .*No space left"
    with pytest.raises(StoreError, match=expected):
        store.add(numbered_record(1, metrics={"psnr": 1.0}), force=True)
    assert path.read_text(encoding="utf-8") == record_to_json(record)
    assert list(path.parent.iterdir()) == [path]


def test_add_times_out_with_a_clear_message_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, lock_timeout=0.2)
    with filelock.FileLock(tmp_path / ".lock"):
        started = time.monotonic()
        expected = rf"could not lock {re.escape(str(tmp_path / '.lock'))} within 0\.2 s"
        with pytest.raises(StoreError, match=expected):
            store.add(numbered_record(1))
        assert time.monotonic() - started < 5
    assert store.add(numbered_record(1)).status == "added"


def test_to_frame_flattens_identity_and_metrics(store: RecordStore) -> None:
    first = numbered_record(1, metrics={"psnr": math.inf, "bpp": 2})
    second = numbered_record(2, metrics={"ssim": 0.5}, dataset={"name": "kodak"})
    store.add(first)
    store.add(second)
    frame = store.to_frame()
    assert list(frame.columns) == [*FRAME_COLUMNS, "bpp", "psnr", "ssim"]
    assert frame["record_id"].tolist() == [first["record_id"], second["record_id"]]
    assert frame["model"].tolist() == ["jpeg:quality=1", "jpeg:quality=2"]
    assert frame["protocol_hash"].tolist() == [PROTOCOL_HASH[:12]] * 2
    assert frame["items_used"].tolist()[0] == 23 and frame["items_used"].isna().tolist() == [False, True]
    assert frame.loc[0, "psnr"] == math.inf and frame.loc[0, "bpp"] == 2.0
    assert math.isnan(frame.loc[1, "psnr"]) and frame.loc[1, "ssim"] == 0.5
    assert str(frame["bpp"].dtype) == "float64"
    assert store.to_frame(source="reported").columns.tolist() == list(FRAME_COLUMNS)
    assert len(records_to_frame([first])) == 1


def test_a_metric_named_like_an_identity_column_is_refused() -> None:
    record = make_test_record(metrics={"dataset": 1.0})
    with pytest.raises(StoreError, match=r"metric keys \['dataset'\] clash"):
        records_to_frame([record])


def test_a_missing_store_reads_as_empty(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "nowhere")
    assert store.records() == [] and store.scan() == ScanResult(records=(), problems=())
    assert store.to_frame().empty
    assert store.find("0" * 20, "reproduced") is None
    with pytest.raises(
        StoreError, match=r"no record '0{20}' in store .*nowhere \(the directory does not exist\)"
    ):
        store.get("0" * 20)
    assert not store.root.exists()


def test_bad_filters_raise(store: RecordStore) -> None:
    with pytest.raises(ConfigError, match="source must be one of"):
        store.scan(source="paper")
    with pytest.raises(ConfigError, match="suite must be a suite name"):
        store.scan(suite="../etc")
    with pytest.raises(ConfigError, match="source must be one of"):
        store.find("0" * 20, "paper")


def test_default_store_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOKBENCH_STORE", raising=False)
    assert default_store_root() == tmp_path / "leaderboards"
    monkeypatch.setenv("TOKBENCH_STORE", str(tmp_path / "elsewhere"))
    assert default_store_root() == tmp_path / "elsewhere"


@pytest.mark.slow
def test_a_killed_writer_leaves_only_complete_records(store: RecordStore) -> None:
    store.root.mkdir()
    moments = ["after a random delay", "while a temp file exists"] * 3
    complete_texts = {record_to_json(big_record(index)) for index in range(BIG_RECORDS)}
    complete_texts |= {record_to_json(numbered_record(trial)) for trial in range(len(moments))}  # added below
    workers = [start_worker("loop", str(store.root)) for _ in moments]  # they start up in parallel
    rng = random.Random()
    try:
        for trial, (worker, moment) in enumerate(zip(workers, moments, strict=True)):
            wait_ready(worker)
            go(worker)
            if moment == "after a random delay":
                delay = rng.uniform(0.05, 0.5)
                time.sleep(delay)
                moment = f"after {delay:.3f} s"
            else:
                sleep_until_a_temp_file_appears(store.root / "reproduced" / "recon-test")
            worker.send_signal(signal.SIGKILL)
            context = f"trial {trial}, killed {moment}"
            assert worker.wait(timeout=30) == -signal.SIGKILL, f"{context}: the writer ended by itself"
            files = list(store.root.rglob("*.json"))
            assert all(path.read_text(encoding="utf-8") in complete_texts for path in files), context
            assert len(store.records()) == len(files), context  # every file parses and validates
            lock = filelock.FileLock(store.root / ".lock", timeout=0)
            lock.acquire()  # raises filelock.Timeout unless the kernel released the dead writer's flock
            lock.release()
            assert store.add(numbered_record(trial)).status == "added", context
            assert not list(store.root.rglob("*.partial")), f"{context}: the dead writer's temp file is left"
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    expected_specs = {f"jpeg:quality={trial}" for trial in range(len(moments))}
    assert {record["model"]["spec"] for record in store.records()} >= expected_specs


@pytest.mark.slow
def test_two_writers_adding_distinct_records_lose_none(store: RecordStore) -> None:
    workers = [start_worker("batch", str(store.root), str(start), "50") for start in (0, 50)]
    for worker in workers:
        wait_ready(worker)
    for worker in workers:
        go(worker)
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert [json.loads(output) for output in outputs] == [["added"] * 50] * 2
    records = store.records()
    assert len(records) == 100
    assert sorted(r["record_id"] for r in records) == sorted(
        numbered_record(i)["record_id"] for i in range(100)
    )
    assert not list(store.root.rglob("*.partial"))


@pytest.mark.slow
def test_two_writers_adding_the_same_records_write_each_once(store: RecordStore) -> None:
    workers = [start_worker("batch", str(store.root), "0", "20") for _ in range(2)]
    for worker in workers:
        wait_ready(worker)
    for worker in workers:
        go(worker)
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    first, second = (json.loads(output) for output in outputs)
    assert [sorted(pair) for pair in zip(first, second, strict=True)] == [["added", "exists"]] * 20
    assert len(list(store.root.rglob("*.json"))) == 20
    assert {r["record_id"] for r in store.records()} == {
        make_record_id("recon-test", PROTOCOL_HASH, f"jpeg:quality={i}") for i in range(20)
    }
