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

__all__ = ["Step", "active", "record", "tracing"]


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
