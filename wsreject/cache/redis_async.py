"""redis-py's asyncio client for a Django ``RedisCache``: one connection pool per event loop.

Django's ``RedisCache`` talks to Redis with redis-py's synchronous client, which
blocks: wsreject calls it in a worker thread. Where a handshake needs one Redis
command (a throttle's window), the asyncio client does it on the event loop
instead: :func:`async_client` answers a ``redis.asyncio.Redis`` on the cache's
primary server (the one Django writes to), with the cache's connection options.

asyncio connections belong to the loop that opened them, so each running loop
gets its own pool, never shared with another loop or thread. A loop's pool is
closed when the loop shuts its async generators down (``asyncio.run`` and
asgiref do, uvicorn too) and dropped with the loop otherwise (weak references).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator
from typing import Any, cast

import redis.asyncio
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import AsyncScript

__all__ = ["async_client", "async_script", "close_all"]

#: Options of Django's synchronous pool that name synchronous classes: the asyncio client has its own.
_SYNC_ONLY = frozenset({"parser_class", "connection_class", "connection_pool_class", "retry"})


class _LoopClients:
    """The clients of one event loop, keyed by server URL and options, and the async generator
    whose ``finally`` closes them when the loop shuts its async generators down."""

    def __init__(self) -> None:
        self.clients: dict[str, redis.asyncio.Redis] = {}
        self.scripts: dict[tuple[str, str], AsyncScript] = {}
        self.closer: AsyncGenerator[None, None] | None = None
        self.parking: asyncio.Task[None] | None = None


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()
_settings_of: weakref.WeakKeyDictionary[RedisCache, tuple[str, str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def _settings(cache: RedisCache) -> tuple[str, str, dict[str, Any]]:
    """An identity for the pool, the primary server's URL, and the pool options Django's client
    uses minus its synchronous classes (worked out once per cache object)."""
    found = _settings_of.get(cache)
    if found is None:
        django_client = cast(Any, cache)._cache
        options = {k: v for k, v in django_client._pool_options.items() if k not in _SYNC_ONLY}
        url = str(django_client._servers[0])
        found = _settings_of[cache] = (f"{url}|{sorted(options.items(), key=lambda item: item[0])!r}", url, options)
    return found


async def _close_on_shutdown(clients: dict[str, redis.asyncio.Redis]) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` for the loop's life; ``loop.shutdown_asyncgens()`` resumes it here."""
    try:
        yield
    finally:
        for client in list(clients.values()):
            await _quietly_close(client)
        clients.clear()  # (the scripts are dropped with the loop's entry)


async def _park(closer: AsyncGenerator[None, None]) -> None:
    await closer.__anext__()


async def _quietly_close(client: redis.asyncio.Redis) -> None:
    with contextlib.suppress(Exception):  # a connection already broken: nothing left to close
        await client.aclose()


def async_client(cache: RedisCache) -> redis.asyncio.Redis:
    """An asyncio client of ``cache``'s primary server for the running loop (created on first use)."""
    return _client(cache)[0]


def async_script(cache: RedisCache, source: str) -> AsyncScript:
    """A Lua script on :func:`async_client`: ``await script(keys=[...], args=[...])`` runs
    ``EVALSHA``, loading it first when the server does not know it (``NOSCRIPT``)."""
    client, key, entry = _client(cache)
    script = entry.scripts.get((key, source))
    if script is None:
        script = entry.scripts[(key, source)] = client.register_script(source)
    return script


def _client(cache: RedisCache) -> tuple[redis.asyncio.Redis, str, _LoopClients]:
    loop = asyncio.get_running_loop()
    entry = _loops.get(loop)
    if entry is None:
        entry = _loops[loop] = _LoopClients()
    key, url, options = _settings(cache)
    client = entry.clients.get(key)
    if client is None:
        client = redis.asyncio.Redis.from_pool(redis.asyncio.ConnectionPool.from_url(url, **options))  # closes it
        entry.clients[key] = client
        if entry.closer is None:
            entry.closer = _close_on_shutdown(entry.clients)
            # Started on this loop, so the loop's async generator hooks know it.
            entry.parking = loop.create_task(_park(entry.closer))
    return client, key, entry


async def close_all() -> None:
    """Close the running loop's clients now (tests; a server closes them at loop shutdown)."""
    entry = _loops.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        for client in list(entry.clients.values()):
            await _quietly_close(client)
        entry.clients.clear()
        entry.scripts.clear()
        if entry.closer is not None:
            await entry.closer.aclose()
