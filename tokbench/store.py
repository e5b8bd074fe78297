"""The leaderboard store: one JSON file per record at ``<root>/<source>/<suite>/<record_id>.json``.

One file per record keeps the store git-friendly (a submission is one file in a pull request).
Writers hold an exclusive lock on ``<root>/.lock`` (an OS ``flock``, released by the kernel if the
writer dies) and replace files atomically, so a reader never sees a partial record: temporary files
are dot-files ending in ``.partial``, never ``*.json``. Records are never edited in place.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import filelock
import pandas as pd

from tokbench.errors import ConfigError, StoreError
from tokbench.files import remove_stale_temp_files
from tokbench.records import (
    created_at_to_datetime,
    read_record_file,
    record_metrics,
    record_to_json,
)
from tokbench.registry import KEY_PATTERN

SOURCES = ("reproduced", "reported")
RECORD_ID_PATTERN = re.compile(r"[0-9a-f]{20}")
STORE_ENV_VAR = "TOKBENCH_STORE"
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".partial"
FRAME_COLUMNS = (
    "suite",
    "suite_version",
    "source",
    "model",
    "model_name",
    "dataset",
    "items_used",
    "items_skipped",
    "protocol_hash",
    "created_at",
    "record_id",
)


@dataclass(frozen=True)
class AddResult:
    """What ``RecordStore.add`` did: wrote a new file, found one already there, or replaced it."""

    status: Literal["added", "exists", "replaced"]
    path: Path
    record_id: str


@dataclass(frozen=True)
class StoreProblem:
    """A store file that is not a valid record in its right place, and why."""

    path: Path
    message: str


@dataclass(frozen=True)
class ScanResult:
    """The valid records of a scan, in store order, and the files that failed."""

    records: tuple[dict, ...]
    problems: tuple[StoreProblem, ...]


def default_store_root() -> Path:
    """``$TOKBENCH_STORE`` if set, else ``./leaderboards``."""
    configured = os.environ.get(STORE_ENV_VAR)
    return Path(configured).expanduser() if configured else Path.cwd() / "leaderboards"


class RecordStore:
    """Leaderboard records under ``root``, one validated JSON file each; a missing root reads as empty."""

    def __init__(self, root: Path, lock_timeout: float = 60.0):
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def path_for(self, record: dict) -> Path:
        """Where ``record`` lives in this store (it need not exist yet)."""
        return self.root / record["source"] / record["suite"]["name"] / f"{record['record_id']}.json"

    def add(self, record: dict, force: bool = False) -> AddResult:
        """Write ``record`` unless a file with its id exists; ``force`` replaces that file."""
        text = record_to_json(record, where="record to add")
        path = self.path_for(record)
        try:
            _make_dirs(self.root)
        except OSError as error:
            raise StoreError(f"cannot create store root {self.root}: {error}") from error
        with self._write_lock():
            existed = path.exists()
            if existed and not force:
                return AddResult(status="exists", path=path, record_id=record["record_id"])
            try:
                _make_dirs(path.parent)
                # Temp files are written only under this lock, so any that exists was left by a kill.
                remove_stale_temp_files(path.parent, [f"{TEMP_PREFIX}*{TEMP_SUFFIX}"], min_age_seconds=0)
                _write_atomically(path, text)
            except OSError as error:
                raise StoreError(f"cannot write record file {path}: {error}") from error
        return AddResult(status="replaced" if existed else "added", path=path, record_id=record["record_id"])

    def scan(self, suite: str | None = None, source: str | None = None) -> ScanResult:
        """Every record (filtered by suite and source) plus a problem for each bad or misplaced file."""
        _check_filters(suite, source)
        records: list[dict] = []
        problems: list[StoreProblem] = []
        for path in self._record_files():
            relative = path.relative_to(self.root).parts
            if len(relative) != 3:
                message = f"{path}: record files live at <source>/<suite>/<record_id>.json"
                problems.append(StoreProblem(path, message))
                continue
            if relative[0] not in SOURCES:
                message = f"{path}: {relative[0]!r} is not a source directory; expected one of {SOURCES}"
                problems.append(StoreProblem(path, message))
                continue
            if (source is not None and relative[0] != source) or (suite is not None and relative[1] != suite):
                continue
            try:
                records.append(self._load(path))
            except StoreError as error:
                problems.append(StoreProblem(path, str(error)))
        records.sort(key=_store_order)
        return ScanResult(records=tuple(records), problems=tuple(problems))

    def records(self, suite: str | None = None, source: str | None = None) -> list[dict]:
        """Every record (filtered by suite and source) in store order; raise on the first bad file."""
        result = self.scan(suite=suite, source=source)
        if result.problems:
            others = len(result.problems) - 1
            more = f" (and {others} more bad files; RecordStore.scan lists them all)" if others else ""
            raise StoreError(result.problems[0].message + more)
        return list(result.records)

    def get(self, record_id: str, source: str | None = None) -> dict:
        """The record with ``record_id``; pass ``source`` when both sources hold that id."""
        record = self._find(record_id, source)
        if record is None:
            where = "" if source is None else f" under {source}/"
            missing = "" if self.root.is_dir() else " (the directory does not exist)"
            raise StoreError(f"no record {record_id!r}{where} in store {self.root}{missing}")
        return record

    def find(self, record_id: str, source: str) -> dict | None:
        """The ``source`` record with ``record_id``, or None (also when the store does not exist yet)."""
        return self._find(record_id, source)

    def to_frame(self, suite: str | None = None, source: str | None = None) -> pd.DataFrame:
        """The store's records (filtered by suite and source) as ``records_to_frame`` rows."""
        return records_to_frame(self.records(suite=suite, source=source))

    def _find(self, record_id: str, source: str | None) -> dict | None:
        _check_filters(None, source)
        if not isinstance(record_id, str) or not RECORD_ID_PATTERN.fullmatch(record_id):
            raise ConfigError(f"record_id must be 20 lowercase hex characters, got {record_id!r}")
        sources = SOURCES if source is None else (source,)
        paths = sorted(path for name in sources for path in self.root.glob(f"{name}/*/{record_id}.json"))
        if len(paths) > 1:
            listed = ", ".join(str(path) for path in paths)
            raise StoreError(f"record id {record_id!r} is in several files ({listed}); pass source=")
        return self._load(paths[0]) if paths else None

    def _load(self, path: Path) -> dict:
        record = read_record_file(path)
        expected = self.path_for(record)
        if path != expected:
            raise StoreError(
                f"{path}: the record belongs at {expected.relative_to(self.root)} "
                "(source, suite.name and record_id decide the location)"
            )
        return record

    def _record_files(self) -> list[Path]:
        return sorted(
            path
            for path in self.root.rglob("*.json")
            if not any(part.startswith(".") for part in path.relative_to(self.root).parts)
        )

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        lock_path = self.root / ".lock"
        lock = filelock.FileLock(lock_path, timeout=self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise StoreError(
                f"could not lock {lock_path} within {self.lock_timeout} s: another process is writing "
                "records; retry when it has finished, or raise lock_timeout"
            ) from None
        try:
            yield
        finally:
            lock.release()


def records_to_frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per record: the identity columns of ``FRAME_COLUMNS``, then one float column per metric."""
    rows = [_record_to_row(record) for record in records]
    metric_columns = sorted({key for row in rows for key in row} - set(FRAME_COLUMNS))
    frame = pd.DataFrame(rows, columns=[*FRAME_COLUMNS, *metric_columns])
    for column in ("items_used", "items_skipped"):
        frame[column] = frame[column].astype("Int64")
    frame[metric_columns] = frame[metric_columns].astype("float64")
    return frame


def _check_filters(suite: str | None, source: str | None) -> None:
    if source is not None and source not in SOURCES:
        raise ConfigError(f"source must be one of {SOURCES} or None, got {source!r}")
    if suite is not None and (not isinstance(suite, str) or not KEY_PATTERN.fullmatch(suite)):
        raise ConfigError(f"suite must be a suite name such as 'recon-imagenet' or None, got {suite!r}")


def _store_order(record: dict) -> tuple:
    return created_at_to_datetime(record["created_at"]), record["record_id"], record["source"]


def _record_to_row(record: dict) -> dict:
    dataset = record["dataset"]
    row = {
        "suite": record["suite"]["name"],
        "suite_version": record["suite"]["version"],
        "source": record["source"],
        "model": record["model"]["spec"],
        "model_name": record["model"]["name"],
        "dataset": dataset["name"],
        "items_used": dataset.get("items_used"),
        "items_skipped": dataset.get("items_skipped"),
        "protocol_hash": record["protocol_hash"][:12],
        "created_at": record["created_at"],
        "record_id": record["record_id"],
    }
    metrics = record_metrics(record)
    clashes = sorted(set(metrics) & set(row))
    if clashes:
        raise StoreError(
            f"record {record['record_id']}: metric keys {clashes} clash with the frame's identity columns"
        )
    return {**row, **metrics}


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, syncing each parent so the new entries persist."""
    missing = [path for path in (directory, *directory.parents) if not path.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        _fsync_directory(path.parent)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, sync it, then rename it onto ``path``."""
    temp_path: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, delete=False
        ) as handle:
            temp_path = Path(handle.name)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, 0o644)  # NamedTemporaryFile's 0o600 would hide the record from other users
        os.replace(temp_path, path)
    except BaseException:
        if temp_path is not None:
            temp_path.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # Windows cannot open a directory to sync it
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
