"""The ``WSREJECT`` settings dict, read lazily so ``override_settings`` works.

Every key, with its default (``docs/settings.md`` explains each one)::

    WSREJECT = {
        "DENIAL_MODE": "http",          # or "close_code" (browsers): accept, then close 4000+status
        "FALLBACK": "close",            # "http" mode on a server without the extension: "close" | "close_code"
        "ALLOWED_ORIGINS": None,        # ["https://app.example.com", "https://*.example.com"] or ["*"];
                                        # None: the hosts of ALLOWED_HOSTS (any scheme and port)
        "ALLOW_MISSING_ORIGIN": True,   # non-browser clients send no Origin
        "AUTHENTICATORS": [             # the first that recognises its credential decides
            "wsreject.authentication.tickets.TicketAuthenticator",
            "wsreject.authentication.tokens.AccessTokenAuthenticator",
            "wsreject.authentication.SessionAuthenticator",
        ],
        "EXCEPTION_HANDLER": "wsreject.denial.default_exception_handler",
        "DECISION_TIMEOUT": 4.0,        # seconds to accept or deny before a 503; None: no limit
        "CACHE": "default",             # permission sets, access rules, token lookups, tickets, denial log
        "THROTTLE_CACHE": "default",    # Throttle counters (give them their own alias: see check W025)
        "PERMISSION_CACHE_TIMEOUT": 300,  # seconds cached entries live at most
        "MAX_STALENESS": 5,             # seconds a change made in another process may take to be seen
                                        # when the cache is process-local (with Redis: the next handshake)
        "VERSION_RECHECK": 1.0,         # with Redis: seconds a process trusts its pushed copy of a version
                                        # before reading it again (the bound when a push is lost)
        "NUM_PROXIES": 0,               # trusted reverse proxies in front (X-Forwarded-For), for throttles
        "TICKET_TTL": 30,               # seconds a browser ticket stays valid (it is valid once)
        "DENIAL_LOG_SIZE": 100,         # recent denials kept per process for the admin; 0: off
        "LOG_RATE": 100,                # denials logged one by one per second; beyond, one summary a second
        "REVOCATION": True,             # re-check open connections when access changes; close those it refuses
        "EXPIRY_GRACE": 0,              # seconds an open connection outlives its credential's expiry
    }
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

__all__ = [
    "DEFAULTS",
    "DEFAULT_AUTHENTICATORS",
    "DENIAL_MODES",
    "FALLBACKS",
    "IMPORT_STRINGS",
    "REMOVED",
    "Settings",
    "load",
    "resolve",
    "wsreject_settings",
]

DEFAULT_AUTHENTICATORS = (
    "wsreject.authentication.tickets.TicketAuthenticator",
    "wsreject.authentication.tokens.AccessTokenAuthenticator",
    "wsreject.authentication.SessionAuthenticator",
)

DEFAULTS: dict[str, Any] = {
    "DENIAL_MODE": "http",
    "FALLBACK": "close",
    "ALLOWED_ORIGINS": None,
    "ALLOW_MISSING_ORIGIN": True,
    "AUTHENTICATORS": list(DEFAULT_AUTHENTICATORS),
    "EXCEPTION_HANDLER": "wsreject.denial.default_exception_handler",
    "DECISION_TIMEOUT": 4.0,
    "CACHE": "default",
    "THROTTLE_CACHE": "default",
    "PERMISSION_CACHE_TIMEOUT": 300,
    "MAX_STALENESS": 5,
    "VERSION_RECHECK": 1.0,
    "NUM_PROXIES": 0,
    "TICKET_TTL": 30,
    "DENIAL_LOG_SIZE": 100,
    "LOG_RATE": 100,
    "REVOCATION": True,
    "EXPIRY_GRACE": 0,
}

#: Keys of earlier versions, with what replaced them (check wsreject.E007).
REMOVED = {"TOKEN_AUTHENTICATOR": "AUTHENTICATORS (a list; see the README's Authentication section)"}

#: Settings whose value names objects: reading them gives the objects (imported and built once,
#: until ``WSREJECT`` changes), as DRF's ``api_settings`` does. See :func:`resolve`.
IMPORT_STRINGS = ("AUTHENTICATORS", "EXCEPTION_HANDLER")

DENIAL_MODES = ("http", "close_code")
FALLBACKS = ("close", "close_code")


def load(entry: Any) -> Any:
    """An object from a settings entry: a dotted path, ``(dotted path, kwargs)``, a class or an instance.

    Classes (named or given) are instantiated with the kwargs, or none.
    """
    kwargs: dict[str, Any] = {}
    if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], dict):
        entry, kwargs = entry
    if isinstance(entry, str):
        entry = import_string(entry)
    if isinstance(entry, type):
        return entry(**kwargs)
    return entry


def resolve(name: str, value: Any) -> Any:
    """The objects setting ``name`` (one of :data:`IMPORT_STRINGS`) names: the authenticators as a
    tuple of instances, the exception handler as a callable. Anything that cannot be used raises
    :class:`~django.core.exceptions.ImproperlyConfigured` naming the setting (the system checks
    report the same, entry by entry, at startup)."""
    try:
        if name == "AUTHENTICATORS":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise TypeError("it must be a list")
            return tuple(load(entry) for entry in value)
        if name == "EXCEPTION_HANDLER":
            handler = import_string(value) if isinstance(value, str) else value
            if not callable(handler):
                raise TypeError(f"{handler!r} is not callable")
            return handler
    except Exception as exc:
        raise ImproperlyConfigured(f"WSREJECT[{name!r}] = {value!r} cannot be used: {exc}") from exc
    raise KeyError(f"{name} is not an import-string setting")


class Settings:
    """Attribute access to ``settings.WSREJECT`` merged over :data:`DEFAULTS`.

    Settings listed in :data:`IMPORT_STRINGS` read as the objects they name (:func:`resolve`).
    The merged values, and the objects built from them (the authenticators, the
    exception handler), are kept until Django says ``WSREJECT`` changed
    (``setting_changed``, which ``override_settings`` and pytest-django's
    ``settings`` fixture send), so a handshake reads plain attributes.
    """

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}
        self._merged: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def user_settings(self) -> dict[str, Any]:
        value = getattr(django_settings, "WSREJECT", None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        merged = self._merged
        if merged is None:
            merged = self._merged = {**DEFAULTS, **self.user_settings()}
        if name in IMPORT_STRINGS:
            value = merged.get(name, DEFAULTS[name])
            return self._build(name, lambda: resolve(name, value))
        try:
            return merged[name] if name in DEFAULTS else self._unknown(name)
        except KeyError:
            return DEFAULTS[name]

    def raw(self, name: str) -> Any:
        """What the project wrote for ``name`` (or the default), before :func:`resolve`."""
        return self.user_settings().get(name, DEFAULTS[name])

    @staticmethod
    def _unknown(name: str) -> Any:
        raise AttributeError(f"Unknown wsreject setting {name!r}")

    def _build(self, key: str, factory: Callable[[], Any]) -> Any:
        try:
            return self._built[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._built:
                self._built[key] = factory()
            return self._built[key]

    def authenticators(self) -> tuple[Any, ...]:
        """The configured authenticators, in order, as instances."""
        return self.AUTHENTICATORS  # type: ignore[no-any-return]

    def exception_handler(self) -> Callable[..., Any]:
        """The configured exception handler callable."""
        return self.EXCEPTION_HANDLER  # type: ignore[no-any-return]

    def reset(self) -> None:
        with self._lock:
            self._built.clear()
            self._merged = None


wsreject_settings = Settings()


def _reset(setting: str, **kwargs: Any) -> None:
    if setting == "WSREJECT":
        wsreject_settings.reset()


setting_changed.connect(_reset, dispatch_uid="wsreject.conf.reset")
