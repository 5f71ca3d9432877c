"""What the world hears of denials: one log line each, a signal, and no flood.

Every denial is logged on the ``wsreject`` logger at INFO and announced with the
:data:`~wsreject.signals.connection_denied` signal. At normal rates the log is
complete: one line per denial. Under a flood (more than ``WSREJECT["LOG_RATE"]``
denials in one second in this process) the lines past that rate are counted
instead of written, and one summary line per second says how many were left out,
per status — so a flood of denials never becomes a flood of log lines, and no
denial goes uncounted. ``LOG_RATE`` None logs every denial. The signal is sent for every denial.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from .conf import wsreject_settings
from .scope import Scope, client_address, escape, known_user_id
from .signals import connection_denied

if TYPE_CHECKING:
    from .denial import DenialResponse

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
    for receiver, result in connection_denied.send_robust(sender=None, scope=scope, response=response, denial_mode=denial_mode):
        if isinstance(result, Exception):
            logger.error("connection_denied receiver %r failed", receiver, exc_info=result)


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
