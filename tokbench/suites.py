"""Suites are versioned data: YAML files in ``tasks/`` loaded into a strict dataclass.

``include: other`` inherits another suite file (local keys win; cycles are detected). Unknown keys
raise, and nothing in a suite file is executed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from tokbench.errors import ConfigError

BUILTIN_SUITE_DIR = Path(__file__).parent / "tasks"
SUITE_PATH_ENV = "TOKBENCH_SUITE_PATH"
KINDS = ("tokenizer", "generator", "pruner")
RECON_TRACK = "recon"


@dataclass(frozen=True)
class MetricConfig:
    """A metric by registry key with its constructor options and, optionally, the judge it uses."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    judge: str | None = None


@dataclass(frozen=True)
class JudgeConfig:
    """A judge by registry key with its options (e.g. the Inception resize convention)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteConfig:
    """A resolved suite: what data, which preprocessing, which metrics, and its version."""

    name: str
    version: str
    kind: str
    metrics: tuple[MetricConfig, ...]
    #: Dataset spec and preprocessing; required by the recon track, optional for others (gen).
    dataset: str | None = None
    preprocess: dict[str, Any] | None = None
    judges: dict[str, JudgeConfig] = field(default_factory=dict)
    description: str = ""
    #: pFID's codebook perturbation {alpha, beta, delta, seed} (tokbench.perturb), or None.
    perturbation: dict[str, Any] | None = None
    #: How the suite runs (tokbench.tracks); "recon" is the reconstruction runner.
    track: str = "recon"
    #: Track-specific protocol settings (validated by the track), e.g. gen's sample count.
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain JSON-able data (it enters the protocol hash).

        ``perturbation``, ``track`` and ``settings`` appear only when set (not default), so suites
        without them keep their hashes.
        """
        resolved = {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "dataset": self.dataset,
            "preprocess": None if self.preprocess is None else dict(self.preprocess),
            "metrics": [{"name": m.name, "options": dict(m.options), "judge": m.judge} for m in self.metrics],
            "judges": {
                alias: {"name": j.name, "options": dict(j.options)} for alias, j in self.judges.items()
            },
        }
        if self.perturbation is not None:
            resolved["perturbation"] = dict(self.perturbation)
        if self.track != RECON_TRACK:
            resolved["track"] = self.track
        if self.settings:
            resolved["settings"] = dict(self.settings)
        return resolved


def with_judge_options(suite: SuiteConfig, overrides: dict[str, dict[str, Any]]) -> SuiteConfig:
    """``suite`` with some judge options replaced, e.g. ``{"clip": {"weights": "random"}}``.

    The overrides become part of the resolved config, hence of the protocol hash. An alias the suite
    does not declare raises ``ConfigError`` naming the declared ones.
    """
    unknown = sorted(set(overrides) - set(suite.judges))
    if unknown:
        raise ConfigError(
            f"suite {suite.name!r} has no judge {', '.join(map(repr, unknown))}; "
            f"its judges are {', '.join(suite.judges) or '(none)'}"
        )
    judges = {
        alias: JudgeConfig(name=config.name, options={**config.options, **overrides.get(alias, {})})
        for alias, config in suite.judges.items()
    }
    return replace(suite, judges=judges)


def suite_search_path() -> list[Path]:
    """Directories searched for ``<name>.yaml``: ``$TOKBENCH_SUITE_PATH`` entries, then built-ins."""
    extra = [Path(p) for p in os.environ.get(SUITE_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, BUILTIN_SUITE_DIR]


def list_suites() -> list[str]:
    """Names of every suite file on the search path."""
    return sorted({p.stem for d in suite_search_path() if d.is_dir() for p in d.glob("*.yaml")})


def find_suite_file(name: str) -> Path:
    """The file that defines suite ``name`` (or ``name`` itself when it is a path to a YAML file)."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    for directory in suite_search_path():
        path = directory / f"{name}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"unknown suite {name!r}. Available: {', '.join(list_suites()) or '(none)'}")


def load_suite(name: str) -> SuiteConfig:
    """Load, merge includes and validate a suite."""
    raw = _load_with_includes(find_suite_file(name), chain=())
    return _to_config(raw, source=name)


def _load_with_includes(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(p.name for p in (*chain, resolved))
        raise ConfigError(f"suite include cycle: {cycle}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"suite file {path} must hold a mapping, got {type(data).__name__}")
    parent_name = data.pop("include", None)
    if parent_name is None:
        return data
    parent_path = path.parent / f"{parent_name}.yaml"
    if not parent_path.is_file():
        parent_path = find_suite_file(parent_name)
    merged = _load_with_includes(parent_path, (*chain, resolved))
    merged.update(data)
    return merged


def _to_config(raw: dict[str, Any], source: str) -> SuiteConfig:
    allowed = {f.name for f in fields(SuiteConfig)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"suite {source!r}: unknown key(s) {', '.join(unknown)}; allowed: {sorted(allowed)}"
        )
    track = raw.get("track", RECON_TRACK)
    if not isinstance(track, str) or not track:
        raise ConfigError(f"suite {source!r}: track must be a non-empty string, got {track!r}")
    optional = {"description", "judges", "perturbation", "track", "settings"}
    if track != RECON_TRACK:
        optional |= {"dataset", "preprocess"}
    required = {f.name for f in fields(SuiteConfig) if f.name not in optional}
    missing = sorted(required - set(raw))
    if missing:
        raise ConfigError(f"suite {source!r}: missing key(s) {', '.join(missing)}")
    if raw["kind"] not in KINDS:
        raise ConfigError(f"suite {source!r}: kind must be one of {KINDS}, got {raw['kind']!r}")
    version = raw["version"]
    if not isinstance(version, str) or not version:
        raise ConfigError(f"suite {source!r}: version must be a quoted non-empty string, got {version!r}")
    preprocess = raw.get("preprocess")
    if preprocess is not None and (not isinstance(preprocess, dict) or "name" not in preprocess):
        raise ConfigError(f"suite {source!r}: preprocess must be a mapping with a 'name'")
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"suite {source!r}: settings must be a mapping, got {type(settings).__name__}")
    config = SuiteConfig(
        name=str(raw["name"]),
        version=version,
        kind=raw["kind"],
        dataset=None if raw.get("dataset") is None else str(raw["dataset"]),
        preprocess=None if preprocess is None else dict(preprocess),
        track=track,
        settings=dict(settings),
        metrics=_metric_configs(raw["metrics"], source),
        judges=_judge_configs(raw.get("judges") or {}, source),
        description=str(raw.get("description", "")),
        perturbation=_perturbation(raw.get("perturbation"), raw["kind"], source),
    )
    unknown_judges = sorted({m.judge for m in config.metrics if m.judge} - set(config.judges))
    if unknown_judges:
        raise ConfigError(
            f"suite {source!r}: metrics use undeclared judge(s) {', '.join(unknown_judges)}; "
            f"declared: {', '.join(config.judges) or '(none)'}"
        )
    return config


PERTURBATION_KEYS = ("alpha", "beta", "delta", "seed")


def _perturbation(entry: Any, kind: str, source: str) -> dict[str, Any] | None:
    """The ``perturbation`` mapping, validated by ``CodebookPerturbation``; all four keys required."""
    if entry is None:
        return None
    if kind != "tokenizer":
        raise ConfigError(f"suite {source!r}: perturbation applies to tokenizer suites, not {kind!r}")
    if not isinstance(entry, dict) or set(entry) != set(PERTURBATION_KEYS):
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ConfigError(
            f"suite {source!r}: perturbation must be a mapping with exactly the keys "
            f"{', '.join(PERTURBATION_KEYS)}; got {got}"
        )
    from tokbench.perturb import CodebookPerturbation

    try:
        checked = CodebookPerturbation(**entry)
    except ConfigError as exc:
        raise ConfigError(f"suite {source!r}: {exc}") from None
    return {key: getattr(checked, key) for key in PERTURBATION_KEYS}


def _judge_configs(entries: Any, source: str) -> dict[str, JudgeConfig]:
    if not isinstance(entries, dict):
        raise ConfigError(f"suite {source!r}: judges must be a mapping from alias to {{name, options}}")
    configs = {}
    for alias, entry in entries.items():
        if not isinstance(entry, dict) or "name" not in entry or set(entry) - {"name", "options"}:
            raise ConfigError(
                f"suite {source!r}: judge {alias!r} must be a mapping with 'name' and optional 'options'"
            )
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"suite {source!r}: options of judge {alias!r} must be a mapping")
        configs[str(alias)] = JudgeConfig(name=str(entry["name"]), options=dict(options))
    return configs


def _metric_configs(entries: Any, source: str) -> tuple[MetricConfig, ...]:
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"suite {source!r}: metrics must be a non-empty list")
    configs = []
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or set(entry) - {"name", "options", "judge"}:
            raise ConfigError(
                f"suite {source!r}: each metric is a mapping with 'name' and optional 'options' and "
                f"'judge', got {entry!r}"
            )
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"suite {source!r}: options of metric {entry['name']!r} must be a mapping")
        judge = entry.get("judge")
        configs.append(
            MetricConfig(
                name=str(entry["name"]), options=dict(options), judge=None if judge is None else str(judge)
            )
        )
    return tuple(configs)
