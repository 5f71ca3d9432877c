"""Decide on the event loop when nothing needs I/O; otherwise in one worker thread.

A check (a permission, loading the user, a throttle) is plain synchronous code
that may query the database. :func:`run_off_loop_if_needed` first runs it on the
event loop with I/O forbidden: code that would block calls :func:`require_io`,
which raises :class:`NeedsIO`, and the whole check then runs again in one
worker thread (``database_sync_to_async``), where I/O is allowed. With every
answer cached in a process-local cache, a handshake is decided without a thread
hop; with nothing cached, it costs exactly one. Django's own
``SynchronousOnlyOperation`` (an ORM call on the event loop) counts as
:class:`NeedsIO` too, as a safety net.

Side effects done during a run that ends in :class:`NeedsIO` must not happen
twice: :func:`once` remembers results per decision (a throttle counts each
handshake once).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.core.exceptions import SynchronousOnlyOperation

from .trace import mark, rewind

__all__ = ["NeedsIO", "attempt_without_io", "decision", "io_allowed", "once", "require_io", "run_off_loop_if_needed"]

T = TypeVar("T")

_io_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("wsreject_io_allowed", default=True)
_memo: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("wsreject_memo", default=None)


class NeedsIO(Exception):
    """Raised on the event loop by code that would block: run the check in a thread."""


def io_allowed() -> bool:
    """Whether the running check may block (query the database, call a cache server)."""
    return _io_allowed.get()


def require_io() -> None:
    """Call before blocking: raises :class:`NeedsIO` while a check runs on the event loop."""
    if not _io_allowed.get():
        raise NeedsIO


def once(key: str, compute: Callable[[], T]) -> T:
    """``compute()`` at most once per decision (kept across the retry in a thread)."""
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]  # type: ignore[no-any-return]


@contextmanager
def decision() -> Iterator[None]:
    """Scope of one decision: what :func:`once` remembers lives until it ends (nested ones share it)."""
    if _memo.get() is not None:
        yield
        return
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def attempt_without_io(check: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
    """``(True, check(*args))`` if it completes with I/O forbidden, else ``(False, None)``."""
    token = _io_allowed.set(False)
    position = mark()
    try:
        return True, check(*args)
    except (NeedsIO, SynchronousOnlyOperation):
        rewind(position)  # it runs again in a thread: recorded there
        return False, None
    finally:
        _io_allowed.reset(token)


async def run_off_loop_if_needed(check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``: on the event loop if it needs no I/O, else in one worker thread."""
    token = _memo.set({}) if _memo.get() is None else None
    try:
        done, result = attempt_without_io(check, *args)
        if done:
            return result  # type: ignore[return-value]
        value: T = await database_sync_to_async(check)(*args)
        return value
    finally:
        if token is not None:
            _memo.reset(token)
