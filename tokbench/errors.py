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


class ModelCallError(AdapterOutputError):
    """An exception raised inside a model's own code (``encode``, ``decode``, ``sample``, a pruner
    step): it names the model, the call and the items, and counts those items under ``--on-error skip``."""


class ModelTimeoutError(TokbenchError):
    """A model call ran longer than ``--timeout`` seconds; the run stops (a stalled call is never skipped)."""


def describe_exception(error: BaseException, source: str | None = None) -> str:
    """``Type: first line of the message (file line N)``: where ``error`` was raised, on one line.

    The location is the innermost traceback frame in ``source`` when given (a plugin file), else the
    innermost frame; a SyntaxError gives its own file and line.
    """
    first_line = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    text = type(error).__name__ + (f": {first_line}" if first_line else "")
    if isinstance(error, SyntaxError) and error.filename:
        return f"{type(error).__name__}: {error.msg} ({error.filename} line {error.lineno})"
    frames = []
    trace = error.__traceback__
    while trace is not None:
        frames.append((trace.tb_frame.f_code.co_filename, trace.tb_lineno))
        trace = trace.tb_next
    frames = [frame for frame in frames if not frame[0].startswith("<")] or frames  # not <frozen ...>
    if source is not None:
        frames = [frame for frame in frames if frame[0] == source] or frames
    if frames:
        text += f" ({frames[-1][0]} line {frames[-1][1]})"
    return text
