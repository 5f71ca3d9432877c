"""The one versioned reader: a value cached under the current versions of some keys, else computed.

Every cache of wsreject (users, credentials' owners, permission sets and groups, the access rules)
reads through :func:`read_versioned`. An entry is stored as ``(stamp, value)``, the stamp being the
versions of its keys when the value was computed; an entry whose stamp is not the current one is
stale, and recomputed. Where the process keeps a local copy (see
:func:`~wsreject.cache.versions.uses_local_layer`) the versions and the entries come from memory;
otherwise one ``get_many`` reads both. A failing cache is an optimisation lost: the value is
computed (``stamp`` None) and a WARNING logged at most once a minute.

On the event loop (see :mod:`wsreject.offload`) only memory and a process-local cache are read, and
anything else raises :class:`~wsreject.offload.NeedsIO`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from django.core.cache import BaseCache

from ..conf import wsreject_settings
from ..offload import NeedsIO, require_io
from .versions import cache_failed, current_version, get_cache, is_process_local, local, require_cache_io, uses_local_layer

__all__ = ["Stamp", "Versioned", "local_stamp", "read_versioned"]

T = TypeVar("T")

#: The versions of an entry's keys when it was computed.
Stamp = tuple[str, ...]
#: The version keys of an entry: fixed, or named by the value itself (a credential's owner).
VersionKeys = Sequence[str] | Callable[[T], Sequence[str]]

_MISSING: Any = object()


class Versioned(NamedTuple, Generic[T]):
    stamp: Stamp | None  # None: the cache failed and the value was computed
    value: T


def read_versioned(
    entry_key: str,
    version_keys: VersionKeys[T],
    compute: Callable[[], T],
    *,
    timeout: Callable[[T], float | None] | None = None,
    cache_none: bool = True,
) -> Versioned[T]:
    """The value under ``entry_key`` if its stamp is current, else ``compute()``, stored.

    ``version_keys`` may depend on the value (a function of it): the entry is then read first and
    its own keys' versions compared. ``timeout(value)`` is how long the shared entry lives (default
    ``PERMISSION_CACHE_TIMEOUT``); with ``cache_none=False`` a computed None is not stored. Values
    must be immutable, or copied by the caller before use.
    """
    cache = get_cache()
    keys_of: Callable[[T], Sequence[str]] = version_keys if callable(version_keys) else (lambda _value: version_keys)
    if uses_local_layer(cache):
        return _read_layered(cache, entry_key, keys_of, None if callable(version_keys) else version_keys, compute, timeout, cache_none)
    return _read_shared(cache, entry_key, keys_of, None if callable(version_keys) else version_keys, compute, timeout, cache_none)


def local_stamp(version_keys: Sequence[str]) -> Stamp | None:
    """The current stamp of ``version_keys`` from this process's copy of the versions, or None
    when no local copy answers for the cache (or it failed): for a caller that keeps a value
    derived from an entry (the compiled rules) and only needs to know it is still current."""
    cache = get_cache()
    if not uses_local_layer(cache):
        return None
    try:
        return tuple(local.version(cache, key) for key in version_keys)
    except NeedsIO:
        raise
    except Exception as exc:
        cache_failed(exc)
        return None


def _versions(cache: BaseCache, keys: Sequence[str]) -> Stamp:
    return tuple(local.version(cache, key) for key in keys)


def _entry(value: Any) -> tuple[Stamp, Any] | None:
    """A stored ``(stamp, value)`` pair, or None for anything else (an older layout)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], tuple):
        return value
    return None


def _read_layered(
    cache: BaseCache,
    entry_key: str,
    keys_of: Callable[[T], Sequence[str]],
    fixed: Sequence[str] | None,
    compute: Callable[[], T],
    timeout: Callable[[T], float | None] | None,
    cache_none: bool,
) -> Versioned[T]:
    shared = not is_process_local(cache)
    try:
        stamp: Stamp | None = None
        if fixed is not None:
            stamp = fixed_stamp = _versions(cache, fixed)
            value = local.get(entry_key, fixed_stamp, _MISSING)
        else:
            held = local.peek(entry_key)
            stamp, value = None, _MISSING
            if held is not None and held[0] == (current := _versions(cache, keys_of(held[1]))):
                stamp, value = current, held[1]
        if value is not _MISSING:
            return Versioned(stamp, value)
        require_io()
        if shared and (entry := _entry(_shared_get(cache, entry_key))) is not None:
            current = stamp if stamp is not None else _versions(cache, keys_of(entry[1]))
            if entry[0] == current:
                local.put(entry_key, current, entry[1])
                return Versioned(current, entry[1])
    except NeedsIO:
        raise
    except Exception as exc:
        cache_failed(exc)
        require_io()
        return Versioned(None, compute())
    value = compute()
    computed_none = value is None  # (a separate flag keeps ``value`` typed T)
    if computed_none and not cache_none:
        return Versioned(stamp, value)
    try:
        stamp = stamp if fixed is not None else _versions(cache, keys_of(value))
    except Exception as exc:
        cache_failed(exc)
        return Versioned(None, value)
    assert stamp is not None
    if shared:
        _shared_set(cache, entry_key, stamp, value, timeout)
    local.put(entry_key, stamp, value)
    return Versioned(stamp, value)


def _read_shared(
    cache: BaseCache,
    entry_key: str,
    keys_of: Callable[[T], Sequence[str]],
    fixed: Sequence[str] | None,
    compute: Callable[[], T],
    timeout: Callable[[T], float | None] | None,
    cache_none: bool,
) -> Versioned[T]:
    require_cache_io(cache)
    stamp: Stamp | None = None
    try:
        if fixed is not None:  # one round trip: the versions and the entry together
            found = cache.get_many([*fixed, entry_key])
            stamp = tuple(current_version(cache, key, found) for key in fixed)
            entry = _entry(found.get(entry_key))
        elif (entry := _entry(cache.get(entry_key))) is not None:
            keys = keys_of(entry[1])
            found = cache.get_many(list(keys))
            stamp = tuple(current_version(cache, key, found) for key in keys)
        if entry is not None and entry[0] == stamp:
            return Versioned(stamp, entry[1])
    except Exception as exc:  # the cache is an optimisation: its outage is not the service's
        cache_failed(exc)
        require_io()
        return Versioned(None, compute())
    require_io()
    value = compute()
    computed_none = value is None  # (a separate flag keeps ``value`` typed T)
    if computed_none and not cache_none:
        return Versioned(stamp, value)
    try:
        if fixed is None:
            keys = keys_of(value)
            found = cache.get_many(list(keys))
            stamp = tuple(current_version(cache, key, found) for key in keys)
    except Exception as exc:
        cache_failed(exc)
        return Versioned(None, value)
    assert stamp is not None
    _shared_set(cache, entry_key, stamp, value, timeout)
    return Versioned(stamp, value)


def _shared_get(cache: BaseCache, entry_key: str) -> Any:
    try:
        return cache.get(entry_key)
    except Exception as exc:
        cache_failed(exc)
        return None


def _shared_set(cache: BaseCache, entry_key: str, stamp: Stamp, value: Any, timeout: Callable[[Any], float | None] | None) -> None:
    try:
        seconds = wsreject_settings.PERMISSION_CACHE_TIMEOUT if timeout is None else timeout(value)
        cache.set(entry_key, (stamp, value), timeout=seconds)
    except Exception as exc:
        cache_failed(exc)
