"""Versioned entries in Django's cache (``WSREJECT["CACHE"]``), and how long a change may take.

Cached data (a user, their permission set, the access rules, a token's owner)
is stored as ``(stamp, value)``, the stamp being the current value of one or
more *version keys*:

* ``wsreject:v:perms`` — bumped when what a group grants changes;
* ``wsreject:v:user:<pk>`` — bumped when the user is saved or deleted, their
  groups or permissions change, or one of their tokens is revoked;
* ``wsreject:v:rules`` — bumped when an access rule (or a group or permission
  it names) changes.

A version is a random token, not a counter: an evicted or expired version comes
back as a new token, which no stale entry can match. Bumps happen on
``transaction.on_commit``: a reader between the write and its commit stores an
entry under the old version, which the bump then retires.

**Staleness.** Version keys expire after ``WSREJECT["MAX_STALENESS"]`` seconds
(default 5). With a shared cache (Redis, Memcached, the database cache) a bump
is seen by every process at its next handshake; with a process-local cache
(the local-memory default) a change made in another process (a second worker,
``manage.py shell``) is seen within that bound, because every process's
versions expire and its entries are then recomputed from the database. The
same bound caps the effect of a lost bump (``QuerySet.update()`` and raw SQL
send no signals: call :func:`bump_user`, :func:`bump_permissions` or
:func:`bump_rules` after them to make it immediate).

**Redis: a local copy kept current by push.** With Django's ``RedisCache`` each process keeps
the versions (and the entries stamped with them) in memory as well, as it does in front of a
local-memory cache, so a warm handshake makes no Redis round trip. Every bump and every dropped
entry is published on the invalidation bus (:mod:`wsreject.cache.bus`) and forgotten at once by
every process; a copy is trusted only while that process's subscription is up, and re-read
after ``WSREJECT["VERSION_RECHECK"]`` seconds (1) in any case: the bound if a push is lost.

**Failures.** A failing cache is an optimisation lost, not an outage: readers
compute from the database (a WARNING at most once a minute). A database that is
down too makes the handshake a ``503``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any, TypeVar

from django.core.cache import BaseCache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.db import transaction

from ..conf import wsreject_settings
from ..offload import require_io
from ..reporting import warn_rate_limited
from . import bus

__all__ = [
    "PERMS_VERSION_KEY",
    "RULES_VERSION_KEY",
    "SHAREABLE_BACKENDS",
    "LocalLayer",
    "bump_permissions",
    "bump_rules",
    "bump_user",
    "cache_failed",
    "current_version",
    "get_cache",
    "is_process_local",
    "local",
    "new_version",
    "require_cache_io",
    "user_version_key",
    "uses_local_layer",
    "version_timeout",
]

T = TypeVar("T")

PERMS_VERSION_KEY = "wsreject:v:perms"
RULES_VERSION_KEY = "wsreject:v:rules"


def user_version_key(pk: object) -> str:
    return f"wsreject:v:user:{pk}"


_shared_caches: dict[str, BaseCache] = {}

#: Backends whose cache object may serve every thread and task of the process: local memory
#: (its storage is per process anyway), and those that keep a thread-safe connection pool or
#: open their connection per call. Django makes a new cache object per thread and per task;
#: for Redis that means a new connection pool, and so a new TCP connection, per handshake.
SHAREABLE_BACKENDS = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.filebased.FileBasedCache",
        "django_redis.cache.RedisCache",
    }
)


def get_cache(alias: str | None = None) -> BaseCache:
    """``caches[alias]``, kept for the whole process when its backend allows it (see
    :data:`SHAREABLE_BACKENDS`); other backends get Django's per-thread, per-task object."""
    alias = alias or wsreject_settings.CACHE
    cache = _shared_caches.get(alias)
    if cache is None:
        cache = caches[alias]
        backend = type(cache)
        if f"{backend.__module__}.{backend.__qualname__}" in SHAREABLE_BACKENDS:
            _shared_caches[alias] = cache
    return cache


def _caches_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("CACHES", "WSREJECT"):
        _shared_caches.clear()
        bus.stop_all()
        local.clear()


setting_changed.connect(_caches_changed, dispatch_uid="wsreject.cache.versions.caches")


def is_process_local(cache: BaseCache) -> bool:
    """Whether reading ``cache`` never leaves the process (so it may be read on the event loop)."""
    return isinstance(cache, (LocMemCache, DummyCache))


def require_cache_io(cache: BaseCache) -> None:
    """:func:`~wsreject.offload.require_io` unless ``cache`` is process-local."""
    if not is_process_local(cache):
        require_io()


def version_timeout() -> float | None:
    """How long a version key lives: the staleness bound (None: until evicted)."""
    value = wsreject_settings.MAX_STALENESS
    return None if value is None else float(value)


def new_version() -> str:
    return uuid.uuid4().hex


def current_version(cache: BaseCache, key: str, found: dict[str, Any]) -> str:
    """The version under ``key`` from a ``get_many`` result, created when missing."""
    version = found.get(key)
    if version is None:
        version = new_version()
        if not cache.add(key, version, timeout=version_timeout()):
            version = cache.get(key) or version
    return str(version)


def cache_failed(exc: BaseException) -> None:
    warn_rate_limited("cache", "WebSocket access cache unavailable, reading the database instead: %r", exc)


# --- the in-process layer in front of a local-memory cache, or of Redis kept current by push ------


class LocalLayer:
    """Python objects in front of the cache, so a warm handshake neither pickles nor validates
    cache keys, nor (with Redis) makes a round trip.

    Used when ``WSREJECT["CACHE"]`` is a local-memory cache, which is per process anyway, or a
    Redis cache whose invalidation bus is up in this process (see :func:`uses_local_layer`).
    Versions are trusted for :data:`RECHECK` seconds with local memory (a bump made in this
    process forgets them at once, so the process's own changes hold at its next handshake; other
    processes' are bounded by ``MAX_STALENESS`` plus that), for ``VERSION_RECHECK`` with Redis,
    where every process's bumps reach every process by push. Entries are kept with the versions
    they were computed under, at most :data:`MAX_ENTRIES` of them (the oldest go first). Values
    must be immutable, or copied by the caller before use.
    """

    RECHECK = 0.5
    MAX_ENTRIES = 20_000

    def __init__(self) -> None:
        self.versions: dict[str, tuple[str, float]] = {}
        self.entries: dict[str, tuple[tuple[str, ...], Any]] = {}
        #: Bumped by every forget: a version read while a push arrived is not kept.
        self.generation = 0

    def version(self, cache: BaseCache, key: str) -> str:
        seen = self.versions.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[1] < (self.RECHECK if is_process_local(cache) else wsreject_settings.VERSION_RECHECK):
            return seen[0]
        require_cache_io(cache)
        generation = self.generation
        version = current_version(cache, key, cache.get_many([key]))
        if generation == self.generation:
            self.versions[key] = (version, now)
        return version

    def forget_version(self, key: str) -> None:
        self.generation += 1
        self.versions.pop(key, None)

    def forget(self, key: str) -> None:
        """A key changed in some process (a version bumped, an entry dropped)."""
        self.generation += 1
        self.versions.pop(key, None)
        self.entries.pop(key, None)

    def forget_versions(self) -> None:
        """Pushes may have been missed: read every version again (entries stay, under their stamps)."""
        self.generation += 1
        self.versions.clear()

    def get(self, key: str, stamp: tuple[str, ...], default: Any = None) -> Any:
        entry = self.entries.get(key)
        return entry[1] if entry is not None and entry[0] == stamp else default

    def peek(self, key: str) -> tuple[tuple[str, ...], Any] | None:
        """The entry under ``key`` with its stamp, whatever the stamp (None if there is none)."""
        return self.entries.get(key)

    def put(self, key: str, stamp: tuple[str, ...], value: Any) -> None:
        entries = self.entries
        entries.pop(key, None)
        entries[key] = (stamp, value)
        if len(entries) > self.MAX_ENTRIES:
            with contextlib.suppress(RuntimeError, KeyError, StopIteration):  # the bus thread forgot one meanwhile
                del entries[next(iter(entries))]

    def clear(self) -> None:
        self.generation += 1
        self.versions.clear()
        self.entries.clear()


local = LocalLayer()
bus.add_listener(local.forget, local.forget_versions)


def uses_local_layer(cache: BaseCache) -> bool:
    """Whether the local layer may answer for ``cache``: local memory, or Redis with this
    process's invalidation bus up (started here on first use)."""
    if isinstance(cache, LocMemCache):
        return True
    running = bus.bus_for(cache)
    return running is not None and running.live


def _bump_on_commit(key: str, using: str | None) -> None:
    def bump() -> None:
        local.forget_version(key)
        cache = get_cache()
        cache.set(key, new_version(), timeout=version_timeout())
        bus.publish(cache, [key])

    transaction.on_commit(bump, using=using, robust=True)


def bump_user(pk: object, using: str | None = None) -> None:
    """Retire one user's cached entries (after the current transaction commits)."""
    _bump_on_commit(user_version_key(pk), using)


def bump_permissions(using: str | None = None) -> None:
    """Retire every user's cached permission sets."""
    _bump_on_commit(PERMS_VERSION_KEY, using)


def bump_rules(using: str | None = None) -> None:
    """Retire the cached access rules."""
    _bump_on_commit(RULES_VERSION_KEY, using)
