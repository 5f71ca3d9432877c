"""Push: "this cache key changed", told to every process at once.

Whoever retires a cached entry (a version bumped, a session's owner forgotten)
:func:`publish`\\ es its key. With Django's ``RedisCache`` the key goes out on one
Redis pub/sub channel per database and key prefix, and every process that
listens (:func:`start`, one daemon thread per process) hands it to its
listeners (:func:`add_listener`); with any other cache it reaches only the
listeners of this process (another process sees the change within
``MAX_STALENESS``, see :mod:`wsreject.access.versions`).

A push can be lost (the subscription not up yet, Redis restarted): every
(re)subscription calls the reset listeners, since what was published meanwhile
was not heard, and :func:`pushes` is False while the subscription is down.
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

logger = logging.getLogger("wsreject")

Listener = Callable[[str], None]
Reset = Callable[[], None]

_listeners: list[Listener] = []
_resets: list[Reset] = []
_lock = threading.Lock()
_subscribers: dict[int, Subscriber] = {}

#: Seconds one wait for a message lasts (how soon a stopped subscriber notices), and the
#: bounds of the wait between two attempts to subscribe.
POLL, RETRY_FIRST, RETRY_MAX = 1.0, 0.1, 2.0


def add_listener(on_key: Listener, on_reset: Reset | None = None) -> None:
    """Call ``on_key(key)`` (in any thread) for each key published by any process, ``on_reset()``
    whenever pushes may have been missed."""
    with _lock:
        if on_key not in _listeners:
            _listeners.append(on_key)
        if on_reset is not None and on_reset not in _resets:
            _resets.append(on_reset)


def _client(cache: RedisCache) -> Any:
    return cast(Any, cache)._cache  # Django's RedisCacheClient: its redis-py clients


def channel(cache: RedisCache) -> str:
    """One channel per Redis database and key prefix (pub/sub is server-wide, caches are not)."""
    db = _client(cache)._get_connection_pool(True).connection_kwargs.get("db", 0)
    return cache.make_key(f"wsreject:push:{db}")


def publish(cache: BaseCache, keys: Iterable[str]) -> None:
    """Tell every process listening on ``cache`` (this one only, without Redis) that ``keys`` changed."""
    keys = [key for key in keys if key]
    if not keys:
        return
    if not isinstance(cache, RedisCache):
        for key in keys:
            _deliver(key)
        return
    try:
        _client(cache).get_client(write=True).publish(channel(cache), "\n".join(keys))
    except Exception as exc:
        warn_rate_limited("push", "WebSocket access change not pushed (others see it within MAX_STALENESS): %r", exc)


def start(cache: BaseCache) -> Subscriber | None:
    """This process's subscriber on ``cache`` (started on first call), or None without Redis."""
    if not isinstance(cache, RedisCache):
        return None
    subscriber = _subscribers.get(id(cache))
    if subscriber is None or subscriber.pid != os.getpid():
        with _lock:
            subscriber = _subscribers.get(id(cache))
            if subscriber is None or subscriber.pid != os.getpid():
                subscriber = _subscribers[id(cache)] = Subscriber(cache)
                subscriber.thread.start()
    return subscriber


def pushes(cache: BaseCache) -> bool:
    """Whether changes made in other processes reach this one by push right now."""
    subscriber = _subscribers.get(id(cache))
    return subscriber is not None and subscriber.live.is_set()


def stop_all() -> None:
    with _lock:
        subscribers = list(_subscribers.values())
        _subscribers.clear()
    for subscriber in subscribers:
        subscriber.stop.set()


class Subscriber:
    """One process's subscription to one cache's channel, in a daemon thread."""

    def __init__(self, cache: RedisCache) -> None:
        self.cache = cache
        self.pid = os.getpid()
        self.live = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="wsreject-push", daemon=True)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self.stop.is_set():
            try:
                self._listen()
                delay = RETRY_FIRST
            except Exception as exc:
                warn_rate_limited("push", "WebSocket access push down, re-checking every MAX_STALENESS: %r", exc)
                self.stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
        self.live.clear()

    def _listen(self) -> None:
        pubsub = _client(self.cache).get_client().pubsub()
        try:
            pubsub.subscribe(channel(self.cache))
            while not self.stop.is_set():
                message = pubsub.get_message(timeout=POLL)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self.live.set()
                    _reset()  # what was published before now was not heard
                elif message["type"] == "message":
                    data = message["data"]
                    for key in (data.decode() if isinstance(data, bytes) else str(data)).split("\n"):
                        _deliver(key)
        finally:
            self.live.clear()
            pubsub.close()


def _deliver(key: str) -> None:
    for listener in list(_listeners):
        try:
            listener(key)
        except Exception:
            logger.exception("WebSocket access push listener %r failed on %r", listener, key)


def _reset() -> None:
    for reset in list(_resets):
        try:
            reset()
        except Exception:
            logger.exception("WebSocket access push reset %r failed", reset)
