"""How to show a record key that carries no ``metric_info``: the declaration of that key, found once.

Records written by the evaluator carry ``metric_info`` (label, unit, direction, metric) taken from the
metric classes. Older records and the published tables carry only their keys; ``key_info`` finds what
the metric classes (``Metric.output_info``, aliases included) or the two tables below declare for
them, so every direction is declared in exactly one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from tokbench.metrics import METRICS
from tokbench.metrics.base import OutputInfo

#: Scores that published tables report and no metric computes (the prune suite's benchmarks are
#: metrics, ``tokbench.pruning.benchmark_metrics``; VQAv2 is not one of them).
PUBLISHED_SCORES = {"vqav2": OutputInfo("VQAv2", True, "%")}
#: Keys tracks measure themselves, without a Metric class: token counts, cost and timings.
MEASUREMENTS = {
    "num_tokens": OutputInfo("tokens", None),
    "tokens_kept": OutputInfo("tokens kept", None),
    "encoder_gflops": OutputInfo("encoder GFLOPs", False),
    "prefill_tflops_paper": OutputInfo("prefill TFLOPs (4nd²+2n²d+2ndm per LLM layer)", False, "TFLOPs"),
    "encode_seconds_per_image": OutputInfo("encode time", False, "s/image"),
    "decode_seconds_per_image": OutputInfo("decode time", False, "s/image"),
    "encode_seconds_per_frame": OutputInfo("encode time", False, "s/frame"),
    "decode_seconds_per_frame": OutputInfo("decode time", False, "s/frame"),
}


def key_declaration(key: str) -> tuple[str | None, OutputInfo] | None:
    """Who declares ``key`` and how: (the metric's registry name, or None for a key of the tables
    above; its info), or None when nothing declares it."""
    for table in (PUBLISHED_SCORES, MEASUREMENTS):
        if key in table:
            return None, table[key]
    for name in METRICS.names():
        info = METRICS.get(name).output_info(key)
        if info is not None:
            return name, info
    return None


def key_info(key: str) -> OutputInfo | None:
    """The declared label, direction and unit of a record key, or None when nothing declares it."""
    found = key_declaration(key)
    return None if found is None else found[1]


def declared_metric_info(keys: Iterable[str]) -> dict[str, dict]:
    """``record["metric_info"]`` for keys known only by name (published tables): each declared key's
    label, unit and direction, with the metric that declares it (none for a track measurement)."""
    entries = {}
    for key in keys:
        found = key_declaration(key)
        if found is not None:
            metric, info = found
            entries[key] = asdict(info) if metric is None else {"metric": metric, **asdict(info)}
    return entries
