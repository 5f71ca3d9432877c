"""Recent denials for the admin, recorded without touching the handshake path.

A ``connection_denied`` receiver keeps, per process, the last
``WSREJECT["DENIAL_LOG_SIZE"]`` denials in a ring and a count per status: an
append and an increment on the event loop, nothing more. At most once a second
a worker thread copies that snapshot into the cache, under
``wsreject:denials:<host>:<pid>`` (listed in ``wsreject:denials:index``,
expiring an hour after the process's last denial), so that the admin of any
process sees the denials of every process sharing the cache. Under a flood the
cache gets one write per second per process: the ring holds the newest
entries, the counts all of them. Nothing is written to the database; the
``wsreject`` logger's line per denial remains the complete record.

For the admin's chart the same receiver counts denials per minute and status
series (:data:`SERIES`, a bounded set); the flush adds those counts to shared
minute buckets (``wsreject:denials:minute:<minute>:<series>``, atomic increments,
expiring after two hours), which :func:`denials_per_minute` reads for every
process. It also reports each denial to :func:`wsreject.metrics.observe_handshake`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ..cache.versions import cache_failed, get_cache
from ..conf import wsreject_settings
from ..denial import DenialResponse, is_unavailable
from ..metrics import DENIED, observe_handshake
from ..scope import client_address, escape, known_user_id
from ..signals import connection_denied

__all__ = [
    "CHART_MINUTES",
    "FLUSH_INTERVAL",
    "HOSTNAME",
    "INDEX_ATTEMPTS",
    "INDEX_KEY",
    "INDEX_SETTLE",
    "MAX_TEXT",
    "MINUTE_TIMEOUT",
    "NAMED_STATUSES",
    "SERIES",
    "SNAPSHOT_TIMEOUT",
    "DenialEntry",
    "DenialLog",
    "add_to_minutes",
    "connect_denial_log",
    "denial_log",
    "denials_per_minute",
    "minute_key",
    "process_name",
    "recent_denials",
    "status_series",
]

logger = logging.getLogger("wsreject")

INDEX_KEY = "wsreject:denials:index"
FLUSH_INTERVAL = 1.0
SNAPSHOT_TIMEOUT = 3600
MAX_TEXT = 200
HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class DenialEntry:
    time: float
    path: str
    status: int
    detail: str
    user: str
    client: str
    denial_mode: str
    process: str

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=UTC)


_process = f"{HOSTNAME}:{os.getpid()}"


def _forked() -> None:
    global _process
    _process = f"{HOSTNAME}:{os.getpid()}"


os.register_at_fork(after_in_child=_forked)


def process_name() -> str:
    """``host:pid`` of this process (forked workers get their own)."""
    return _process


# What record() keeps: the entry's fields as they come, escaped and cut only when read.
_Raw = tuple[float, Any, int, str, Any, Any, str]


class DenialLog:
    """This process's recent denials, and their periodic copy in the cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.entries: deque[_Raw] = deque(maxlen=max(wsreject_settings.DENIAL_LOG_SIZE, 1))
            self.counts: dict[int, int] = {}
            self.total = 0
            self.per_minute: dict[tuple[int, str], int] = {}  # not yet added to the cache's minute buckets

    def record(self, scope: dict[str, Any], response: DenialResponse, denial_mode: str) -> None:
        size = wsreject_settings.DENIAL_LOG_SIZE
        if size <= 0:
            return
        status = response.status_code
        now = time.time()
        raw = (now, scope.get("path", ""), status, response.detail, known_user_id(scope), scope.get("client"), denial_mode)
        bucket = (int(now // 60), status_series(status))
        with self._lock:
            if self.entries.maxlen != size:
                self.entries = deque(self.entries, maxlen=size)
            self.entries.append(raw)
            self.counts[status] = self.counts.get(status, 0) + 1
            self.total += 1
            self.per_minute[bucket] = self.per_minute.get(bucket, 0) + 1
        pending = self._flush_loop
        if pending is None or pending.is_closed():
            self._schedule_flush()

    @staticmethod
    def entry(raw: _Raw) -> DenialEntry:
        when, path, status, detail, user, client, denial_mode = raw
        return DenialEntry(
            time=when,
            path=escape(path)[:MAX_TEXT],
            status=status,
            detail=escape(detail)[:MAX_TEXT],
            user=user,
            client=client_address({"client": client}),
            denial_mode=denial_mode,
            process=process_name(),
        )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            raws = list(self.entries)
            counts, total = dict(self.counts), self.total
        return {
            "process": process_name(),
            "updated": time.time(),
            "entries": [asdict(self.entry(raw)) for raw in raws],
            "counts": counts,
            "total": total,
        }

    def pending_minutes(self) -> dict[tuple[int, str], int]:
        """This process's per-minute counts not yet in the cache."""
        with self._lock:
            return dict(self.per_minute)

    def _keep_pending(self, pending: dict[tuple[int, str], int]) -> None:
        """Put back counts the cache did not take (the next flush retries; older than the chart: dropped)."""
        oldest = int(time.time() // 60) - CHART_MINUTES
        with self._lock:
            for bucket, count in pending.items():
                if bucket[0] > oldest:
                    self.per_minute[bucket] = self.per_minute.get(bucket, 0) + count

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop here: the next denial on one schedules the copy
        if self._flush_loop is loop and not loop.is_closed():
            return  # one already pending on this loop
        self._flush_loop = loop
        loop.call_later(FLUSH_INTERVAL, self._start_flush, loop)

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_loop = None
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.run_in_executor(None, self.flush)

    def flush(self) -> None:
        """Copy the snapshot into the cache (from a worker thread); errors are logged."""
        with self._lock:
            pending, self.per_minute = self.per_minute, {}
        try:
            cache = get_cache()
            add_to_minutes(cache, pending)
            pending = {}
            snapshot = self.snapshot()
            key = f"wsreject:denials:{snapshot['process']}"
            cache.set(key, snapshot, timeout=SNAPSHOT_TIMEOUT)
            register(cache, snapshot["process"], snapshot["updated"])
        except Exception as exc:
            self._keep_pending(pending)
            if is_unavailable(exc):  # a cache outage: said once a minute, like every cache failure
                cache_failed(exc)
            else:
                logger.exception("Could not copy recent denials to the cache")


def register(cache: Any, process: str, now: float) -> None:
    """List ``process`` in the shared index of processes with denials.

    The index is one cache entry that every process rewrites, so two processes flushing at
    once can each overwrite the other's name (a process with no later denial then stayed
    unlisted). Each writer reads the index back and writes again while its name is missing.
    """
    for attempt in range(INDEX_ATTEMPTS):
        index = cache.get(INDEX_KEY) or {}
        if now - index.get(process, 0) <= SNAPSHOT_TIMEOUT / 4:
            return  # listed, and recently enough
        index = {name: seen for name, seen in index.items() if now - seen < SNAPSHOT_TIMEOUT}
        index[process] = now
        cache.set(INDEX_KEY, index, timeout=SNAPSHOT_TIMEOUT)
        time.sleep(INDEX_SETTLE * (attempt + 1))  # let a concurrent writer land before reading back


#: How often a process writes its name into the index, and how long it lets a concurrent
#: writer land between attempts (seconds; in the flush's worker thread).
INDEX_ATTEMPTS = 3
INDEX_SETTLE = 0.05


# --- denials per minute, for the chart --------------------------------------------------------------

CHART_MINUTES = 60
MINUTE_TIMEOUT = 2 * 3600
#: The chart's series: these statuses each, every other status under its class. At most
#: ``len(SERIES) * CHART_MINUTES`` live keys, whatever statuses a flood produces.
NAMED_STATUSES = (400, 401, 403, 404, 429, 500, 503)
SERIES = tuple(str(status) for status in NAMED_STATUSES) + ("other 4xx", "other 5xx", "other")


def status_series(status: int) -> str:
    """The chart series a denial status counts in (a bounded set)."""
    if status in NAMED_STATUSES:
        return str(status)
    if 400 <= status < 600:
        return f"other {status // 100}xx"
    return "other"


def minute_key(minute: int, series: str) -> str:
    return f"wsreject:denials:minute:{minute}:{series.replace(' ', '-')}"


def add_to_minutes(cache: Any, pending: dict[tuple[int, str], int]) -> None:
    """Add this process's counts to the shared minute buckets (atomic increments)."""
    for (minute, series), count in pending.items():
        key = minute_key(minute, series)
        cache.add(key, 0, timeout=MINUTE_TIMEOUT)
        try:
            cache.incr(key, count)
        except ValueError:  # expired between add and incr
            cache.set(key, count, timeout=MINUTE_TIMEOUT)


def denials_per_minute(now: float | None = None) -> tuple[int, dict[str, list[int]]]:
    """The last ``CHART_MINUTES`` minutes (oldest first) of every process: the first minute and,
    per series with any denial, its counts. This process's unflushed counts are included."""
    last = int((time.time() if now is None else now) // 60)
    first = last - CHART_MINUTES + 1
    keys = {minute_key(minute, series): (minute, series) for minute in range(first, last + 1) for series in SERIES}
    counts: dict[tuple[int, str], int] = {}
    try:
        for key, value in get_cache().get_many(list(keys)).items():
            counts[keys[key]] = int(value)
    except Exception:
        logger.exception("Could not read the denials per minute from the cache")
    for bucket, value in denial_log.pending_minutes().items():
        counts[bucket] = counts.get(bucket, 0) + value
    series_counts = {
        series: [counts.get((minute, series), 0) for minute in range(first, last + 1)] for series in SERIES
    }
    return first, {series: values for series, values in series_counts.items() if any(values)}


denial_log = DenialLog()


def _record(sender: Any, scope: dict[str, Any], response: DenialResponse, denial_mode: str, **kwargs: Any) -> None:
    denial_log.record(scope, response, denial_mode)
    observe_handshake(scope, DENIED, response.status_code)


def connect_denial_log() -> None:
    """Connect the ``connection_denied`` receiver; called by ``WSRejectConfig.ready()``."""
    connection_denied.connect(_record, dispatch_uid="wsreject.denial_log")


def recent_denials(limit: int | None = None) -> dict[str, Any]:
    """Every process's recent denials, newest first, with counts per status (read-only)."""
    limit = limit or wsreject_settings.DENIAL_LOG_SIZE
    local = denial_log.snapshot()
    snapshots = [local]
    try:
        cache = get_cache()
        others = [f"wsreject:denials:{name}" for name in (cache.get(INDEX_KEY) or {}) if name != local["process"]]
        snapshots += list(cache.get_many(others).values())
    except Exception:
        logger.exception("Could not read recent denials from the cache")
    counts: dict[int, int] = {}
    entries = []
    for snapshot in snapshots:
        entries += [DenialEntry(**entry) for entry in snapshot["entries"]]
        for status, count in snapshot["counts"].items():
            counts[int(status)] = counts.get(int(status), 0) + count
    entries.sort(key=lambda entry: entry.time, reverse=True)
    return {
        "entries": entries[:limit],
        "counts": dict(sorted(counts.items())),
        "total": sum(snapshot["total"] for snapshot in snapshots),
        "processes": sorted(snapshot["process"] for snapshot in snapshots if snapshot["total"]),
    }
