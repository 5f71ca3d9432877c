"""Permission sets and group memberships per user, cached under versions.

``has_perms(user, perms)`` answers exactly what ``user.has_perms(perms)``
answers with Django's ``ModelBackend`` (and object-only backends such as
django-guardian's next to it): an inactive user has none, a superuser has all,
anyone else what ``get_all_permissions()`` lists — but from the cache (one
``get_many``), and on the event loop when that cache is process-local. With
other backends it asks ``user.has_perms()`` itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import get_backends
from django.contrib.auth.backends import ModelBackend
from django.core.signals import setting_changed

from ..offload import require_io
from .reader import read_versioned
from .versions import PERMS_VERSION_KEY, user_version_key

__all__ = ["OBJECT_ONLY_BACKENDS", "backends_cacheable", "group_ids", "has_perms", "permission_set"]

#: Backends that never grant a permission without an object, so they cannot
#: change ``has_perm(perm)``: the cache stays exact with them installed.
OBJECT_ONLY_BACKENDS = frozenset({"guardian.backends.ObjectPermissionBackend"})


@functools.cache
def backends_cacheable() -> bool:
    """Whether ``user.has_perm(perm)`` is exactly "active and (superuser or perm in
    get_all_permissions())" for the configured backends, so a cached set is exact."""
    for backend in get_backends():
        cls = type(backend)
        if isinstance(backend, ModelBackend) and cls.has_perm is ModelBackend.has_perm:
            continue
        if f"{cls.__module__}.{cls.__qualname__}" in OBJECT_ONLY_BACKENDS:
            continue
        return False
    return True


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting == "AUTHENTICATION_BACKENDS":
        backends_cacheable.cache_clear()


setting_changed.connect(_settings_changed, dispatch_uid="wsreject.cache.permsets")


def _cached_set(user: Any, kind: str, compute: Callable[[], Iterable[Any]]) -> frozenset[Any]:
    versions = [PERMS_VERSION_KEY, user_version_key(user.pk)]
    return read_versioned(f"wsreject:{kind}:{user.pk}", versions, lambda: frozenset(compute())).value


def permission_set(user: Any) -> frozenset[str]:
    """``user.get_all_permissions()``, cached (``"app_label.codename"`` strings)."""
    return _cached_set(user, "perms", user.get_all_permissions)


def group_ids(user: Any) -> frozenset[int]:
    """The primary keys of the user's groups, cached."""
    if not hasattr(user, "groups"):
        return frozenset()
    return _cached_set(user, "groups", lambda: user.groups.values_list("pk", flat=True))


def has_perms(user: Any, perms: Iterable[str]) -> bool:
    """``user.has_perms(perms)``, from the cached set when the backends allow it."""
    perms = tuple(perms)
    if not perms:
        return True  # as all() of nothing
    if user.pk is None or not user.is_authenticated or not backends_cacheable():
        require_io()
        return bool(user.has_perms(perms))
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return set(perms) <= permission_set(user)
