"""Model specs: ``family:key=value,...`` strings, parsed once into typed constructor arguments.

A spec names a registered model (``jpeg:quality=30``), a class in a Python file
(``path/to/my_tok.py:MyTok``) or a class in an importable module (``pkg.module:MyTok``); arguments
follow after one more colon (``my_tok.py:MyTok:size=3``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokbench.errors import ConfigError, describe_exception
from tokbench.registry import import_attr


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: where the class comes from and the raw ``key=value`` arguments."""

    target: str
    raw_args: dict[str, str] = field(default_factory=dict)

    @property
    def is_plugin(self) -> bool:
        return ":" in self.target


def parse_model_spec(spec: str) -> ModelSpec:
    """Split ``spec`` into a target and its arguments; raise ConfigError on malformed text."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"model spec must be a non-empty string, got {spec!r}")
    parts = spec.strip().split(":")
    raw_args: dict[str, str] = {}
    first_arg = next((i for i, part in enumerate(parts) if "=" in part), len(parts))
    if first_arg < len(parts):  # argument values may contain colons (subsampling=4:2:0)
        raw_args = _parse_args(":".join(parts[first_arg:]), spec)
        parts = parts[:first_arg]
    if len(parts) > 2 or not all(parts):
        raise ConfigError(
            f"model spec {spec!r} is malformed: expected NAME[:key=value,...], "
            "path/to/file.py:Class[:key=value,...] or package.module:Class[:key=value,...]"
        )
    return ModelSpec(target=":".join(parts), raw_args=raw_args)


def _parse_args(text: str, spec: str) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"model spec {spec!r}: argument {item!r} is not key=value")
        if key in args:
            raise ConfigError(f"model spec {spec!r}: argument {key!r} is given twice")
        args[key] = value.strip()
    return args


@dataclass(frozen=True)
class Plugin:
    """A plugin class with its identity: the class name and the sha256 of the file defining it (for a
    package, also its distribution and version); where it was found is recorded in ``source``."""

    cls: type
    #: Spec name in records: ``Class#<sha12>``, or ``Class#<distribution>/<version>#<sha12>``.
    identity: str
    #: Readable name, free of path spelling: ``my_tok.py:Class`` or ``package.module:Class``.
    name: str
    #: What the record keeps of the source: as given, path, sha256, module, distribution, version.
    source: dict[str, Any]


def load_plugin(target: str) -> Plugin:
    """Import the class named by ``file.py:Class`` or ``package.module:Class`` and identify it by its
    code, not by how its path was spelled; import errors are one-line ConfigErrors naming file and line."""
    location, _, class_name = target.rpartition(":")
    if location.endswith(".py"):
        path = Path(location).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"plugin file {location!r} does not exist (from model spec {target!r})")
        code = path.read_bytes()
        module = _exec_plugin_file(path, code, location)
        if not hasattr(module, class_name):
            raise ConfigError(f"plugin file {location!r} defines no {class_name!r}")
        obj = getattr(module, class_name)
        digest = _source_sha256(obj, code, path)
        return Plugin(
            obj,
            f"{class_name}#{digest[:12]}",
            f"{path.name}:{class_name}",
            {"given_as": target, "path": str(path), "sha256": digest},
        )
    try:
        obj = import_attr(target)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {location!r} for model spec {target!r}: {exc}") from None
    except ConfigError:
        raise
    except Exception as exc:  # the plugin's own import error, on one line
        raise ConfigError(
            f"cannot import {location!r} for model spec {target!r}: {describe_exception(exc)}"
        ) from exc
    if not isinstance(obj, type):
        raise ConfigError(f"{target!r} is not a class")
    file = _defining_file(obj)
    digest = _source_sha256(obj, None, None)
    distribution = _distribution(location)
    identity = f"{class_name}#" + (f"{distribution[0]}/{distribution[1]}#" if distribution else "")
    source = {"given_as": target, "module": location, "path": file, "sha256": digest}
    if distribution:
        source.update(distribution=distribution[0], version=distribution[1])
    return Plugin(obj, identity + digest[:12], target, source)


def _exec_plugin_file(path: Path, code: bytes, location: str) -> types.ModuleType:
    """The module of a plugin file, run from exactly the bytes that were hashed (so an edited file is a
    new module, and the code that runs is the code that is identified)."""
    module_name = "tokbench_plugin_" + hashlib.sha256(str(path).encode() + b"\n" + code).hexdigest()[:16]
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None:
        raise ConfigError(f"cannot import plugin file {location!r}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        exec(compile(code, str(path), "exec"), module.__dict__)
    except Exception as exc:  # SyntaxError, a missing import, any import-time error
        del sys.modules[module_name]
        raise ConfigError(
            f"cannot import plugin file {location!r}: {describe_exception(exc, str(path))}"
        ) from exc
    return module


def _source_sha256(cls: type, code: bytes | None, path: Path | None) -> str:
    """sha256 of the plugin file (``code``) and, when the class is defined in another file, of that."""
    digest = hashlib.sha256(code or b"")
    file = _defining_file(cls)
    if file is not None and (path is None or Path(file).resolve() != path) and Path(file).is_file():
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def _defining_file(cls: type) -> str | None:
    """The source file that defines ``cls``, or None (a built-in or generated class)."""
    try:
        return inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None


def _distribution(module: str) -> tuple[str, str] | None:
    """The installed distribution (name, version) providing ``module``'s top-level package, if any."""
    names = importlib.metadata.packages_distributions().get(module.partition(".")[0]) or []
    if not names:
        return None
    return names[0], importlib.metadata.version(names[0])


def coerce_arguments(cls: type, raw_args: dict[str, str], spec: str) -> dict[str, Any]:
    """Turn string arguments into the types ``cls.__init__`` declares; reject unknown keys."""
    parameters = _init_parameters(cls)
    hints = typing.get_type_hints(cls.__init__)
    unknown = sorted(set(raw_args) - set(parameters))
    if unknown:
        accepted = ", ".join(parameters) or "(none)"
        raise ConfigError(
            f"model spec {spec!r}: unknown argument(s) {', '.join(unknown)} for "
            f"{cls.__name__}; accepted: {accepted}"
        )
    return {key: _coerce(value, hints.get(key, str), key, spec) for key, value in raw_args.items()}


def resolved_arguments(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """The full argument set of a constructed adapter: declared defaults overlaid by ``given``."""
    resolved = {name: p.default for name, p in _init_parameters(cls).items() if p.default is not p.empty}
    resolved.update(given)
    return resolved


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(cls.__init__)
    return {
        name: p
        for name, p in list(signature.parameters.items())[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _coerce(value: str, annotation: Any, key: str, spec: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value.lower() in ("none", "null") and len(options) < len(typing.get_args(annotation)):
            return None
        annotation = options[0] if len(options) == 1 else str
    try:
        if annotation is bool:
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if annotation in (int, float, str):
            return annotation(value)
    except ValueError:
        raise ConfigError(
            f"model spec {spec!r}: argument {key}={value!r} is not a valid {annotation.__name__}"
        ) from None
    return value


def canonical_spec(name: str, args: dict[str, Any]) -> str:
    """A stable spec string for records: the name and every resolved argument, sorted."""
    if not args:
        return name
    return name + ":" + ",".join(f"{k}={args[k]}" for k in sorted(args))
