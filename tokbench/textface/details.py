"""Per-instance details of a TokBench run: one JSON line per (resolution, instance), gzip-compressed.

Each row holds ``resolution``, ``kind`` (text|face), ``image``, ``index`` (within the image), ``gt``
(text) , ``prediction`` (text), ``ratio``, ``bucket`` (small|medium|large|null), ``score``
(``{"acc", "ned"}`` for text, ``{"sim"}`` for faces; null when not scored) and ``error`` (why it was
not scored, else null). ``aggregate_details`` recomputes the record's bucket metrics from the rows.
The file lives next to the record: ``<record file stem>.details.jsonl.gz``.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tokbench.metrics.text_face import TextFidelity, bucket_means, check_edges
from tokbench.textface.settings import Resolution

SUFFIX = ".details.jsonl.gz"


def details_path(record_path: Path) -> Path:
    """Where the details of the record stored at ``record_path`` live."""
    return record_path.with_name(record_path.stem + SUFFIX)


def write_details(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temporary file, then rename); returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".details-", suffix=".partial")
    os.close(handle)
    count = 0
    try:
        with gzip.open(temporary, "wt", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count


def read_details(path: Path) -> list[dict[str, Any]]:
    """Every row of a details file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def aggregate_details(
    rows: Iterable[dict[str, Any]], edges: dict[int, dict[str, list[float]]]
) -> dict[str, float]:
    """The record's ``t_acc_<R>_*``, ``t_ned_<R>_*`` and ``f_sim_<R>_*`` from details rows.

    ``edges`` maps a resolution to ``{"text": [...], "face": [...]}`` bucket edges (the suite's).
    T-NED is recomputed from ``gt`` and ``prediction``; F-Sim comes from the stored similarity.
    """
    grouped: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("error") is None and row.get("score") is not None:
            grouped.setdefault((int(row["resolution"]), row["kind"]), []).append(row)
    metrics: dict[str, float] = {}
    for (resolution, kind), members in sorted(grouped.items()):
        ratios = torch.tensor([m["ratio"] for m in members], dtype=torch.float64)
        if kind == "text":
            metric = TextFidelity(edges[resolution]["text"])
            metric.update([m["gt"] for m in members], [m["prediction"] for m in members], ratios)
            values = metric.compute()
        else:
            similarity = torch.tensor([m["score"]["sim"] for m in members], dtype=torch.float64)
            values = bucket_means(similarity, ratios, check_edges(edges[resolution]["face"]), "f_sim", 1.0)
        metrics.update(with_resolution(values, resolution))
    return metrics


def with_resolution(values: dict[str, float], resolution: int) -> dict[str, float]:
    """``t_acc_small`` → ``t_acc_<resolution>_small`` (every resolution in one record)."""
    renamed = {}
    for key, value in values.items():
        base, _, bucket = key.rpartition("_")
        renamed[f"{base}_{resolution}_{bucket}"] = value
    return renamed


def summary_section(
    resolutions: list[Resolution],
    text: dict[int, Any],
    face: dict[int, Any],
    rows: list[dict[str, Any]],
    errors: Counter[str],
    mismatches: int,
) -> dict[str, Any]:
    """The record's ``tokbench`` section: what was scored, what was not and why."""
    instances = {
        kind: len({(r["image"], r["index"]) for r in rows if r["kind"] == kind}) for kind in ("text", "face")
    }
    buckets = {
        str(r.side): {
            kind: metrics[r.side].bucket_counts() if r.side in metrics and metrics[r.side].ratios else {}
            for kind, metrics in (("text", text), ("face", face))
        }
        for r in resolutions
    }
    return {
        "resolutions": [r.side for r in resolutions],
        "instances": instances,
        "scored_per_bucket": buckets,
        "not_scored": dict(sorted(errors.items())),
        "render_mismatches": mismatches,
        "details": None,
    }
