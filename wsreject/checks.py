"""System checks (``manage.py check``) for the ``WSREJECT`` settings and the ASGI stack.

Ids: ``wsreject.E001``-``E006`` settings errors, ``wsreject.W001`` unknown keys,
``wsreject.W020``/``W021``/``E022``/``E023`` access control (see check_access_control),
``wsreject.E010``/``W011`` middleware order, ``wsreject.W010`` app order for Daphne.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning
from django.utils.module_loading import import_string

from .conf import DEFAULTS, DENIAL_MODES, FALLBACKS


def check_settings(app_configs=None, **kwargs) -> list:
    value = getattr(settings, "WSREJECT", {})
    if not isinstance(value, dict):
        return [Error("WSREJECT must be a dict.", id="wsreject.E001")]
    errors: list = []
    for key in sorted(set(value) - set(DEFAULTS)):
        errors.append(
            Warning(f"Unknown WSREJECT key {key!r}.", hint=f"Known keys: {', '.join(DEFAULTS)}.", id="wsreject.W001")
        )
    merged = {**DEFAULTS, **value}
    if merged["DENIAL_MODE"] not in DENIAL_MODES:
        errors.append(
            Error(f"WSREJECT['DENIAL_MODE'] is {merged['DENIAL_MODE']!r}.", hint=f"Use one of {DENIAL_MODES}.", id="wsreject.E002")
        )
    if merged["FALLBACK"] not in FALLBACKS:
        errors.append(
            Error(f"WSREJECT['FALLBACK'] is {merged['FALLBACK']!r}.", hint=f"Use one of {FALLBACKS}.", id="wsreject.E003")
        )
    errors.extend(_check_origins(merged["ALLOWED_ORIGINS"]))
    try:
        import_string(merged["TOKEN_AUTHENTICATOR"])
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        errors.append(Error(f"WSREJECT['TOKEN_AUTHENTICATOR'] cannot be imported: {exc}", id="wsreject.E005"))
    timeout = merged["DECISION_TIMEOUT"]
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        errors.append(
            Error(f"WSREJECT['DECISION_TIMEOUT'] is {timeout!r}.", hint="Use a positive number of seconds or None.", id="wsreject.E006")
        )
    return errors


def _check_origins(origins: Any) -> list:
    from .origins import parse_allowed

    if origins is None:
        return []
    if isinstance(origins, str) or not isinstance(origins, (list, tuple)):
        return [Error("WSREJECT['ALLOWED_ORIGINS'] must be a list, a tuple or None.", id="wsreject.E004")]
    errors = []
    for entry in origins:
        if entry == "*":
            continue
        try:
            parse_allowed(entry)
        except (ValueError, TypeError, AttributeError) as exc:
            errors.append(Error(f"WSREJECT['ALLOWED_ORIGINS']: {exc}", id="wsreject.E004"))
    return errors


def _children(app: Any) -> Iterator[Any]:
    """The applications an ASGI wrapper delegates to, as far as they can be seen."""
    if hasattr(app, "inner"):
        yield app.inner
    if isinstance(getattr(app, "application_mapping", None), dict):
        yield from app.application_mapping.values()
    for route in getattr(app, "routes", None) or ():
        if getattr(route, "callback", None) is not None:
            yield route.callback


def _walk(app: Any, outer: tuple = (), depth: int = 0) -> Iterator[tuple[Any, tuple]]:
    """Every application in the tree with the wrappers around it (outermost first)."""
    yield app, outer
    if depth < 50:
        for child in _children(app):
            yield from _walk(child, outer + (app,), depth + 1)


def check_asgi_stack(app_configs=None, **kwargs) -> list:
    """Find wsreject middleware that no DenialMiddleware wraps, and permission checks without a user."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []
    from .auth import CredentialsMiddleware
    from .middleware import DenialMiddleware, OriginMiddleware, PermissionMiddleware, RouteNotFoundMiddleware

    try:
        application = import_string(path)
    except Exception:  # the ASGI module's own errors are reported by Django and Channels
        return []
    deciding = (OriginMiddleware, PermissionMiddleware, RouteNotFoundMiddleware)
    errors = []
    for app, outer in _walk(application):
        if isinstance(app, deciding) and not any(isinstance(o, DenialMiddleware) for o in outer):
            errors.append(
                Error(
                    f"{type(app).__name__} in {path} is not inside a DenialMiddleware: its denials "
                    "would reach the server as errors.",
                    hint="Wrap the stack with wsreject.middleware.DenialMiddlewareStack().",
                    id="wsreject.E010",
                )
            )
        if isinstance(app, PermissionMiddleware) and not any(isinstance(o, CredentialsMiddleware) for o in outer):
            if not any(type(o).__name__ == "AuthMiddleware" for o in outer):
                errors.append(
                    Warning(
                        f"PermissionMiddleware in {path} has no CredentialsMiddleware (or Channels' "
                        "AuthMiddleware) outside it: every handshake will be anonymous.",
                        hint="Put it inside DenialMiddlewareStack().",
                        id="wsreject.W011",
                    )
                )
    return errors


def check_access_control(app_configs=None, **kwargs) -> list:
    """The cache behind permission sets and access rules; permissions consumers require.

    ``wsreject.W020`` process-local cache in production, ``E022`` unknown cache
    alias, ``E023`` invalid cache timeout or denial log size, ``W021`` a required
    permission of an app that is not installed.
    """
    from django.core.cache.backends.locmem import LocMemCache

    value = getattr(settings, "WSREJECT", {})
    merged = {**DEFAULTS, **value} if isinstance(value, dict) else dict(DEFAULTS)
    errors: list = []
    alias = merged["CACHE"]
    caches_setting = getattr(settings, "CACHES", {})
    if alias not in caches_setting:
        errors.append(Error(f"WSREJECT['CACHE'] is {alias!r}, which is not in CACHES.", id="wsreject.E022"))
    elif not settings.DEBUG:
        backend = caches_setting[alias].get("BACKEND", "")
        try:
            local = issubclass(import_string(backend), LocMemCache)
        except ImportError:
            local = False
        if local:
            errors.append(
                Warning(
                    f"The cache {alias!r} holding WebSocket permission sets and access rules is process-local: "
                    "with several server processes, a change made in the admin reaches the other processes "
                    "only when their cached copies expire (WSREJECT['PERMISSION_CACHE_TIMEOUT']).",
                    hint="Use a shared cache, e.g. django.core.cache.backends.redis.RedisCache, or "
                    "point WSREJECT['CACHE'] at one.",
                    id="wsreject.W020",
                )
            )
    timeout = merged["PERMISSION_CACHE_TIMEOUT"]
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        errors.append(
            Error(
                f"WSREJECT['PERMISSION_CACHE_TIMEOUT'] is {timeout!r}.",
                hint="Use a positive number of seconds, or None (no expiry).",
                id="wsreject.E023",
            )
        )
    size = merged["DENIAL_LOG_SIZE"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        errors.append(
            Error(
                f"WSREJECT['DENIAL_LOG_SIZE'] is {size!r}.",
                hint="Use a whole number, 0 to turn it off.",
                id="wsreject.E023",
            )
        )
    errors.extend(_check_required_permission_apps())
    return errors


def _check_required_permission_apps() -> list:
    from django.apps import apps

    from .declared_perms import declared_permissions

    try:
        declared = declared_permissions()
    except Exception:  # the ASGI module's own errors are reported by Django and Channels
        return []
    errors = []
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
