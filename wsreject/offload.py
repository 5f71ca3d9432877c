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

I/O that has an asyncio client needs no thread: ``once(key, compute, awaitable=...)``
on the event loop raises :class:`NeedsAwait`; the decision awaits ``awaitable()`` on
the loop, remembers its result (or its exception) under ``key``, and runs the check
again there, where :func:`once` answers from memory (a throttle on Redis: one round
trip, no thread hop). In a worker thread ``compute()`` runs instead.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
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


class NeedsAwait(NeedsIO):
    """Raised on the event loop by :func:`once`: await ``compute()`` on the loop, remember the
    outcome under ``key``, run the check again (a :class:`NeedsIO` where nothing awaits it)."""

    def __init__(self, key: str, compute: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(key)
        self.key = key
        self.compute = compute


class _Raised:
    """An awaited computation's exception, raised again where :func:`once` is asked for it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


#: How many awaits one check may ask for before it runs in a thread instead.
MAX_AWAITS = 8


def io_allowed() -> bool:
    """Whether the running check may block (query the database, call a cache server)."""
    return _io_allowed.get()


def require_io() -> None:
    """Call before blocking: raises :class:`NeedsIO` while a check runs on the event loop."""
    if not _io_allowed.get():
        raise NeedsIO


def once(key: str, compute: Callable[[], T], *, awaitable: Callable[[], Awaitable[T]] | None = None) -> T:
    """``compute()`` at most once per decision (kept across the retry in a thread).

    With ``awaitable``, on the event loop: :class:`NeedsAwait`, so that the decision awaits
    ``awaitable()`` there instead (its result, or exception, is what this call answers next)."""
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        if awaitable is not None and not _io_allowed.get():
            raise NeedsAwait(key, awaitable)
        memo[key] = compute()
    value = memo[key]
    if isinstance(value, _Raised):
        raise value.exc
    return value  # type: ignore[no-any-return]


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


async def attempt_on_loop(check: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
    """:func:`attempt_without_io`, awaiting on the loop the I/O the check asks for with
    :class:`NeedsAwait` and running it again; ``(False, None)``: it needs a thread.
    Call inside :func:`decision` (the awaited results are remembered there)."""
    memo = _memo.get()
    for _ in range(MAX_AWAITS + 1):
        token = _io_allowed.set(False)
        position = mark()
        try:
            return True, check(*args)
        except NeedsAwait as exc:
            rewind(position)
            need: NeedsAwait | None = exc
        except (NeedsIO, SynchronousOnlyOperation):
            rewind(position)
            need = None
        finally:
            _io_allowed.reset(token)
        if need is None or memo is None or need.key in memo:
            break
        try:
            memo[need.key] = await need.compute()
        except Exception as exc:  # raised where the check asks for it again (and handled there)
            memo[need.key] = _Raised(exc)
    return False, None


async def run_off_loop_if_needed(check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``: on the event loop if it needs no I/O (or only I/O it can await
    there, :class:`NeedsAwait`), else in one worker thread."""
    token = _memo.set({}) if _memo.get() is None else None
    try:
        done, result = await attempt_on_loop(check, *args)
        if done:
            return result  # type: ignore[return-value]
        value: T = await database_sync_to_async(check)(*args)
        return value
    finally:
        if token is not None:
            _memo.reset(token)
