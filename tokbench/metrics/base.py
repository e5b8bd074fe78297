"""Metric base class: declared states, ``update``, ``compute``, exact ``merge_state``, no I/O.

Every accumulator is declared once with ``add_state(name, default, reduction)``. Reductions are
``"sum"`` (float64 sums and counts) or ``"cat"`` (per-instance records); nothing is merged by
averaging, so merge-then-compute equals one pass over the union, whatever the batching.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tokbench.errors import ConfigError, TokbenchError

_REDUCTIONS = ("sum", "cat")
#: Labels of the companion outputs ``<key>_<suffix>`` of a metric's primary key.
_COMPANION_LABELS = {"ci95": "95% CI", "std": "std", "count": "count"}


@dataclass(frozen=True)
class OutputInfo:
    """How to show one record key: its display label, better direction (None: neither) and unit."""

    label: str
    higher_is_better: bool | None
    unit: str = ""


class Metric(ABC):
    """A streaming metric. Subclasses declare states in ``__init__`` and implement two methods.

    Read-only class attributes describe the metric's primary output (``key``, ``label``, ``unit``,
    ``higher_is_better``); ``output_info`` describes every key ``compute()`` returns, and records carry
    that description so reports never keep their own list of directions.
    """

    #: Names of the runner batch fields ``update`` takes, in order (e.g. originals, reconstructions).
    inputs: ClassVar[tuple[str, ...]] = ()
    #: Bump when the computed value changes for the same inputs; goes into the protocol hash.
    implementation_version: ClassVar[str] = "1"
    #: The record key of the primary output, its display name and unit ("" when none).
    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = None
    #: Other record keys that published tables use for the primary output, with their labels.
    aliases: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self._defaults: dict[str, Any] = {}
        self._reductions: dict[str, str] = {}

    def add_state(self, name: str, default: torch.Tensor | list, reduction: str) -> None:
        """Declare an accumulator with its initial value and merge rule."""
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"state {name!r}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if reduction == "sum" and not isinstance(default, torch.Tensor):
            raise ConfigError(f"state {name!r}: a 'sum' state needs a tensor default")
        if reduction == "cat" and default != []:
            raise ConfigError(f"state {name!r}: a 'cat' state starts as an empty list")
        self._defaults[name] = default
        self._reductions[name] = reduction
        setattr(self, name, copy.deepcopy(default))

    @abstractmethod
    def update(self, *args: Any) -> None:
        """Accumulate one batch into the declared states."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Return flat ``{record_key: value}`` from the states alone."""

    def options(self) -> dict[str, Any]:
        """Constructor options that change the value; they enter the protocol hash."""
        return {}

    @classmethod
    def output_info(cls, output: str) -> OutputInfo | None:
        """The info of one key ``compute()`` returns (or of an alias of ``key``), else None.

        The primary key and its aliases get the metric's label, direction and unit; their companions
        ``<key>_ci95`` and ``<key>_std`` (in the metric's unit) and ``<key>_count`` have no direction.
        """
        names = {cls.key: cls.label, **cls.aliases}
        if output in names:
            return OutputInfo(names[output], cls.higher_is_better, cls.unit)
        base, _, suffix = output.rpartition("_")
        if base in names and suffix in _COMPANION_LABELS:
            unit = "" if suffix == "count" else cls.unit
            return OutputInfo(f"{names[base]} {_COMPANION_LABELS[suffix]}", None, unit)
        return None

    def reset(self) -> None:
        """Return every state to its default."""
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))

    def state_dict(self) -> dict[str, Any]:
        """The states, detached and on the CPU (for merging across processes or resuming)."""
        out: dict[str, Any] = {}
        for name in self._defaults:
            value = getattr(self, name)
            out[name] = value.detach().cpu().clone() if isinstance(value, torch.Tensor) else list(value)
        return out

    def merge_state(self, other: Metric | dict[str, Any]) -> None:
        """Fold another instance's states (or a ``state_dict``) into this one."""
        if isinstance(other, Metric):
            if type(other) is not type(self) or other.options() != self.options():
                raise ConfigError(
                    f"cannot merge {type(other).__name__}{other.options()} into "
                    f"{type(self).__name__}{self.options()}"
                )
            other = other.state_dict()
        missing = set(self._defaults) - set(other)
        if missing:
            raise ConfigError(f"{type(self).__name__}.merge_state: missing states {sorted(missing)}")
        for name, reduction in self._reductions.items():
            mine = getattr(self, name)
            if reduction == "sum":
                setattr(self, name, mine + other[name].to(mine.device, mine.dtype))
            else:
                mine.extend(other[name])


class MeanMetric(Metric):
    """Mean of per-image values with a 95% Student-t confidence half-width.

    Per-image values are kept as a per-instance record (a few bytes per image), so shards merge by
    concatenation and the variance is computed in two passes, without cancellation. Subclasses
    implement ``per_image`` and set ``key``; ``compute`` returns ``key`` and ``key_ci95``. An
    infinite per-image value (PSNR of a lossless copy) makes the mean infinite and the interval
    undefined, so the interval is then omitted (NaN is never reported).
    """

    def __init__(self) -> None:
        super().__init__()
        self.add_state("values", [], "cat")

    @abstractmethod
    def per_image(self, *args: torch.Tensor) -> torch.Tensor:
        """One float64 value per image of the batch."""

    def update(self, *args: torch.Tensor) -> None:
        values = self.per_image(*args).detach().to("cpu", torch.float64).flatten()
        if torch.isnan(values).any():
            raise TokbenchError(f"{type(self).__name__} produced NaN for a batch")
        self.values.append(values)

    def compute(self) -> dict[str, float]:
        if not self.values:
            raise TokbenchError(f"{type(self).__name__}.compute called before any update")
        values = torch.cat(self.values)
        if torch.isinf(values).any():
            return {self.key: float(values.sum())}
        n = values.numel()
        mean = float(values.mean())
        result = {self.key: mean}
        if n > 1:
            standard_error = float(values.std(correction=1)) / math.sqrt(n)
            result[f"{self.key}_ci95"] = student_t_975(n - 1) * standard_error
        return result


def student_t_975(degrees_of_freedom: int) -> float:
    """The 97.5% quantile of Student's t distribution (two-sided 95% interval).

    ``scipy.special.stdtrit`` is what ``scipy.stats.t.ppf`` evaluates (the same values, checked for
    1 … 100,000 degrees of freedom), without importing ``scipy.stats`` (0.4–1 s per run).
    """
    from scipy.special import stdtrit

    return float(stdtrit(degrees_of_freedom, 0.975))
