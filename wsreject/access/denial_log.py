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

from ..conf import wsreject_settings
from ..denial import DenialResponse, is_unavailable
from ..scope import client_address, escape, known_user_id
from ..signals import connection_denied
from .versions import cache_failed, get_cache

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

    def record(self, scope: dict[str, Any], response: DenialResponse, denial_mode: str) -> None:
        size = wsreject_settings.DENIAL_LOG_SIZE
        if size <= 0:
            return
        status = response.status_code
        raw = (
            time.time(),
            scope.get("path", ""),
            status,
            response.detail,
            known_user_id(scope),
            scope.get("client"),
            denial_mode,
        )
        with self._lock:
            if self.entries.maxlen != size:
                self.entries = deque(self.entries, maxlen=size)
            self.entries.append(raw)
            self.counts[status] = self.counts.get(status, 0) + 1
            self.total += 1
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
        try:
            cache = get_cache()
            snapshot = self.snapshot()
            key = f"wsreject:denials:{snapshot['process']}"
            cache.set(key, snapshot, timeout=SNAPSHOT_TIMEOUT)
            index = cache.get(INDEX_KEY) or {}
            now = snapshot["updated"]
            if now - index.get(snapshot["process"], 0) > SNAPSHOT_TIMEOUT / 4:
                index = {name: seen for name, seen in index.items() if now - seen < SNAPSHOT_TIMEOUT}
                index[snapshot["process"]] = now
                cache.set(INDEX_KEY, index, timeout=SNAPSHOT_TIMEOUT)
        except Exception as exc:
            if is_unavailable(exc):  # a cache outage: said once a minute, like every cache failure
                cache_failed(exc)
            else:
                logger.exception("Could not copy recent denials to the cache")


denial_log = DenialLog()


def _record(sender: Any, scope: dict[str, Any], response: DenialResponse, denial_mode: str, **kwargs: Any) -> None:
    denial_log.record(scope, response, denial_mode)


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
