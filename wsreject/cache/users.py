"""Users by primary key, and which user a credential belongs to, cached under the user's version
(see :mod:`wsreject.cache.versions`)."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model

from ..offload import NeedsIO, require_io
from . import bus
from .versions import (
    cache_failed,
    current_version,
    get_cache,
    is_process_local,
    local,
    require_cache_io,
    stamped,
    user_version_key,
    uses_local_layer,
)

#: (user pk, expiry timestamp or None, anything else the credential's check needs)
Owner = tuple[Any, float | None, Any]


def cached_user(pk: Any) -> Any:
    """The user with primary key ``pk`` (None if there is none), from the cache when current.

    Saving or deleting the user, changing their groups or permissions and
    revoking one of their tokens retire the entry. On the event loop only a
    process-local cache is read (:class:`~wsreject.offload.NeedsIO` on a miss).
    """
    if pk is None or isinstance(pk, bool) or not isinstance(pk, (int, str)):
        return None
    key = str(pk)
    model = get_user_model()
    try:
        model._meta.pk.to_python(key)
    except Exception:  # not a valid primary key for this model
        return None
    user = stamped(f"wsreject:user:{key}", [user_version_key(key)], lambda: model._default_manager.filter(pk=key).first())
    return _own_copy(user)


def _own_copy(user: Any) -> Any:
    """Each handshake its own instance (a consumer may change it, ModelBackend caches permissions
    on it), sharing no state with the cached one: a cheaper ``copy.copy`` of a model instance."""
    if user is None:
        return None
    clone = user.__class__.__new__(user.__class__)
    clone.__dict__.update(user.__dict__)
    clone._state = copy.copy(user._state)
    clone._state.fields_cache = {}
    return clone


def cached_owner(key: str, load: Callable[[], Owner | None]) -> Owner | None:
    """Whose credential this is (``load()`` asks the database), cached under ``key`` and stamped
    with that user's version: saving, deactivating or deleting the user, or anything that bumps
    their version, retires it. A credential nobody owns is not cached. On the event loop only a
    process-local cache is read (:class:`~wsreject.offload.NeedsIO` on a miss)."""
    cache = get_cache()
    layered = uses_local_layer(cache)
    if layered:
        try:
            entry = local.get(key, ())
            if entry is not None and local.version(cache, user_version_key(entry[0])) == entry[3]:
                return entry[0], entry[1], entry[2]
        except NeedsIO:
            raise
        except Exception as exc:
            cache_failed(exc)
        if is_process_local(cache):
            require_io()
            owner = load()
            if owner is not None:
                local.put(key, (), (*owner, local.version(cache, user_version_key(owner[0]))))
            return owner
    require_cache_io(cache)
    try:
        entry = cache.get(key)
        if entry is not None:
            version_key = user_version_key(entry[0])
            if current_version(cache, version_key, cache.get_many([version_key])) == entry[3]:
                if layered:
                    local.put(key, (), entry)
                return entry[0], entry[1], entry[2]
    except Exception as exc:
        cache_failed(exc)
    require_io()
    owner = load()
    if owner is None:
        return None
    try:
        version_key = user_version_key(owner[0])
        version = current_version(cache, version_key, cache.get_many([version_key]))
        expires = owner[1]
        cache.set(key, (*owner, version), timeout=None if expires is None else max(1, int(expires - time.time())))
        if layered:
            local.put(key, (), (*owner, version))
    except Exception as exc:
        cache_failed(exc)
    return owner


def session_owner_key(key: str) -> str:
    """The cache key of the owner of Django session ``key`` (the key itself never leaves hashed)."""
    return "wsreject:session:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def forget_owner(key: str) -> None:
    """Drop a cached owner at once (a session was deleted): in this process, and in every process
    when the cache is shared."""
    local.forget(key)
    cache = get_cache()
    try:
        cache.delete(key)
    except Exception as exc:
        cache_failed(exc)
    bus.publish(cache, [key])
