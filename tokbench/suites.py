"""Suites are versioned data: YAML files in ``tasks/`` loaded into a strict dataclass.

``include: other`` inherits another suite file (local keys win; cycles are detected). Unknown keys
raise, and nothing in a suite file is executed. Files over ``MAX_SUITE_BYTES`` and YAML anchors and
aliases are refused before anything is built from the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from tokbench.errors import ConfigError

BUILTIN_SUITE_DIR = Path(__file__).parent / "tasks"
SUITE_PATH_ENV = "TOKBENCH_SUITE_PATH"
SUITE_ENTRY_POINT_GROUP = "tokbench.suites"
KINDS = ("tokenizer", "generator", "pruner", "video-tokenizer")
RECON_TRACK = "recon"
RECORD_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
#: Largest suite file read (built-in suites are a few kB).
MAX_SUITE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class MetricConfig:
    """A metric by registry key with its constructor options and, optionally, the judge it uses."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    judge: str | None = None
    #: The record key of the metric's primary output (default: the metric class's ``key``); its other
    #: outputs are renamed with it (``fid`` → ``fd_clip``, ``fid_count`` → ``fd_clip_count``).
    key: str | None = None

    def record_key(self) -> str:
        """The key under which this entry's primary output is recorded."""
        return self.key or default_record_key(self.name)


def default_record_key(metric: str) -> str:
    """The record key a registered metric's primary output has unless a suite renames it."""
    from tokbench.metrics import METRICS

    return METRICS.get(metric).key or metric.replace("-", "_")


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
    #: How the suite runs (tokbench.tracks); "recon" is the reconstruction track.
    track: str = "recon"
    #: Track-specific protocol settings (validated by the track), e.g. gen's sample count.
    settings: dict[str, Any] = field(default_factory=dict)
    #: The record key that ranks the suite's leaderboard (e.g. ``psnr``), or None.
    primary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain JSON-able data (it enters the protocol hash).

        ``track`` and ``settings`` appear only when set (not default), so suites without them keep
        their hashes. Record keys and ``primary`` name results without changing them, so they stay
        out of the hash (``record_keys`` lists them; a test pins them per suite version).
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
        if self.track != RECON_TRACK:
            resolved["track"] = self.track
        if self.settings:
            resolved["settings"] = dict(self.settings)
        return resolved

    def record_keys(self) -> dict[str, str]:
        """Record key of each metric entry's primary output → the metric's registry name."""
        return {m.record_key(): m.name for m in self.metrics}


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
    """Directories searched for ``<name>.yaml``: ``$TOKBENCH_SUITE_PATH`` entries, directories that
    packages register in the ``tokbench.suites`` entry-point group, then the built-ins."""
    extra = [Path(p) for p in os.environ.get(SUITE_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, *plugin_suite_dirs(), BUILTIN_SUITE_DIR]


def plugin_suite_dirs() -> list[Path]:
    """Suite directories of installed plugins: each ``tokbench.suites`` entry point names a package
    (its folder holds the YAML files) or a ``module:attr`` that is a path."""
    directories = []
    for entry_point in entry_points(group=SUITE_ENTRY_POINT_GROUP):
        target = entry_point.load()
        location = getattr(target, "__file__", None)
        directories.append(Path(location).parent if location else Path(target))
    return directories


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
    """Load, merge includes and validate a suite (errors name the file and the entry)."""
    path = find_suite_file(name)
    raw = _load_with_includes(path, chain=())
    return _to_config(raw, source=f"{name} ({path})" if Path(name) != path else str(path))


def _load_with_includes(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(p.name for p in (*chain, resolved))
        raise ConfigError(f"suite include cycle: {cycle}")
    size = path.stat().st_size
    if size > MAX_SUITE_BYTES:
        raise ConfigError(f"suite file {path} has {size:,} bytes; a suite file may have {MAX_SUITE_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
        _refuse_aliases(text, path)
        data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"suite file {path} is not UTF-8 text: {exc}") from None
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


def _refuse_aliases(text: str, path: Path) -> None:
    """Raise ConfigError at the first YAML anchor or alias: a suite never needs them, and an alias bomb
    (a few hundred bytes expanding to billions of nodes) would hang whatever walks the result."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise ConfigError(
                f"suite file {path}, line {event.start_mark.line + 1}: YAML {kind}{event.anchor} is not "
                "allowed; write the value out (suite files may not use anchors or aliases)"
            )


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
    optional = {"description", "judges", "track", "settings", "primary"}
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
        primary=None if raw.get("primary") is None else str(raw["primary"]),
    )
    _check_references(config, source)
    return config


def _check_references(config: SuiteConfig, source: str) -> None:
    """Every metric and judge exists, every metric's judge is declared, record keys are unique."""
    from tokbench.judges.registry import JUDGES
    from tokbench.metrics import METRICS

    for alias, judge in config.judges.items():
        if judge.name not in JUDGES:
            raise ConfigError(f"suite {source!r}, judge {alias!r}: {JUDGES.miss_message(judge.name)}")
    keys: dict[str, int] = {}
    for position, metric in enumerate(config.metrics, start=1):
        where = f"suite {source!r}, metric #{position} ({metric.name!r})"
        if metric.name not in METRICS:
            raise ConfigError(f"{where}: {METRICS.miss_message(metric.name)}")
        if metric.judge is not None and metric.judge not in config.judges:
            raise ConfigError(
                f"{where} uses judge {metric.judge!r}, which the suite does not declare; "
                f"declared: {', '.join(config.judges) or '(none)'}"
            )
        key = metric.record_key()
        if key in keys:
            raise ConfigError(
                f"{where}: record key {key!r} is also metric #{keys[key]}'s; give one of them "
                "'key: <name>' (e.g. {name: fid, judge: clip, key: fd_clip})"
            )
        keys[key] = position
    if config.primary is not None and not RECORD_KEY.match(config.primary):
        raise ConfigError(
            f"suite {source!r}: primary must be a record key (snake_case), got {config.primary!r}"
        )


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
        if (
            not isinstance(entry, dict)
            or "name" not in entry
            or set(entry) - {"name", "options", "judge", "key"}
        ):
            raise ConfigError(
                f"suite {source!r}: each metric is a mapping with 'name' and optional 'options', "
                f"'judge' and 'key', got {entry!r}"
            )
        key = entry.get("key")
        if key is not None and not (isinstance(key, str) and RECORD_KEY.match(key)):
            raise ConfigError(
                f"suite {source!r}: key of metric {entry['name']!r} must be snake_case "
                f"(letters, digits, '_'), got {key!r}"
            )
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"suite {source!r}: options of metric {entry['name']!r} must be a mapping")
        judge = entry.get("judge")
        configs.append(
            MetricConfig(
                name=str(entry["name"]),
                options=dict(options),
                judge=None if judge is None else str(judge),
                key=key,
            )
        )
    return tuple(configs)
