"""Whole-feature-set states: rows gathered in a content-defined order, one copy, any dtype."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from tokbench.errors import ConfigError
from tokbench.metrics.feature_sets import gather_rows


def _hash_sorted(rows: torch.Tensor) -> torch.Tensor:
    """The canonical order written out: rows sorted (stably) by the blake2b-64 of their float32 bytes."""
    keys = [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "big") for r in rows.numpy()]
    return rows[torch.from_numpy(np.argsort(np.array(keys, dtype=np.uint64), kind="stable"))]


ROWS = torch.randn(23, 5, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rows_come_in_hash_order_whatever_the_parts(dtype: torch.dtype) -> None:
    expected = _hash_sorted(ROWS).to(dtype)
    for cuts in ((23,), (1, 22), (7, 7, 9), (5,) * 4 + (3,)):
        parts = list(ROWS.split(list(cuts)))
        for ordered in (parts, parts[::-1]):
            gathered = gather_rows(ordered, "M", "features", dtype)
            assert gathered.dtype == dtype and torch.equal(gathered, expected), cuts


def test_duplicate_rows_and_errors() -> None:
    doubled = torch.cat([ROWS[:3], ROWS[:3]])
    assert torch.equal(gather_rows([doubled[:4], doubled[4:]], "M", "f"), _hash_sorted(doubled))
    assert gather_rows([], "M", "f").shape == (0, 0)
    with pytest.raises(ConfigError, match=r"M: f batches have different dimensions \[4, 5\]"):
        gather_rows([ROWS[:2], ROWS[:2, :4]], "M", "f")
