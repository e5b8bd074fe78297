"""Every call into a model (``encode``, ``decode``, ``sample``, a pruner inside its VLM) goes through
``call_model``: an exception raised inside the call becomes a one-line ``ModelCallError`` naming the
model, the call, the items and where it was raised, and ``--timeout`` bounds the call's wall time.

The watchdog has three stages. (1) At the timeout a timer thread interrupts the main thread with
SIGALRM, whose handler raises ``ModelTimeoutError`` inside the call: Python code and blocking system
calls (``sleep``, reads, lock waits) stop there and the run ends with a one-line error. (2) A call in C
code that releases the interpreter lock but does not return (a long kernel, a blocked library call with
signals masked) is reported by the timer thread ``GRACE_SECONDS`` later, on one line, and the process
ends (``os._exit(1)``). (3) A call in C code that holds the interpreter lock cannot be reported from
Python at all: ``2 × GRACE_SECONDS`` after the timeout, ``faulthandler`` (a C thread) prints every
thread's stack, the stuck call's frame included, and ends the process. Nothing is half-written in any
case: records and shard files are written to a temporary file and renamed, never during a model call.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tokbench.errors import ModelCallError, ModelTimeoutError, TokbenchError, describe_exception
from tokbench.tracks.checks import short_ids

#: Seconds a timed-out call has, after the interrupt, to unwind before the process is ended.
GRACE_SECONDS = 5.0


def call_model(
    model: str,
    call: str,
    ids: list[str],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    timeout: float | None = None,
    source: str | None = None,
    finish: Callable[[], None] | None = None,
) -> Any:
    """``fn(*args)`` as model call ``call`` on items ``ids``; ``finish`` (a device synchronisation) runs
    inside the timed window. Errors tokbench raises on purpose (``TokbenchError``) pass unchanged."""
    try:
        with _watchdog(f"model {model}: {call}() on items {short_ids(ids)}", timeout):
            result = fn(*args)
            if finish is not None:
                finish()
    except TokbenchError:
        raise
    except Exception as error:
        raise ModelCallError(
            f"model {model}: {call}() raised {describe_exception(error, source)} on items {short_ids(ids)}"
        ) from error
    return result


@contextlib.contextmanager
def _watchdog(what: str, timeout: float | None) -> Iterator[None]:
    """Raise ModelTimeoutError in the block when it runs longer than ``timeout`` seconds (None: off)."""
    if timeout is None:
        yield
        return
    message = f"{what} did not return within {timeout:g} s (--timeout); the run stopped, nothing was stored"
    state = {"active": True}
    lock = threading.Lock()
    finished = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()

    def interrupt(signum: int, frame: Any) -> None:
        if state["active"]:
            raise ModelTimeoutError(message)

    def expire() -> None:
        with lock:
            if not state["active"]:
                return
            if in_main:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
        if not finished.wait(GRACE_SECONDS if in_main else 0.0):
            print(
                f"tokbench: error: {message}; the call did not stop within {GRACE_SECONDS:g} s of the "
                "interrupt, so the process ends now",
                file=sys.stderr,
                flush=True,
            )
            os._exit(1)

    previous = signal.signal(signal.SIGALRM, interrupt) if in_main else None
    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    backstop = _stack_dump_file()
    if backstop is not None:  # stage 3, for a call that never lets the timer thread run
        faulthandler.dump_traceback_later(timeout + 2 * GRACE_SECONDS, exit=True, file=backstop)
    try:
        yield
    finally:
        with lock:
            state["active"] = False
        finished.set()
        timer.cancel()
        if backstop is not None:
            faulthandler.cancel_dump_traceback_later()
        if in_main:
            signal.signal(signal.SIGALRM, previous)


def _stack_dump_file() -> Any:
    """The process's standard error, when it is a real file faulthandler can write to, else None."""
    stream = sys.__stderr__
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return stream
