"""System checks of the access-management side: the caches, the permissions consumers require.

``W020`` a process-local cache with ``DEBUG`` off (changes reach other
processes only within ``MAX_STALENESS``, tickets work only on the process that
issued them), ``W021`` a required permission of an app that is not installed,
``E022`` an unknown cache alias (``CACHE`` or ``THROTTLE_CACHE``), ``E023``
PERMISSION_CACHE_TIMEOUT, ``E024`` DENIAL_LOG_SIZE, ``W025`` throttle counters
that other entries can evict (only when the routing uses a ``Throttle``), ``E026`` MAX_STALENESS, ``E027`` TICKET_TTL, ``E028`` VERSION_RECHECK.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

from ..checks import walk
from ..conf import DEFAULTS
from ..endpoints import iter_endpoints
from ..middleware import PermissionMiddleware
from ..throttling import Throttle
from .declared_perms import declared_permissions

__all__ = ["THROTTLE_MIN_ENTRIES", "check_access_control", "throttles_declared"]

#: Fewer entries than this in a local-memory throttle cache: a flood of keys can cull counters.
THROTTLE_MIN_ENTRIES = 10_000


def _backend(alias: str) -> type | None:
    try:
        return import_string(getattr(settings, "CACHES", {})[alias].get("BACKEND", ""))  # type: ignore[no-any-return]
    except (ImportError, KeyError):
        return None


def _number(value: Any, *, allow_none: bool, minimum: float = 0) -> bool:
    if value is None:
        return allow_none
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > minimum


def check_access_control(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "WSREJECT", {})
    merged = {**DEFAULTS, **value} if isinstance(value, dict) else dict(DEFAULTS)
    caches_setting = getattr(settings, "CACHES", {})
    errors: list[CheckMessage] = []
    for key in ("CACHE", "THROTTLE_CACHE"):
        if merged[key] not in caches_setting:
            errors.append(Error(f"WSREJECT[{key!r}] is {merged[key]!r}, which is not in CACHES.", id="wsreject.E022"))
    alias = merged["CACHE"]
    backend = _backend(alias) if alias in caches_setting else None
    if backend is not None and issubclass(backend, LocMemCache) and not settings.DEBUG:
        errors.append(
            Warning(
                f"The cache {alias!r} holding WebSocket permission sets, access rules and tickets is process-local: "
                f"with several server processes, a change made in one reaches the others only after "
                f"WSREJECT['MAX_STALENESS'] seconds, and a ticket works only on the process that issued it.",
                hint="Use a shared cache, e.g. django.core.cache.backends.redis.RedisCache, or point WSREJECT['CACHE'] at one.",
                id="wsreject.W020",
            )
        )
    throttle_alias = merged["THROTTLE_CACHE"]
    throttle_backend = _backend(throttle_alias) if throttle_alias in caches_setting else None
    if throttle_backend is not None and issubclass(throttle_backend, LocMemCache) and throttles_declared():
        max_entries = int(caches_setting[throttle_alias].get("OPTIONS", {}).get("MAX_ENTRIES", 300))
        if throttle_alias == alias or max_entries < THROTTLE_MIN_ENTRIES:
            shared = ", shared with WSREJECT['CACHE']" if throttle_alias == alias else ""
            errors.append(
                Warning(
                    f"Throttle counters live in the local-memory cache {throttle_alias!r} "
                    f"(MAX_ENTRIES {max_entries}{shared}): "
                    "when it fills up, Django culls entries at random, and a client's counter can go with them.",
                    hint=f"Give throttles their own cache alias with OPTIONS {{'MAX_ENTRIES': {THROTTLE_MIN_ENTRIES * 10}}} "
                    "(or Redis) and set WSREJECT['THROTTLE_CACHE'] to it.",
                    id="wsreject.W025",
                )
            )
    if not _number(merged["PERMISSION_CACHE_TIMEOUT"], allow_none=True):
        errors.append(
            Error(
                f"WSREJECT['PERMISSION_CACHE_TIMEOUT'] is {merged['PERMISSION_CACHE_TIMEOUT']!r}.",
                hint="Use a positive number of seconds, or None (no expiry).",
                id="wsreject.E023",
            )
        )
    size = merged["DENIAL_LOG_SIZE"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        errors.append(
            Error(f"WSREJECT['DENIAL_LOG_SIZE'] is {size!r}.", hint="Use a whole number, 0 to turn it off.", id="wsreject.E024")
        )
    if not _number(merged["MAX_STALENESS"], allow_none=True):
        errors.append(
            Error(
                f"WSREJECT['MAX_STALENESS'] is {merged['MAX_STALENESS']!r}.",
                hint="Use a positive number of seconds (None: changes in other processes may never be seen with a local cache).",
                id="wsreject.E026",
            )
        )
    if not _number(merged["VERSION_RECHECK"], allow_none=False):
        errors.append(
            Error(
                f"WSREJECT['VERSION_RECHECK'] is {merged['VERSION_RECHECK']!r}.",
                hint="Use a positive number of seconds: how long a process trusts its pushed copy of a version.",
                id="wsreject.E028",
            )
        )
    ttl = merged["TICKET_TTL"]
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 3600:
        errors.append(
            Error(f"WSREJECT['TICKET_TTL'] is {ttl!r}.", hint="Use a whole number of seconds from 1 to 3600.", id="wsreject.E027")
        )
    errors.extend(_check_required_permission_apps())
    return errors


def _contains_throttle(permission: Any, depth: int = 0) -> bool:
    if isinstance(permission, Throttle) or (isinstance(permission, type) and issubclass(permission, Throttle)):
        return True
    operands = list(getattr(permission, "operands", ()) or ()) + [getattr(permission, "operand", None)]
    return depth < 20 and any(op is not None and _contains_throttle(op, depth + 1) for op in operands)


def throttles_declared() -> bool:
    """Whether the routing uses a ``Throttle`` (on a consumer or in a ``PermissionMiddleware``)."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    try:
        application = import_string(path) if path else None
    except Exception:  # the ASGI module's own errors are reported by Django and Channels
        return False
    for endpoint in iter_endpoints(application):
        for permission in getattr(endpoint.consumer_class, "permission_classes", None) or ():
            if _contains_throttle(permission):
                return True
    return any(isinstance(app, PermissionMiddleware) and _contains_throttle(app.permission) for app, _ in walk(application))


def _check_required_permission_apps() -> list[CheckMessage]:
    try:
        declared = declared_permissions()
    except Exception:  # the ASGI module's own errors are reported by Django and Channels
        return []
    errors: list[CheckMessage] = []
    for perm in sorted(declared):
        app_label = perm.partition(".")[0]
        if not any(config.label == app_label for config in apps.get_app_configs()):
            errors.append(
                Warning(
                    f"A WebSocket consumer requires the permission {perm!r}, but no installed app has the "
                    f"label {app_label!r}: nobody can be granted it, so every user is refused.",
                    hint="Fix the permission name, or add the app to INSTALLED_APPS.",
                    id="wsreject.W021",
                )
            )
    return errors
