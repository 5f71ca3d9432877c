"""System checks (``manage.py check``) for the ``WSREJECT`` settings and the ASGI stack.

Ids: ``wsreject.E001``-``E006`` settings errors, ``wsreject.W001`` unknown keys,
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
