"""A suite's judges and metrics, built from its YAML entries, shared by every track that scores with them.

``SuiteMetrics`` holds one metric instance per ``metrics:`` entry, keyed by the entry's record key (so
a suite may list ``fid`` twice, with Inception and with CLIP, under two keys). It merges states
exactly across processes and computes the record's values with their display metadata
(``metric_info``: label, unit, direction), taken from the metric classes.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import torch

from tokbench.errors import ConfigError
from tokbench.judges.base import Judge
from tokbench.judges.registry import JUDGES
from tokbench.metrics import METRICS, Metric
from tokbench.suites import MetricConfig, SuiteConfig, default_record_key

#: Metric inputs that are judge features (the judge runs once per batch; metrics share its outputs).
FEATURE_INPUTS = ("real_features", "fake_features", "fake_logits")


def resolve_device(name: str) -> torch.device:
    """A torch device, checked to exist here; under torchrun, ``cuda`` without an index is this
    process's GPU (``LOCAL_RANK``)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a valid torch device (cpu, cuda, cuda:1, mps)") from None
    local = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local is not None:
        device = torch.device("cuda", int(local))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} requested but MPS is not available on this machine")
    return device


def build_judges(suite: SuiteConfig, device: torch.device) -> dict[str, Judge]:
    """Construct every judge the suite declares (resolving and hash-checking their weights)."""
    judges = {}
    for alias, config in suite.judges.items():
        cls = JUDGES.get(config.name)
        try:
            judge = cls(**config.options)
        except TypeError as exc:
            raise ConfigError(f"suite {suite.name!r}: bad options for judge {alias!r}: {exc}") from None
        judges[alias] = judge.to(device).eval()
    return judges


def feature_judges(suite: SuiteConfig, judges: dict[str, Judge]) -> dict[str, Judge]:
    """The judges whose features some metric consumes (others, like LPIPS, are called by metrics)."""
    aliases = {
        m.judge
        for m in suite.metrics
        if m.judge and set(METRICS.get(m.name).inputs) & set(FEATURE_INPUTS)  # class inputs: the widest
    }
    return {alias: judge for alias, judge in judges.items() if alias in aliases}


def output_key(output: str, default: str, key: str) -> str:
    """The record key of one output of a metric whose primary key ``default`` a suite renamed to
    ``key``: ``fid`` → ``fd_clip``, ``fid_count`` → ``fd_clip_count``, ``recall`` → ``pr_recall``."""
    if key == default:
        return output
    if output == default or output.startswith(f"{default}_"):
        return key + output[len(default) :]
    return f"{key}_{output}"


class SuiteMetrics:
    """One metric instance per suite entry, keyed by record key; mergeable; computes record values."""

    def __init__(
        self,
        suite: SuiteConfig,
        judges: dict[str, Judge],
        injected: dict[str, Any] | None = None,
        inject_judges: set[str] | None = None,
    ) -> None:
        """``injected`` maps constructor argument names (e.g. ``reference`` statistics, ``class_names``)
        to values given to every metric whose constructor accepts them; with ``inject_judges``, only
        to the metrics scored by those judges (reference statistics belong to one feature space)."""
        self.suite = suite
        self.entries: dict[str, tuple[MetricConfig, Metric]] = {}
        for config in suite.metrics:
            kwargs = _arguments(config, judges, injected, inject_judges)
            try:
                metric = METRICS.get(config.name)(**kwargs)
            except TypeError as exc:
                raise ConfigError(
                    f"suite {suite.name!r}: bad options for metric {config.name!r}: {exc}"
                ) from None
            self.entries[config.record_key()] = (config, metric)
        self._rebuild = (judges, injected, inject_judges)

    def __iter__(self) -> Iterator[tuple[str, MetricConfig, Metric]]:
        for key, (config, metric) in self.entries.items():
            yield key, config, metric

    def state_dicts(self) -> dict[str, dict[str, Any]]:
        """Every metric's states, by record key (to gather across processes)."""
        return {key: metric.state_dict() for key, (_, metric) in self.entries.items()}

    def merged(self, shards: list[dict[str, dict[str, Any]]]) -> SuiteMetrics:
        """Fresh metrics holding the exact merge of several processes' ``state_dicts``."""
        merged = SuiteMetrics(self.suite, *self._rebuild)
        for states in shards:
            for key, (_, metric) in merged.entries.items():
                metric.merge_state(states[key])
        return merged

    def compute(self, not_applicable: dict[str, str]) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        """Record values and their ``metric_info`` of every entry not in ``not_applicable``.

        An entry whose metric computes nothing (no applicable images) is added to ``not_applicable``.
        """
        values: dict[str, float] = {}
        info: dict[str, dict[str, Any]] = {}
        for key, (config, metric) in self.entries.items():
            if key in not_applicable:
                continue
            result = metric.compute()
            if not result:
                not_applicable[key] = "no applicable images (see the metric's requirements)"
            found = rename_outputs(result, config, type(metric))
            values.update(found[0])
            info.update(found[1])
        return values, info


def rename_outputs(
    result: dict[str, float], config: MetricConfig, cls: type[Metric]
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """A metric's computed outputs under their record keys, and each key's display metadata."""
    default = default_record_key(config.name)
    key = config.record_key()
    values, info = {}, {}
    for output, value in result.items():
        renamed = output_key(output, default, key)
        values[renamed] = value
        described = cls.output_info(renamed) or cls.output_info(output)  # a renamed alias: its label
        if described is not None:
            info[renamed] = {"metric": config.name, **asdict(described)}
    return values, info


def metric_versions(suite: SuiteConfig) -> dict[str, str]:
    """Implementation version of every metric the suite names (part of each track's protocol)."""
    return {m.name: METRICS.get(m.name).implementation_version for m in suite.metrics}


def _arguments(
    config: MetricConfig,
    judges: dict[str, Judge],
    injected: dict[str, Any] | None,
    inject_judges: set[str] | None,
) -> dict[str, Any]:
    accepted = inspect.signature(METRICS.get(config.name).__init__).parameters
    kwargs = dict(config.options)
    if config.judge is not None and "judge" in accepted:
        kwargs["judge"] = judges[config.judge]
    width = getattr(judges.get(config.judge or ""), "feature_dim", None)  # judges that declare it
    if width is not None and "feature_dim" in accepted:
        kwargs.setdefault("feature_dim", width)  # a suite's explicit feature_dim still wins
    if inject_judges is None or config.judge in inject_judges:
        kwargs.update({k: v for k, v in (injected or {}).items() if k in accepted and v is not None})
    return kwargs
