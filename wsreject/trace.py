"""An optional record of the checks one decision ran, in order: ``(check, result)``.

Off by default. :func:`tracing` turns it on for the code run inside (a context
variable, so it follows the decision into worker threads); each layer that
decides calls :func:`record`, which costs one context-variable read when off.
``wsreject_explain`` and the admin's "Explain a decision" page read it.
"""

from __future__ import annotations

import contextvars
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


def active() -> bool:
    return _steps.get() is not None


def record(check: str, refusal: BaseException | None = None, note: str = "") -> None:
    """Note a check's result when a trace is on (nothing otherwise)."""
    steps = _steps.get()
    if steps is not None:
        steps.append(Step(check, refusal, note))


def mark() -> int:
    """Where the trace is now (-1 when off), for :func:`rewind`."""
    steps = _steps.get()
    return -1 if steps is None else len(steps)


def rewind(position: int) -> None:
    """Forget the steps since :func:`mark`: an attempt that will run again (on the event
    loop, then in a thread: :mod:`wsreject.offload`) is recorded once."""
    steps = _steps.get()
    if steps is not None and position >= 0:
        del steps[position:]


@contextmanager
def tracing() -> Iterator[list[Step]]:
    """Collect the steps of what runs inside into the list yielded."""
    steps: list[Step] = []
    token = _steps.set(steps)
    try:
        yield steps
    finally:
        _steps.reset(token)


def describe(value: Any) -> str:
    """A check's name for the trace: its ``repr``, else its class name."""
    try:
        return repr(value)
    except Exception:
        return type(value).__name__
