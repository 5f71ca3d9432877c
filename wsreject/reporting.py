"""What the world hears of denials: one log line each, a signal, and no flood.

Every denial is logged on the ``wsreject`` logger at INFO and announced with the
:data:`~wsreject.signals.connection_denied` signal. At normal rates the log is
complete: one line per denial. Under a flood (more than ``WSREJECT["LOG_RATE"]``
denials in one second in this process) the lines past that rate are counted
instead of written, and one summary line per second says how many were left out,
per status — so a flood of denials never becomes a flood of log lines, and no
denial goes uncounted. ``LOG_RATE`` None logs every denial. The signal is sent for every denial.

Unexpected errors (the ``500`` of a bug) are limited the same way: the first of a kind (its
exception type and where it was raised) is logged with its traceback, the same error again in
the next minute is counted, and one line at the end of that minute says how many there were — a
client that found a bug cannot turn it into a flood of tracebacks. ``LOG_RATE`` None logs
every one with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from .conf import wsreject_settings
from .scope import client_address, escape, known_user_id
from .signals import connection_denied
from .types import Scope

if TYPE_CHECKING:
    from .denial import DenialResponse

__all__ = [
    "UNCOMMITTED_TEST_DATA",
    "DenialLogLimiter",
    "ErrorLogLimiter",
    "error_kind",
    "error_limiter",
    "limiter",
    "log_unexpected",
    "record_denial",
    "uncommitted_test_data",
    "warn_rate_limited",
]

logger = logging.getLogger("wsreject")


class DenialLogLimiter:
    """Let at most ``rate`` denial lines a second through; count and summarise the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = 0.0
        self._written = 0
        self._skipped: Counter[int] = Counter()
        self._summary_scheduled = False

    def admit(self, status: int, rate: int | None, now: float | None = None) -> bool:
        """Whether this denial's line may be written now."""
        if rate is None:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._window >= 1.0:
                self._flush_locked()
                self._window, self._written = now, 0
            if self._written < rate:
                self._written += 1
                return True
            self._skipped[status] += 1
            schedule = not self._summary_scheduled
            self._summary_scheduled = True
        if schedule:
            self._schedule_summary()
        return False

    def reset(self) -> None:
        """Forget the current window (tests)."""
        with self._lock:
            self._window, self._written = 0.0, 0
            self._skipped.clear()
            self._summary_scheduled = False

    def _schedule_summary(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sync caller): the next window flushes it
            return
        loop.call_later(1.0, self.flush)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._summary_scheduled = False
        if not self._skipped:
            return
        total = sum(self._skipped.values())
        per_status = ", ".join(f"{status}: {count}" for status, count in sorted(self._skipped.items()))
        logger.info("WebSocket denied: %d more denials not logged one by one (%s)", total, per_status)
        self._skipped.clear()


limiter = DenialLogLimiter()


def record_denial(scope: Scope, response: DenialResponse, denial_mode: str) -> None:
    """Log the denial (rate-limited) and send ``connection_denied``; receivers' errors are logged."""
    if logger.isEnabledFor(logging.INFO) and limiter.admit(response.status_code, wsreject_settings.LOG_RATE):
        logger.info(
            "WebSocket denied: path=%s status=%d detail=%s user=%s client=%s mode=%s",
            escape(scope.get("path", "")),
            response.status_code,
            escape(response.detail),
            known_user_id(scope),
            client_address(scope),
            denial_mode,
        )
    for receiver, result in connection_denied.send_robust(
        sender=None, scope=scope, response=response, denial_mode=denial_mode
    ):
        if isinstance(result, Exception):  # a receiver's bug runs on every denial: limited too
            log_unexpected(f"connection_denied receiver {receiver!r} failed", result)


class ErrorLogLimiter:
    """One traceback per kind of error per ``interval`` seconds; the repeats are counted and
    summarised in one line when the interval ends."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._first: dict[str, float] = {}  # kind -> when its traceback was logged
        self._held: Counter[str] = Counter()
        self._messages: dict[str, str] = {}

    def admit(self, kind: str, message: str, now: float | None = None) -> bool:
        """Whether this error's traceback may be logged now (else it is counted)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._flush_locked(now)
            if kind not in self._first:
                self._first[kind] = now
                self._messages[kind] = message
                return True
            self._held[kind] += 1
            schedule = self._held[kind] == 1
        if schedule:
            self._schedule_summary()
        return False

    def reset(self) -> None:
        """Forget every kind (tests)."""
        with self._lock:
            self._first.clear()
            self._held.clear()
            self._messages.clear()

    def _schedule_summary(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sync caller): the next error flushes it
            return
        loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked(time.monotonic())

    def _flush_locked(self, now: float) -> None:
        for kind, first in list(self._first.items()):
            if now - first < self.interval:
                continue
            held = self._held.pop(kind, 0)
            message = self._messages.pop(kind)
            del self._first[kind]
            if held:
                logger.error("%s: %d more of the same error (%s) in the last %.0f s, not logged one by one", message, held, kind, self.interval)


error_limiter = ErrorLogLimiter()


def error_kind(exc: BaseException) -> str:
    """An error's kind: its type and the place it was raised (the innermost frame of its traceback)."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{kind} at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else kind


def log_unexpected(message: str, exc: BaseException) -> None:
    """Log an unexpected error at ERROR: with its traceback the first time of its kind in a
    minute, counted after that (see the module docstring)."""
    if wsreject_settings.LOG_RATE is None or error_limiter.admit(error_kind(exc), message):
        logger.error(message, exc_info=exc)


#: What a test that keeps its data in an uncommitted transaction is told (``uncommitted_test_data``).
UNCOMMITTED_TEST_DATA = (
    "in a test, the database is locked by the test's own transaction, which wsreject's worker threads "
    "cannot see into: use the transactional_db fixture or @pytest.mark.django_db(transaction=True) "
    "(Django's TransactionTestCase), not db (TestCase)"
)
_SQLITE_LOCKED = ("database table is locked", "database is locked")


def uncommitted_test_data(exc: BaseException) -> bool:
    """Whether ``exc`` is what a ``db`` test (data in a transaction that is never committed) gets when
    wsreject reads the database from another thread: SQLite's "table is locked", under Django's test
    environment (``setup_test_environment``, which pytest-django and Django's runner call)."""
    from django.core import mail
    from django.db import OperationalError

    if not hasattr(mail, "outbox"):  # set by setup_test_environment only
        return False
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, OperationalError) and any(text in str(current) for text in _SQLITE_LOCKED):
            return True
        current = current.__cause__ or current.__context__
    return False


_warned: dict[str, tuple[float, int]] = {}
_warned_lock = threading.Lock()


def warn_rate_limited(key: str, message: str, *args: Any, interval: float = 60.0, level: int = logging.WARNING) -> None:
    """Log ``message`` (a WARNING unless ``level`` says otherwise) for ``key`` at most once per
    ``interval`` seconds, saying how many were held back."""
    now = time.monotonic()
    with _warned_lock:
        last, held = _warned.get(key, (-interval, 0))
        if now - last < interval:
            _warned[key] = (last, held + 1)
            return
        _warned[key] = (now, 0)
    suffix = f" ({held} more like this in the last {interval:.0f} s)" if held else ""
    logger.log(level, message + suffix, *args)
