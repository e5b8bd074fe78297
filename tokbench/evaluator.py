"""The one evaluator: every suite, whatever its track, runs through ``run_request``.

It owns what is common to every track, so that a policy is written once and holds everywhere:
the track is looked up from the suite, plans the run, and the record is claimed (an identical
protocol and model already in the store is returned, not re-run); then, with TF32 and autocast off
and every process seeded, each ``torchrun`` process measures its share, rank 0 merges the shares
exactly, a run that used no item raises ``EmptyRunError``, and the record is built and stored.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch

from tokbench import distributed
from tokbench.errors import ConfigError, DataError, EmptyRunError
from tokbench.recording import RunResult, build_record, claim_record, store_result
from tokbench.tracks import TRACKS
from tokbench.tracks.base import (
    Measurement,
    Plan,
    RunContext,
    RunOutcome,
    Shard,
    Track,
    TrackRequest,
    check_kind,
)


def run_request(request: TrackRequest) -> RunResult:
    """Plan, measure, merge and store one run of ``request.suite`` (see the module docstring)."""
    track = TRACKS.get(request.suite.track)()
    check_kind(track, request.suite)
    saving = request.save_reconstructions is not None
    if saving and not track.saves_reconstructions:
        raise ConfigError(
            f"--save-reconstructions applies to reconstruction suites (recon, video-recon), not to "
            f"suite {request.suite.name!r} (track {track.name!r})"
        )
    with exact_float32():
        seed_everything(request.options.seed)
        plan = track.plan(request)
        slot = claim_record(
            request.suite.name,
            plan.protocol,
            plan.model.spec,
            request.store,
            request.force or saving,  # files are written by a run, not found in the store
            request.options,
        )
        if slot.existing is not None:
            return slot.existing
        plan.results = {name: run_request(required) for name, required in plan.requires.items()}
        outcome = measure(track, plan, request)
    if request.options.on_error == "fail" and outcome.skipped:  # a track that counted instead of raising
        first = outcome.skipped[0]
        raise DataError(
            f"suite {request.suite.name!r}, model {plan.model.spec}: {len(outcome.skipped)} item(s) could "
            f"not be evaluated under --on-error fail, first {first['item']}: {first['reason']}"
        )
    record = build_record(
        slot.record_id, request.suite, slot.digest, plan.protocol, plan.model, outcome, request.options
    )
    path = slot.store.path_for(record) if slot.store is not None else None
    track.write_artifacts(plan, record, path, request.force)
    return store_result(slot.store, record, request.force or slot.replaces)


def measure(track: Track, plan: Plan, request: TrackRequest) -> RunOutcome:
    """Every process measures its share; rank 0 merges them; every process gets the outcome."""
    context = distributed.current(plan.device)
    run = RunContext(request.options, plan.device, context, plan.model)
    torch.manual_seed(request.options.seed + context.rank)
    started = time.perf_counter()
    with torch.inference_mode(), torch.autocast(plan.device.type, enabled=False):
        run.shard.payload = track.measure(plan, run)
    shards = context.gather(run.shard)
    used = context.broadcast(sum(s.items_used for s in shards) if shards is not None else None)
    if used == 0:
        skipped = sorted((e for s in shards or [run.shard] for e in s.skipped), key=lambda e: e[0])
        reasons = "; ".join(f"{e['item']}: {e['reason']}" for _, e in skipped[:3])
        raise EmptyRunError(
            f"suite {request.suite.name!r}: no item of {plan.items_requested} could be evaluated with "
            f"{plan.model.spec}" + (f" ({reasons})" if reasons else "")
        )
    outcome = None
    if shards is not None:
        with torch.inference_mode():
            merged = track.merge(plan, shards)
        outcome = _outcome(merged, shards, plan, time.perf_counter() - started)
    return context.broadcast(outcome)


def _outcome(merged: Measurement, shards: list[Shard], plan: Plan, seconds: float) -> RunOutcome:
    used = sum(s.items_used for s in shards)
    phases: Counter[str] = Counter()
    for shard in shards:
        phases.update(shard.seconds)
    return RunOutcome(
        metrics=merged.metrics,
        items_requested=plan.items_requested,
        items_used=used,
        skipped=[entry for _, entry in sorted((e for s in shards for e in s.skipped), key=lambda e: e[0])],
        not_applicable=merged.not_applicable,
        timings={
            "total_seconds": seconds,
            **{phase: float(value) for phase, value in sorted(phases.items())},
            **merged.timings,
            "items_per_second": used / seconds if seconds > 0 else 0.0,
            "processes": len(shards),
        },
        extra=merged.extra,
        metric_info=merged.metric_info,
    )


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Disable TF32 for the duration of a run (it shifts FID); restore the caller's settings."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (tracks seed their own draws too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
