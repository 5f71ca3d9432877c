"""Users by primary key, and which user a credential belongs to, cached under the user's version
(see :mod:`wsreject.cache.versions`)."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model

from . import bus
from .reader import read_versioned
from .versions import cache_failed, get_cache, local, user_version_key

__all__ = ["Owner", "cached_owner", "cached_user", "forget_owner", "session_owner_key"]

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
    entry_key, version_keys = f"wsreject:user:{key}", [user_version_key(key)]
    user = read_versioned(entry_key, version_keys, lambda: model._default_manager.filter(pk=key).first()).value
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
    their version, retires it. A credential nobody owns is not cached; an owned one lives in the
    shared cache until it expires. On the event loop only a process-local cache is read
    (:class:`~wsreject.offload.NeedsIO` on a miss)."""
    return read_versioned(key, _owner_version_keys, load, timeout=_owner_timeout, cache_none=False).value


def _owner_version_keys(owner: Owner | None) -> list[str]:
    assert owner is not None  # never stored (cache_none=False)
    return [user_version_key(owner[0])]


def _owner_timeout(owner: Owner | None) -> float | None:
    expires = None if owner is None else owner[1]
    return None if expires is None else max(1, int(expires - time.time()))


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
