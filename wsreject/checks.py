"""System checks (``manage.py check``) for the ``WSREJECT`` settings and the ASGI stack.

Settings: ``E001`` not a dict, ``W001`` unknown key, ``E002`` DENIAL_MODE,
``E003`` FALLBACK, ``E004`` ALLOWED_ORIGINS, ``E005`` an authenticator that
cannot be loaded (an optional dependency not installed, say), ``E006``
DECISION_TIMEOUT, ``E007`` a key of an earlier version, ``E008``
EXCEPTION_HANDLER, ``E009`` LOG_RATE, ``E015`` NUM_PROXIES, ``E030`` an
explicitly configured authenticator that lacks what it needs (an app in
``INSTALLED_APPS``, a setting: its ``configuration_problems()``). With
``--deploy``: ``W031`` Origins effectively unchecked.

Stack: ``E010`` a deciding middleware outside a ``DenialMiddleware``,
``W011`` a permission middleware without credentials, ``W012`` Channels'
``OriginValidator`` around the wsreject stack, ``E013`` a router the access
rules cannot see into (``E013``: refused with 503). Daphne: ``W010`` (app order), ``E014`` (runserver without
Daphne). The access side's checks (``W020``-``E027``) are in
:mod:`wsreject.access.checks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .authentication import BaseAuthenticator, CredentialsMiddleware
from .conf import DEFAULTS, DENIAL_MODES, FALLBACKS, REMOVED, load, resolve
from .endpoints import inner_of, opaque_routers
from .middleware import DenialMiddleware, OriginMiddleware, PermissionMiddleware, RouteNotFoundMiddleware
from .origins import origins_unchecked, parse_allowed

__all__ = [
    "INSTALL_HINTS",
    "check_asgi_stack",
    "check_authenticator_requirements",
    "check_deploy_origins",
    "check_settings",
    "children",
    "merged_settings",
    "walk",
]

INSTALL_HINTS = {
    "rest_framework_simplejwt": 'pip install "wsreject[simplejwt]"',
    "rest_framework": 'pip install "wsreject[drf]"',
}


def merged_settings() -> dict[str, Any] | None:
    value = getattr(settings, "WSREJECT", {})
    return {**DEFAULTS, **value} if isinstance(value, dict) else None


def _positive_number(value: Any, *, allow_none: bool) -> bool:
    if value is None:
        return allow_none
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "WSREJECT", {})
    if not isinstance(value, dict):
        return [Error("WSREJECT must be a dict.", id="wsreject.E001")]
    errors: list[CheckMessage] = []
    for key in sorted(set(value) - set(DEFAULTS)):
        if key in REMOVED:
            errors.append(Error(f"WSREJECT[{key!r}] is no longer read.", hint=f"Use {REMOVED[key]}.", id="wsreject.E007"))
        else:
            errors.append(
                Warning(f"Unknown WSREJECT key {key!r}.", hint=f"Known keys: {', '.join(DEFAULTS)}.", id="wsreject.W001")
            )
    merged = {**DEFAULTS, **value}
    if merged["DENIAL_MODE"] not in DENIAL_MODES:
        errors.append(
            Error(
                f"WSREJECT['DENIAL_MODE'] is {merged['DENIAL_MODE']!r}.", hint=f"Use one of {DENIAL_MODES}.", id="wsreject.E002"
            )
        )
    if merged["FALLBACK"] not in FALLBACKS:
        errors.append(
            Error(f"WSREJECT['FALLBACK'] is {merged['FALLBACK']!r}.", hint=f"Use one of {FALLBACKS}.", id="wsreject.E003")
        )
    errors.extend(_check_origins(merged["ALLOWED_ORIGINS"]))
    errors.extend(_check_authenticators(merged["AUTHENTICATORS"]))
    if not _positive_number(merged["DECISION_TIMEOUT"], allow_none=True):
        errors.append(
            Error(
                f"WSREJECT['DECISION_TIMEOUT'] is {merged['DECISION_TIMEOUT']!r}.",
                hint="Use a positive number of seconds or None.",
                id="wsreject.E006",
            )
        )
    try:
        resolve("EXCEPTION_HANDLER", merged["EXCEPTION_HANDLER"])
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="wsreject.E008"))
    rate = merged["LOG_RATE"]
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 0):
        errors.append(
            Error(
                f"WSREJECT['LOG_RATE'] is {rate!r}.", hint="Use a whole number of lines per second, or None.", id="wsreject.E009"
            )
        )
    proxies = merged["NUM_PROXIES"]
    if isinstance(proxies, bool) or not isinstance(proxies, int) or proxies < 0:
        errors.append(
            Error(
                f"WSREJECT['NUM_PROXIES'] is {proxies!r}.",
                hint="Use 0 (no proxy) or how many proxies append to X-Forwarded-For.",
                id="wsreject.E015",
            )
        )
    return errors


def _check_origins(origins: Any) -> list[CheckMessage]:
    if origins is None:
        return []
    if isinstance(origins, str) or not isinstance(origins, (list, tuple)):
        return [Error("WSREJECT['ALLOWED_ORIGINS'] must be a list, a tuple or None.", id="wsreject.E004")]
    errors: list[CheckMessage] = []
    for entry in origins:
        if entry == "*":
            continue
        try:
            parse_allowed(entry)
        except (ValueError, TypeError, AttributeError) as exc:
            errors.append(Error(f"WSREJECT['ALLOWED_ORIGINS']: {exc}", id="wsreject.E004"))
    return errors


def _check_authenticators(entries: Any) -> list[CheckMessage]:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, (list, tuple)):
        return [Error("WSREJECT['AUTHENTICATORS'] must be a list.", id="wsreject.E005")]
    errors: list[CheckMessage] = []
    for entry in entries:
        try:
            authenticator = load(entry)
        except ImportError as exc:
            missing = getattr(exc, "name", "") or ""
            hint = next((text for module, text in INSTALL_HINTS.items() if missing.startswith(module)), None)
            errors.append(
                Error(f"WSREJECT['AUTHENTICATORS']: {entry!r} cannot be imported: {exc}", hint=hint, id="wsreject.E005")
            )
            continue
        except Exception as exc:
            errors.append(Error(f"WSREJECT['AUTHENTICATORS']: {entry!r} cannot be loaded: {exc!r}", id="wsreject.E005"))
            continue
        if not isinstance(authenticator, BaseAuthenticator):
            errors.append(
                Error(
                    f"WSREJECT['AUTHENTICATORS']: {entry!r} is not an authenticator.",
                    hint="Subclass wsreject.authentication.BaseAuthenticator (for a DRF class use DRFAuthenticator).",
                    id="wsreject.E005",
                )
            )
    return errors


def check_authenticator_requirements(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``wsreject.E030``: each authenticator of an explicit ``WSREJECT["AUTHENTICATORS"]`` says what
    it needs and the project lacks (``rest_framework.authtoken`` for DRF's tokens, say).

    The default list is not checked: its session authenticator without the sessions app is simply
    off, as Django's own middleware would be.
    """
    value = getattr(settings, "WSREJECT", {})
    entries = value.get("AUTHENTICATORS") if isinstance(value, dict) else None
    if isinstance(entries, (str, bytes)) or not isinstance(entries, (list, tuple)):
        return []  # absent (the defaults), or wsreject.E005
    errors: list[CheckMessage] = []
    for entry in entries:
        try:
            authenticator = load(entry)
        except Exception:  # an entry that cannot be loaded is wsreject.E005
            continue
        if not isinstance(authenticator, BaseAuthenticator):
            continue
        for problem, fix in authenticator.configuration_problems():
            errors.append(Error(f"WSREJECT['AUTHENTICATORS']: {_entry_name(entry)}: {problem}", hint=fix, id="wsreject.E030"))
    return errors


def _entry_name(entry: Any) -> str:
    path = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
    return path if isinstance(path, str) else repr(path)


def check_deploy_origins(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``wsreject.W031`` (``check --deploy``): Origins effectively unchecked — ``ALLOWED_HOSTS``
    holds ``"*"``, ``DEBUG`` is off and ``WSREJECT["ALLOWED_ORIGINS"]`` is not set, so any web page
    may open WebSockets with its visitors' cookies (cross-site WebSocket hijacking)."""
    merged = merged_settings()
    if merged is None or not isinstance(merged["ALLOWED_ORIGINS"], (list, tuple, type(None))):
        return []  # wsreject.E001 / E004
    if not origins_unchecked(merged["ALLOWED_ORIGINS"]):
        return []
    return [
        Warning(
            "ALLOWED_HOSTS contains '*' and WSREJECT['ALLOWED_ORIGINS'] is not set: wsreject checks a "
            "handshake's Origin against ALLOWED_HOSTS, so every Origin is accepted and any web page can open "
            "WebSockets with its visitors' session cookies (cross-site WebSocket hijacking).",
            hint="Set WSREJECT['ALLOWED_ORIGINS'] to your sites' origins, e.g. ['https://app.example.com'], "
            "or list your hosts in ALLOWED_HOSTS.",
            id="wsreject.W031",
        )
    ]


def children(app: Any) -> Iterator[Any]:
    """The applications an ASGI wrapper delegates to, as far as they can be seen."""
    inner = inner_of(app)
    if inner is not None:
        yield inner
    if isinstance(getattr(app, "application_mapping", None), dict):
        yield from app.application_mapping.values()
    for route in getattr(app, "routes", None) or ():
        if getattr(route, "callback", None) is not None:
            yield route.callback


def walk(app: Any, outer: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every application in the tree with the wrappers around it (outermost first)."""
    yield app, outer
    if depth < 50:
        for child in children(app):
            yield from walk(child, outer + (app,), depth + 1)


def _is_origin_validator(app: Any) -> bool:
    return any(
        f"{cls.__module__}.{cls.__qualname__}" == "channels.security.websocket.OriginValidator" for cls in type(app).__mro__
    )


def check_asgi_stack(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Misplaced wsreject middleware, validators around the stack, routers rules cannot see into (``E013``: refused with 503)."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []
    try:
        application = import_string(path)
    except Exception:  # the ASGI module's own errors are reported by Django and Channels
        return []
    deciding = (OriginMiddleware, PermissionMiddleware, RouteNotFoundMiddleware)
    errors: list[CheckMessage] = []
    reported_validators: set[int] = set()
    for app, outer in walk(application):
        if isinstance(app, deciding) and not any(isinstance(o, DenialMiddleware) for o in outer):
            errors.append(
                Error(
                    f"{type(app).__name__} in {path} is not inside a DenialMiddleware: its denials "
                    "would reach the server as errors.",
                    hint="Wrap the stack with wsreject.middleware.DenialMiddlewareStack().",
                    id="wsreject.E010",
                )
            )
        credentials = any(isinstance(o, CredentialsMiddleware) or type(o).__name__ == "AuthMiddleware" for o in outer)
        if isinstance(app, PermissionMiddleware) and not credentials:
            errors.append(
                Warning(
                    f"PermissionMiddleware in {path} has no CredentialsMiddleware (or Channels' "
                    "AuthMiddleware) outside it: every handshake will be anonymous.",
                    hint="Put it inside DenialMiddlewareStack().",
                    id="wsreject.W011",
                )
            )
        validators = [o for o in outer if _is_origin_validator(o) and id(o) not in reported_validators]
        if isinstance(app, DenialMiddleware) and validators:
            reported_validators.update(id(validator) for validator in validators)  # once each, however many stacks inside
            errors.append(
                Warning(
                    f"Channels' OriginValidator (or AllowedHostsOriginValidator) wraps the wsreject stack in {path}: "
                    "it refuses foreign origins, and every client that sends no Origin (non-browser clients), "
                    "with the server's bare 403 before wsreject runs, so they never get wsreject's JSON denial.",
                    hint="Remove it: DenialMiddlewareStack's OriginMiddleware already checks Origin against "
                    "ALLOWED_HOSTS (or WSREJECT['ALLOWED_ORIGINS']) and answers 403 \"Origin not allowed\".",
                    id="wsreject.W012",
                )
            )
    for route, router in opaque_routers(application):
        errors.append(
            Error(
                f"{type(router).__name__} at {route!r} in {path} routes paths but hides its routes (no 'inner', "
                "'application' or 'app' attribute, nor one attribute leading to a router): wsreject cannot see "
                "which endpoint below it a handshake reaches, so every handshake that reaches one is refused "
                "with 503 (the rest of the site is unaffected).",
                hint="Expose the wrapped application as 'inner', as Channels' middleware does.",
                id="wsreject.E013",
            )
        )
    return errors
