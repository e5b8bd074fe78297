"""Freed heap pages go back to the system between batches (``tokbench.tracks.heap``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokbench.tracks.heap import HeapTrimmer

#: Fragments a heap as a metric loop does (large temporaries freed between small rows kept), then
#: prints the resident set before and after one trim.
FRAGMENT = """
import torch
from tokbench.tracks.heap import TRIMMER
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) // 1024
kept = []
for _ in range(600):
    temporary = torch.empty(100_000).fill_(1.0)
    kept.append(torch.empty(2048).fill_(1.0))
    del temporary
before = rss()
print(TRIMMER.trim(), before, rss())
"""


def test_trims_at_most_once_per_interval() -> None:
    now = [100.0]
    calls = []
    trimmer = HeapTrimmer(interval=1.0, clock=lambda: now[0])
    trimmer.function = calls.append
    assert trimmer.trim() and calls == [0]
    now[0] += 0.5
    assert not trimmer.trim() and trimmer.trim(force=True) and len(calls) == 2
    now[0] += 0.99
    assert not trimmer.trim()
    now[0] += 0.01
    assert trimmer.trim() and len(calls) == 3
    trimmer.function = None  # a C library without malloc_trim
    assert not trimmer.trim(force=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc")
def test_a_fragmented_heap_shrinks_to_the_live_data() -> None:
    """600 × (a 400 KB temporary, an 8 KB row kept): ~240 MB resident, ~5 MB of it alive."""
    output = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True)
    trimmed, before, after = output.stdout.split()
    assert trimmed == "True"
    assert int(before) - int(after) > 150, (before, after)
