"""One small registry type: named objects, lazy built-ins, entry-point plugins, helpful misses.

Built-ins are listed as ``"module:attr"`` strings so that listing names imports nothing; an entry is
imported on first ``get``. Third-party packages register through an entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from tokbench.errors import RegistryError

T = TypeVar("T")

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def import_attr(target: str) -> object:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"expected 'module:attr', got {target!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no attribute {attr!r}") from None


class Registry(Generic[T]):
    """A thread-safe mapping from lowercase keys to objects or lazy ``"module:attr"`` targets."""

    def __init__(self, kind: str, base: type | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self.base = base
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T | str] = {}
        self._lock = threading.RLock()
        self._plugins_loaded = entry_point_group is None

    def register(self, key: str, target: T | str) -> None:
        """Add ``key``; re-registering the same target is a no-op, another target raises."""
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise RegistryError(
                f"{self.kind} key {key!r} is invalid: use lowercase letters, digits, '-', '_' or '.'"
            )
        with self._lock:
            existing = self._entries.get(key)
            conflict = existing is not None and existing is not target and existing != target
            if conflict and not (isinstance(existing, str) and self._materialise_matches(existing, target)):
                raise RegistryError(f"{self.kind} {key!r} is already registered to {existing!r}")
            self._entries[key] = target

    def unregister(self, key: str) -> None:
        """Remove ``key`` (e.g. an entry a test registered); an unknown key raises RegistryError."""
        self._load_plugins()  # else a plugin removed before the first lookup would come back
        with self._lock:
            if key not in self._entries:
                raise RegistryError(self.miss_message(key))
            del self._entries[key]

    def _materialise_matches(self, lazy: str, target: T | str) -> bool:
        # A built-in class registering itself by decorator when its lazy string is imported.
        return not isinstance(target, str) and f"{target.__module__}:{target.__qualname__}" == lazy

    def names(self) -> list[str]:
        """All keys, sorted, including plugins; imports nothing but entry-point metadata."""
        self._load_plugins()
        with self._lock:
            return sorted(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self.names()

    def get(self, key: str) -> T:
        """Return the object for ``key``, importing it on first use."""
        self._load_plugins()
        with self._lock:
            if key not in self._entries:
                raise RegistryError(self.miss_message(key))
            entry = self._entries[key]
            if isinstance(entry, str):
                entry = import_attr(entry)
                self._check_base(key, entry)
                self._entries[key] = entry
            return entry  # type: ignore[return-value]

    def _check_base(self, key: str, obj: object) -> None:
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise RegistryError(
                f"{self.kind} {key!r} resolves to {obj!r}, which is not a subclass of {self.base.__name__}"
            )

    def miss_message(self, key: str) -> str:
        """The message for an unknown key: close matches and the available names."""
        names = sorted(self._entries)
        close = difflib.get_close_matches(key, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {key!r}.{hint} Available: {', '.join(names) or '(none)'}"

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            for ep in entry_points(group=self.entry_point_group):
                self.register(ep.name, ep.value)
