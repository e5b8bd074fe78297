"""The tokbench error hierarchy: every user-facing failure is a ``TokbenchError``.

Messages name the argument or item, the value, what was expected and how to fix it, so the CLI can
print ``str(error)`` as its one-line reason.
"""

from __future__ import annotations


class TokbenchError(Exception):
    """Root of every error tokbench raises on purpose."""


class ConfigError(TokbenchError, ValueError):
    """A bad argument, option, model spec or suite file."""


class RegistryError(ConfigError, KeyError):
    """An unknown or duplicate registry key."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class DataError(TokbenchError):
    """An unreadable, corrupt or unusable dataset item."""


class EmptyRunError(DataError):
    """A run in which no item could be evaluated (every item was skipped, or there were none)."""


class AdapterOutputError(TokbenchError):
    """A model returned something that breaks the adapter contract (shape, dtype, range, NaN/Inf)."""


class WeightsError(TokbenchError):
    """Weights that cannot be found, or whose sha256 does not match."""


class StoreError(TokbenchError):
    """A leaderboard store that cannot be read or written, or a malformed record."""
