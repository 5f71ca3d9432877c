"""Permission sets and group memberships cached per user, invalidated by versions.

Everything lives in the Django cache ``WSREJECT["CACHE"]``, under these keys:

* ``wsreject:v:perms`` — the global version, bumped when what a group grants
  changes (a group's permissions; a group or a permission saved or deleted);
* ``wsreject:v:user:<pk>`` — a user's version, bumped when the user is saved
  (``is_active``, ``is_superuser`` ...) or deleted, or their groups or
  permissions change (from either side of the relation);
* ``wsreject:perms:<pk>``, ``wsreject:groups:<pk>`` — ``(stamp, frozenset)``:
  the user's permission names and group ids, stamped with the two versions they
  were computed under;
* ``wsreject:v:rules`` — the access rules' version (see :mod:`wsreject.rules`).

One ``get_many`` reads both versions and the entry; an entry whose stamp is not
the current pair is recomputed. A version is a random token, not a counter: a
version evicted or flushed from the cache comes back as a new token, which no
stale entry can match. Versions are bumped with ``transaction.on_commit``: a
process that reads the database between the admin's write and its commit stores
an entry stamped with the old version, which the bump then retires. Because the
cache is shared (Redis in production), a change made through any process is
seen by the next handshake on every process. Should the cache fail, the sets
are read from the database (and a warning logged, once a minute); should a
bump be lost, ``PERMISSION_CACHE_TIMEOUT`` bounds the staleness. ``QuerySet.update()`` and raw SQL
send no signals: call :func:`bump_user`, :func:`bump_permissions` or
:func:`bump_rules` after them.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from django.contrib.auth import get_backends, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from .conf import wsreject_settings

logger = logging.getLogger("wsreject")

PERMS_VERSION_KEY = "wsreject:v:perms"
RULES_VERSION_KEY = "wsreject:v:rules"

#: Backends that never grant a permission without an object, so they cannot
#: change ``has_perm(perm)``: the cache stays exact with them installed.
OBJECT_ONLY_BACKENDS = frozenset({"guardian.backends.ObjectPermissionBackend"})


def get_cache():
    return caches[wsreject_settings.CACHE]


def user_version_key(pk) -> str:
    return f"wsreject:v:user:{pk}"


def new_version() -> str:
    return uuid.uuid4().hex


def current_version(key: str, found: dict) -> str:
    """The version under ``key`` from a ``get_many`` result, created when missing."""
    version = found.get(key)
    if version is None:
        cache = get_cache()
        version = new_version()
        if not cache.add(key, version, timeout=None):
            version = cache.get(key) or version
    return version


# --- cached sets -----------------------------------------------------------------------------


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


def cache_failed(exc: Exception) -> None:
    """Log, at most once a minute, that the cache failed: callers read the database instead."""
    global _last_cache_warning
    now = time.monotonic()
    if now - _last_cache_warning >= 60:
        _last_cache_warning = now
        logger.warning("WebSocket access cache unavailable, reading the database instead: %r", exc)


_last_cache_warning = -60.0


def _cached_set(user, kind: str, compute: Callable[[], Iterable]) -> frozenset:
    cache = get_cache()
    user_key = user_version_key(user.pk)
    entry_key = f"wsreject:{kind}:{user.pk}"
    try:
        found = cache.get_many([PERMS_VERSION_KEY, user_key, entry_key])
        stamp = (current_version(PERMS_VERSION_KEY, found), current_version(user_key, found))
    except Exception as exc:  # the cache is an optimisation: its outage is not the service's
        cache_failed(exc)
        return frozenset(compute())
    entry = found.get(entry_key)
    if entry is not None and entry[0] == stamp:
        return entry[1]
    value = frozenset(compute())
    try:
        cache.set(entry_key, (stamp, value), timeout=wsreject_settings.PERMISSION_CACHE_TIMEOUT)
    except Exception as exc:
        cache_failed(exc)
    return value


def permission_set(user) -> frozenset[str]:
    """``user.get_all_permissions()``, cached (``"app_label.codename"`` strings)."""
    return _cached_set(user, "perms", user.get_all_permissions)


def group_ids(user) -> frozenset[int]:
    """The primary keys of the user's groups, cached."""
    if not hasattr(user, "groups"):
        return frozenset()
    return _cached_set(user, "groups", lambda: user.groups.values_list("pk", flat=True))


def has_perms(user, perms: Iterable[str]) -> bool:
    """``user.has_perms(perms)``, from the cached set when the backends allow it.

    Identical to Django's answer: an inactive user has none, a superuser has all,
    anyone else what ``get_all_permissions()`` lists. ``is_active`` and
    ``is_superuser`` come from the user as loaded for this handshake.
    """
    perms = tuple(perms)
    if not perms:
        return True  # as all() of nothing
    if user.pk is None or not user.is_authenticated or not backends_cacheable():
        return user.has_perms(perms)
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return set(perms) <= permission_set(user)


# --- invalidation ----------------------------------------------------------------------------


def _bump_on_commit(key: str, using: str | None) -> None:
    transaction.on_commit(
        lambda: get_cache().set(key, new_version(), timeout=None), using=using, robust=True
    )


def bump_user(pk, using: str | None = None) -> None:
    """Retire one user's cached sets (after the current transaction commits)."""
    _bump_on_commit(user_version_key(pk), using)


def bump_permissions(using: str | None = None) -> None:
    """Retire every user's cached sets."""
    _bump_on_commit(PERMS_VERSION_KEY, using)


def bump_rules(using: str | None = None) -> None:
    """Retire the cached access rules."""
    _bump_on_commit(RULES_VERSION_KEY, using)


def _user_saved(sender, instance, update_fields=None, using=None, **kwargs):
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # every login saves last_login: nothing that decides access
    bump_user(instance.pk, using)


def _user_deleted(sender, instance, using=None, **kwargs):
    bump_user(instance.pk, using)


def _user_relation_changed(sender, instance, action, reverse, pk_set, using=None, **kwargs):
    """``user.groups`` / ``user.user_permissions`` changed, from either side."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        bump_user(instance.pk, using)
    elif pk_set is None:  # group.user_set.clear(): the users are not known here
        bump_permissions(using)
    else:
        for pk in pk_set:
            bump_user(pk, using)


def _group_permissions_changed(sender, action, using=None, **kwargs):
    if action in ("post_add", "post_remove", "post_clear"):
        bump_permissions(using)


def _auth_object_changed(sender, using=None, **kwargs):
    """A group or a permission was saved or deleted: sets and rules may name it."""
    bump_permissions(using)
    bump_rules(using)


def _rule_changed(sender, using=None, action=None, **kwargs):
    if action is None or action in ("post_add", "post_remove", "post_clear"):
        bump_rules(using)


def _settings_changed(setting, **kwargs):
    if setting == "AUTHENTICATION_BACKENDS":
        backends_cacheable.cache_clear()


def connect_receivers() -> None:
    """Connect the invalidation receivers; called by ``WSRejectConfig.ready()``."""
    from django.contrib.auth.models import Group, Permission

    from .models import AccessRule

    user_model = get_user_model()
    uid = "wsreject.perm_cache."
    post_save.connect(_user_saved, sender=user_model, dispatch_uid=uid + "user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid=uid + "user_deleted")
    for relation in ("groups", "user_permissions"):
        descriptor = getattr(user_model, relation, None)
        if descriptor is not None and hasattr(descriptor, "through"):
            m2m_changed.connect(_user_relation_changed, sender=descriptor.through, dispatch_uid=uid + relation)
    m2m_changed.connect(_group_permissions_changed, sender=Group.permissions.through, dispatch_uid=uid + "group_perms")
    for model in (Group, Permission, AccessRule):
        receiver = _rule_changed if model is AccessRule else _auth_object_changed
        post_save.connect(receiver, sender=model, dispatch_uid=f"{uid}{model.__name__}.saved")
        post_delete.connect(receiver, sender=model, dispatch_uid=f"{uid}{model.__name__}.deleted")
    for descriptor in (AccessRule.groups, AccessRule.permissions):
        m2m_changed.connect(_rule_changed, sender=descriptor.through, dispatch_uid=f"{uid}rule.{descriptor.field.name}")
    setting_changed.connect(_settings_changed, dispatch_uid=uid + "settings")
