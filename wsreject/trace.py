"""An optional record of the checks one decision ran, in order: ``(check, result)``.

Off by default. :func:`tracing` turns it on for the code run inside (a context
variable, so it follows the decision into worker threads); each layer that
decides calls :func:`record`. While no :func:`tracing` block is open anywhere in the
process, every function here costs one read of a module global: the context variable
is read only while some trace is on.
``wsreject_explain`` and the admin's "Explain a decision" page read it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Step", "active", "mark", "record", "rewind", "tracing"]


@dataclass(frozen=True)
class Step:
    """One check: its name, and None when it passed, else the denial (or error) it gave."""

    check: str
    refusal: BaseException | None = None
    note: str = ""  # what it saw, when that helps ("no rule covers this endpoint")

    @property
    def passed(self) -> bool:
        return self.refusal is None


_steps: contextvars.ContextVar[list[Step] | None] = contextvars.ContextVar("wsreject_trace", default=None)

# How many tracing() blocks are open in this process (any thread, any task). While it is 0,
# no context can hold a trace, so the context variable need not be read.
_open = 0
_open_lock = threading.Lock()


def active() -> bool:
    return _open > 0 and _steps.get() is not None


def record(check: str, refusal: BaseException | None = None, note: str = "") -> None:
    """Note a check's result when a trace is on (nothing otherwise)."""
    if _open:
        steps = _steps.get()
        if steps is not None:
            steps.append(Step(check, refusal, note))


def mark() -> int:
    """Where the trace is now (-1 when off), for :func:`rewind`."""
    if not _open:
        return -1
    steps = _steps.get()
    return -1 if steps is None else len(steps)


def rewind(position: int) -> None:
    """Forget the steps since :func:`mark`: an attempt that will run again (on the event
    loop, then in a thread: :mod:`wsreject.offload`) is recorded once."""
    if position < 0:
        return
    steps = _steps.get()
    if steps is not None:
        del steps[position:]


@contextmanager
def tracing() -> Iterator[list[Step]]:
    """Collect the steps of what runs inside into the list yielded."""
    global _open
    steps: list[Step] = []
    with _open_lock:
        _open += 1
    token = _steps.set(steps)
    try:
        yield steps
    finally:
        _steps.reset(token)
        with _open_lock:
            _open -= 1


def describe(value: Any) -> str:
    """A check's name for the trace: its ``repr``, else its class name."""
    try:
        return repr(value)
    except Exception:
        return type(value).__name__
