"""Published numbers as *reported* records: read the CSV tables of a ``published/`` directory at ingest time.

Each known CSV table becomes records of ``source: "reported"``, one per row (and per suite the row
feeds), with a ``citation`` taken from the row's ``source`` column and a ``protocol`` that describes
the paper's protocol. The protocol always has ``kind: "reported"`` and names its source table, so a
reported record never shares a protocol hash (and so never a ranking) with a record tokbench
reproduced, and numbers from different source tables are never treated as comparable.

Only the shape of each table (its columns and the suites its rows feed) is written here; the numbers
are read from the CSV files when ``ingest_published`` runs, and the resulting record files are what
gets committed under ``leaderboards/reported/``::

    tokbench ingest PATH/TO/published --store leaderboards

A reported record names only its keys, so its ``metric_info`` is what the metric classes declare for
them (``tokbench.metrics.info``), the same shape the evaluator writes for reproduced records.

Each source (a table, and the value its ``source`` column starts with) carries, per suite, the facts
that decide whether its numbers were measured like a reproduced protocol (``SOURCE_FACTS``: FID
implementation, resize, reference set, image count, preprocessing, quantisation, save step, bucket
edges); they are the protocol's ``facts``, so part of its hash. ``protocol_mismatches`` compares them
with a reproduced record's protocol: a reported row is comparable only when every compared fact is
stated and equal.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tokbench.comparability import source_facts
from tokbench.errors import ConfigError
from tokbench.metrics.info import declared_metric_info
from tokbench.records import make_record_id, validate_record

_GITHUB_REPO = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9][A-Za-z0-9._-]*)\b")
_README = "README.md"


@dataclass(frozen=True)
class _Row:
    """One CSV row with where it came from, for records and for error messages."""

    table: str
    line: int
    values: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.table} line {self.line}"

    def text(self, column: str) -> str:
        return self.values[column].strip()

    def source(self) -> str:
        """The ``source`` cell; ConfigError when it is empty."""
        title = self.text("source")
        if not title:
            raise ConfigError(
                f"{self.where}: column 'source' is empty; every published number needs its source"
            )
        return title

    def number(self, column: str) -> float | int | None:
        """The cell as an int or float, None when empty; else ConfigError naming file, line, column."""
        text = self.text(column)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{self.where}: column {column!r} is {text!r}, expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{self.where}: column {column!r} is {text!r}, expected a finite number")
        return int(value) if re.fullmatch(r"-?\d+", text) else value


@dataclass(frozen=True)
class _Table:
    """How to read one published CSV: required columns, caveat keywords and the row converter."""

    columns: tuple[str, ...]
    readme_keywords: tuple[str, ...]
    convert: Callable[[_Row, dict], list[dict]]


def _protocol(suite: str, row: _Row, description: str, dataset: str, **extra: Any) -> dict:
    """A reported protocol: what the source measured, tied to its source table, with its facts."""
    return {
        "kind": "reported",
        "suite": suite,
        "description": description,
        "dataset": dataset,
        "source_table": row.table,
        **source_facts(row.table, row.source(), suite),
        **extra,
    }


def _record(
    suite: str,
    row: _Row,
    context: dict,
    *,
    name: str,
    kind: str,
    arguments: dict,
    spec_keys: Sequence[str],
    metrics: dict[str, float | int | None],
    protocol: dict,
) -> dict:
    """A schema-valid reported record; empty metrics are left out."""
    from tokbench.provenance import protocol_hash  # imports torch: only when ingesting

    if not name:
        raise ConfigError(f"{row.where}: the model name is empty")
    kept = {key: value for key, value in metrics.items() if value is not None}
    spec = name
    if spec_keys:
        spec += ":" + ",".join(f"{key}={arguments[key]}" for key in spec_keys)
    digest = protocol_hash(protocol)
    record = {
        "schema_version": 1,
        "record_id": make_record_id(suite, digest, spec),
        "source": "reported",
        "suite": {"name": suite, "version": "paper", "config": {"reported": True, **protocol}},
        "protocol_hash": digest,
        "protocol": protocol,
        "model": {"name": name, "spec": spec, "kind": kind, "arguments": arguments, "weights_sha256": None},
        "dataset": {"name": protocol["dataset"]},
        "metrics": kept,
        "metric_info": declared_metric_info(kept),
        "citation": _citation(row, context),
        "created_at": context["created_at"],
    }
    if "resolution" in protocol:
        record["preprocess"] = {"resolution": protocol["resolution"]}
    validate_record(record, where=row.where)
    return record


def _citation(row: _Row, context: dict) -> dict:
    """``{title, url?, table, row, notes?}`` from the row's ``source`` column and the README caveats."""
    title = row.source()
    citation: dict[str, Any] = {"title": title, "table": row.table, "row": row.line}
    url = _source_url(title, context["all_sources"])
    if url is not None:
        citation["url"] = url
    notes = context["notes"]
    if notes:
        citation["notes"] = notes
    return citation


def _source_url(title: str, all_sources: Sequence[str]) -> str | None:
    """The GitHub repository a source names (``owner/repo ...``), or that a fuller spelling of it names."""
    for candidate in (title, *(other for other in all_sources if other.startswith(title) and other != title)):
        match = _GITHUB_REPO.search(candidate)
        if match is not None:
            return f"https://github.com/{match.group(1)}"
    return None


# --- one converter per published table ----------------------------------------------------------------


def _tokenizers(row: _Row, context: dict) -> list[dict]:
    name = row.text("model")
    codebook = (
        row.number("codebook_size") if row.text("codebook_size").isdigit() else row.text("codebook_size")
    )
    tokens = row.number("tokens")
    arguments = {"tokens": tokens, "codebook_size": codebook, "hub_id": row.text("hub_id")}
    recon = _protocol(
        "recon",
        row,
        "rFID of 256x256 reconstructions of ImageNet-1k validation images as reported by the source "
        "(how many, and how they were preprocessed and judged: the protocol's facts)",
        "imagenet-1k-val",
        resolution=256,
    )
    records = [
        _record(
            "recon",
            row,
            context,
            name=name,
            kind="tokenizer",
            arguments=arguments,
            spec_keys=(),
            metrics={"rfid": row.number("rfid"), "num_tokens": tokens},
            protocol=recon,
        )
    ]
    if row.number("gfid") is not None:
        records.append(_generator_record(row, context, tokenizer=name, generator=row.text("generator")))
    return records


def _pfid(row: _Row, context: dict) -> list[dict]:
    name = row.text("tokenizer")
    protocol = _protocol(
        "pfid",
        row,
        "rFID and pFID of 256x256 ImageNet-1k reconstructions as reported by the source; the pFID "
        "perturbation settings are not stated there",
        "imagenet-1k-val",
        resolution=256,
    )
    records = [
        _record(
            "pfid",
            row,
            context,
            name=name,
            kind="tokenizer",
            arguments={"codebook_size": row.number("codebook_size")},
            spec_keys=(),
            metrics={"rfid": row.number("rfid"), "pfid": row.number("pfid")},
            protocol=protocol,
        )
    ]
    if row.number("gfid") is not None:
        records.append(_generator_record(row, context, tokenizer=name, generator=row.text("generator")))
    return records


def _generator_record(row: _Row, context: dict, tokenizer: str, generator: str) -> dict:
    """A ``gen`` record: the gFID of ``generator`` trained on ``tokenizer``'s tokens."""
    protocol = _protocol(
        "gen",
        row,
        "gFID of class-conditional 256x256 ImageNet-1k generation as reported by the source "
        "(sampler settings as named in the generator)",
        "imagenet-1k",
        resolution=256,
    )
    return _record(
        "gen",
        row,
        context,
        name=generator,
        kind="generator",
        arguments={"tokenizer": tokenizer},
        spec_keys=("tokenizer",),
        metrics={"gfid": row.number("gfid")},
        protocol=protocol,
    )


_TOKBENCH_DESCRIPTION = (
    "TokBench text and face preservation (T-ACC and T-NED in %, F-Sim cosine similarity; mean = "
    "unweighted mean of the small/medium/large bucket means) as published on the TokBench leaderboard"
)


#: T-ACC, T-NED and F-Sim per bucket and their mean, as the TokBench leaderboards print them.
_BUCKET_COLUMNS = tuple(
    f"{m}_{b}" for m in ("t_acc", "t_ned", "f_sim") for b in ("small", "medium", "large", "mean")
)


def _tokbench_256(row: _Row, context: dict) -> list[dict]:
    metrics = {column: row.number(column) for column in _BUCKET_COLUMNS}
    protocol = _protocol("tokbench", row, _TOKBENCH_DESCRIPTION, "tokbench-image", resolution=256)
    record = _record(
        "tokbench",
        row,
        context,
        name=row.text("method"),
        kind="tokenizer",
        arguments={"type": row.text("type"), "resolution": 256},
        spec_keys=("resolution",),
        metrics=metrics,
        protocol=protocol,
    )
    return [record]


def _tokbench_mean(row: _Row, context: dict) -> list[dict]:
    resolution = row.number("resolution")
    if not isinstance(resolution, int):
        raise ConfigError(f"{row.where}: column 'resolution' is {row.text('resolution')!r}, expected pixels")
    metrics = {key: row.number(key) for key in ("t_acc_mean", "t_ned_mean", "f_sim_mean")}
    protocol = _protocol("tokbench", row, _TOKBENCH_DESCRIPTION, "tokbench-image", resolution=resolution)
    record = _record(
        "tokbench",
        row,
        context,
        name=row.text("method"),
        kind="tokenizer",
        arguments={"resolution": resolution},
        spec_keys=("resolution",),
        metrics=metrics,
        protocol=protocol,
    )
    return [record]


_TOKBENCH_VIDEO_DESCRIPTION = (
    "TokBench-Video text (sets ch3, ds) and face preservation at one short side (T-ACC and T-NED in %, "
    "F-Sim cosine similarity; mean = unweighted mean of the small/medium/large bucket means) as published "
    "on the TokBench-Video leaderboard"
)


def _tokbench_video(row: _Row, context: dict) -> list[dict]:
    resolution = row.number("resolution")
    if resolution not in (256, 480):
        raise ConfigError(
            f"{row.where}: column 'resolution' is {row.text('resolution')!r}, expected 256 or 480"
        )
    metrics = {column: row.number(column) for column in _BUCKET_COLUMNS}
    protocol = _protocol(
        "tokbench-video", row, _TOKBENCH_VIDEO_DESCRIPTION, "tokbench-video", resolution=resolution
    )
    arguments = {"type": row.text("type"), "factor": row.text("factor"), "resolution": resolution}
    keys = ("type", "factor", "resolution")
    name, kind = row.text("method"), "video-tokenizer"
    return [_record("tokbench-video", row, context, name=name, kind=kind, arguments=arguments, spec_keys=keys,
                    metrics=metrics, protocol=protocol)]  # fmt: skip


_PRUNING_BENCHMARKS = ("gqa", "mmb", "mme", "pope", "sqa", "vqav2", "textvqa")


def _pruning(row: _Row, context: dict) -> list[dict]:
    tokens_kept = row.number("tokens_kept")
    protocol = _protocol(
        "prune",
        row,
        "LLaVA-1.5-7B with its 576 visual tokens pruned to tokens_kept; benchmark scores as compiled by "
        "the source (baselines differ between papers)",
        "llava-1.5-eval-benchmarks",
        base_model="LLaVA-1.5-7B",
    )
    metrics = {key: row.number(key) for key in _PRUNING_BENCHMARKS}
    record = _record(
        "prune",
        row,
        context,
        name=row.text("method"),
        kind="pruner",
        arguments={"tokens_kept": tokens_kept, "base_model": "LLaVA-1.5-7B"},
        spec_keys=("tokens_kept",),
        metrics={**metrics, "tokens_kept": tokens_kept},
        protocol=protocol,
    )
    return [record]


TABLES: dict[str, _Table] = {
    "tokenizers_imagenet256.csv": _Table(
        ("model", "hub_id", "tokens", "codebook_size", "rfid", "gfid", "generator", "source"), (), _tokenizers
    ),
    "pfid_imagenet256.csv": _Table(
        ("tokenizer", "codebook_size", "rfid", "pfid", "gfid", "generator", "source"), ("pFID",), _pfid
    ),
    "tokbench_image_256.csv": _Table(
        ("method", "type", *_BUCKET_COLUMNS, "source"), ("TokBench",), _tokbench_256
    ),
    "tokbench_image_512_1024_mean.csv": _Table(
        ("method", "resolution", "t_acc_mean", "t_ned_mean", "f_sim_mean", "source"),
        ("TokBench",),
        _tokbench_mean,
    ),
    "tokbench_video.csv": _Table(
        ("method", "type", "factor", "resolution", *_BUCKET_COLUMNS, "source"), ("TokBench",), _tokbench_video
    ),
    "vlm_pruning_llava15_7b.csv": _Table(
        ("tokens_kept", "method", *_PRUNING_BENCHMARKS, "source"), ("pruning",), _pruning
    ),
}


# --- reading and ingesting ----------------------------------------------------------------------------


def readme_caveats(directory: Path) -> list[str]:
    """The bullet points of ``directory/README.md`` (continuation lines joined), or [] without one."""
    path = Path(directory) / _README
    if not path.is_file():
        return []
    bullets: list[str] = []
    in_bullet = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            bullets.append(stripped[2:])
            in_bullet = True
        elif in_bullet and stripped and line.startswith(" "):
            bullets[-1] += " " + stripped
        else:
            in_bullet = False
    return bullets


def _read_rows(path: Path, table: _Table) -> list[_Row]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [column for column in table.columns if column not in header]
            if missing:
                raise ConfigError(f"{path.name}: missing column(s) {missing}; the header is {header}")
            rows = []
            for values in reader:
                if None in values or any(value is None for value in values.values()):
                    raise ConfigError(
                        f"{path.name} line {reader.line_num}: {len(header)} columns expected, "
                        "the row has a different number"
                    )
                rows.append(_Row(path.name, reader.line_num, values))
            return rows
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error}") from None


def read_published(directory: Path, created_at: str | None = None) -> list[dict]:
    """Every reported record the published CSV tables in ``directory`` give, in table and row order.

    ``created_at`` (RFC 3339) stamps the records; it defaults to today, 00:00 UTC. A CSV file that
    is not a known table, a missing column, a non-numeric metric or two rows that give one record
    different numbers raise ConfigError naming the file and line.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            f"published directory {directory} does not exist; pass the folder of the CSV tables"
        )
    paths = sorted(directory.glob("*.csv"))
    if not paths:
        raise ConfigError(f"no CSV tables in {directory}; expected some of {sorted(TABLES)}")
    unknown = [path.name for path in paths if path.name not in TABLES]
    if unknown:
        raise ConfigError(
            f"{directory}: unknown published table(s) {unknown}; known tables are {sorted(TABLES)} "
            "(add a reader to tokbench/reported.py for a new one)"
        )
    stamp = created_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
    caveats = readme_caveats(directory)
    rows_by_table = {path.name: _read_rows(path, TABLES[path.name]) for path in paths}
    all_sources = [row.text("source") for rows in rows_by_table.values() for row in rows]
    records: list[dict] = []
    seen: dict[str, tuple[dict, str]] = {}
    for name, rows in rows_by_table.items():
        table = TABLES[name]
        notes = [c for c in caveats if any(keyword in c for keyword in table.readme_keywords)]
        context = {"created_at": stamp, "all_sources": all_sources, "notes": notes}
        for row in rows:
            for record in table.convert(row, context):
                earlier = seen.get(record["record_id"])
                if earlier is None:
                    seen[record["record_id"]] = (record, row.where)
                    records.append(record)
                elif earlier[0]["metrics"] != record["metrics"]:
                    raise ConfigError(
                        f"{row.where} and {earlier[1]} give {record['model']['spec']!r} on suite "
                        f"{record['suite']['name']!r} different numbers: {record['metrics']} vs "
                        f"{earlier[0]['metrics']}"
                    )
    return records


def ingest_published(
    directory: Path, store_root: Path, created_at: str | None = None, force: bool = False
) -> list:
    """Write the records of ``read_published(directory)`` into the store; return the ``AddResult`` list."""
    from tokbench.store import RecordStore

    store = RecordStore(Path(store_root))
    return [store.add(record, force=force) for record in read_published(directory, created_at)]


def citation_line(record: dict) -> str:
    """One plain-text line that cites a reported record's numbers (not HTML-escaped)."""
    citation = record.get("citation") or {}
    parts = [f"{record['model']['spec']} ({record['suite']['name']})"]
    title = citation.get("title")
    parts.append(f"source: {title}" if title else "source: not given")
    if citation.get("url"):
        parts.append(str(citation["url"]))
    for key in ("authors", "year"):
        if citation.get(key):
            parts.append(str(citation[key]))
    if citation.get("table"):
        row = f", row {citation['row']}" if citation.get("row") is not None else ""
        parts.append(f"table {citation['table']}{row}")
    return "; ".join(parts)
