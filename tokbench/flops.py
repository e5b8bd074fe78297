"""Counting the floating-point operations a function runs (``torch.utils.flop_counter``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.flop_counter import FlopCounterMode


def measured_flops(function: Callable[[], Any]) -> int:
    """FLOPs ``torch.utils.flop_counter`` counts while ``function`` runs (fused CPU attention unseen)."""
    with FlopCounterMode(display=False) as counter:
        function()
    return int(counter.get_total_flops())
