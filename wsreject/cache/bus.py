"""The invalidation bus: "this cache key changed", pushed to every process through Redis pub/sub.

A process that keeps copies of shared cache entries in memory (the versions, the access rules, a
credential's owner; see :mod:`wsreject.cache.versions`) must forget one as soon as another process
changes it. Whoever changes a key :func:`publish`\\ es it on one channel per Redis cache; every
process listening on that cache hears it in a daemon thread and hands it to its listeners
(:func:`add_listener`): the local copy forgets the key, and anyone else interested (revoking open
connections, say) learns what changed.

A push can be lost: the subscription is not up yet, Redis restarted, a network drop. So a copy is
trusted only while :meth:`Bus.live` is true, never longer than ``WSREJECT["VERSION_RECHECK"]``
seconds in any case, and every (re)subscription resets the copies (the reset listeners), since
what was published meanwhile was not heard. Only Django's ``RedisCache`` has a bus; with any other
shared cache every handshake reads the cache, as before.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.core.cache import BaseCache
from django.core.cache.backends.redis import RedisCache

from ..reporting import warn_rate_limited

__all__ = ["POLL", "Bus", "Listener", "Reset", "add_listener", "bus_for", "channel_name", "has_bus", "publish", "stop_all"]

logger = logging.getLogger("wsreject")

Listener = Callable[[str], None]
Reset = Callable[[], None]

_listeners: list[Listener] = []
_resets: list[Reset] = []
_lock = threading.Lock()
_buses: dict[int, Bus] = {}

#: Bounds of the wait between two attempts to (re)subscribe.
RETRY_FIRST, RETRY_MAX = 0.1, 2.0
#: How long one wait for a message lasts: how quickly a stopped bus notices it.
POLL = 1.0


def add_listener(on_key: Listener, on_reset: Reset | None = None) -> None:
    """Call ``on_key(key)`` for each key published by any process, ``on_reset()`` whenever pushes may
    have been missed (before the first subscription and at every reconnection)."""
    with _lock:
        if on_key not in _listeners:
            _listeners.append(on_key)
        if on_reset is not None and on_reset not in _resets:
            _resets.append(on_reset)


def has_bus(cache: BaseCache) -> bool:
    """Django's ``RedisCache`` whose client hands out redis-py clients (any version that has one)."""
    return isinstance(cache, RedisCache) and callable(getattr(getattr(cache, "_cache", None), "get_client", None))


def channel_name(cache: RedisCache) -> str:
    """One channel per Redis database and key prefix: pub/sub is server-wide, caches are not."""
    try:
        db = _redis(cache)._get_connection_pool(True).connection_kwargs.get("db", 0)
    except Exception:  # another client layout: the key prefix still separates projects
        db = 0
    return cache.make_key(f"wsreject:bus:{db}")


def _redis(cache: RedisCache) -> Any:
    """Django's client of the cache (``RedisCacheClient``): its pools and redis-py clients."""
    return cast(Any, cache)._cache


def publish(cache: BaseCache, keys: Iterable[str]) -> None:
    """Tell every process that ``keys`` changed (without a bus: this process's listeners only)."""
    keys = [key for key in keys if key]
    if not keys:
        return
    if not isinstance(cache, RedisCache) or not has_bus(cache):
        for key in keys:  # this process's own changes reach its open connections at once
            _deliver(key)
        return
    try:
        _redis(cache).get_client(write=True).publish(channel_name(cache), "\n".join(keys))
    except Exception as exc:  # the copies then fall back on VERSION_RECHECK
        warn_rate_limited(
            "bus", "WebSocket access invalidation not published, other processes see it within VERSION_RECHECK: %r", exc
        )


def bus_for(cache: BaseCache) -> Bus | None:
    """This process's running bus on ``cache`` (started on first use), or None without one."""
    if not isinstance(cache, RedisCache) or not has_bus(cache):
        return None
    bus = _buses.get(id(cache))
    if bus is None or bus.pid != os.getpid():
        with _lock:
            bus = _buses.get(id(cache))
            if bus is None or bus.pid != os.getpid():
                bus = _buses[id(cache)] = Bus(cache)
                bus.start()
    return bus


def stop_all() -> None:
    """Stop every bus of this process (settings changed, tests)."""
    with _lock:
        buses = list(_buses.values())
        _buses.clear()
    for bus in buses:
        bus.stop()


class Bus:
    """The subscription of one process to one cache's channel, in a daemon thread."""

    def __init__(self, cache: RedisCache) -> None:
        self.cache = cache
        self.pid = os.getpid()
        self._live = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wsreject-invalidation-bus", daemon=True)

    @property
    def live(self) -> bool:
        """Whether pushes are being heard: copies may be trusted (up to VERSION_RECHECK)."""
        return self._live.is_set()

    def wait_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 0) -> None:
        """Unsubscribe; with ``wait``, up to that many seconds for the thread to end."""
        self._stop.set()
        self._live.clear()
        if wait and self._thread.is_alive():
            self._thread.join(wait)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stop.is_set():
            try:
                self._listen()
                delay = RETRY_FIRST
            except Exception as exc:
                self._went_down()
                warn_rate_limited("bus", "WebSocket access invalidation bus down, reading the cache every handshake: %r", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
        self._went_down()

    def _went_down(self) -> None:
        self._live.clear()
        _reset()

    def _listen(self) -> None:
        pubsub = _redis(self.cache).get_client().pubsub()
        try:
            pubsub.subscribe(channel_name(self.cache))
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=POLL)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    _reset()  # whatever was published before now was not heard
                    self._live.set()
                elif message["type"] == "message":
                    data = message["data"]
                    for key in (data.decode() if isinstance(data, bytes) else str(data)).split("\n"):
                        _deliver(key)
        finally:
            self._live.clear()
            pubsub.close()


def _deliver(key: str) -> None:
    for listener in list(_listeners):
        try:
            listener(key)
        except Exception:
            logger.exception("WebSocket access invalidation listener %r failed on %r", listener, key)


def _reset() -> None:
    for reset in list(_resets):
        try:
            reset()
        except Exception:
            logger.exception("WebSocket access invalidation reset %r failed", reset)
