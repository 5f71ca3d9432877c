"""The ``WSREJECT`` settings dict, read lazily so ``override_settings`` works.

Every key, with its default::

    WSREJECT = {
        # "http": send denials as HTTP responses when the server advertises the
        # ASGI "websocket.http.response" extension, else use FALLBACK.
        # "close_code": always accept, send {"detail": ...}, close with 4000+status
        # (the only denial a browser's JavaScript can read).
        "DENIAL_MODE": "http",
        # What "http" mode does on a server without the extension:
        # "close" (the server's own bare 403) or "close_code".
        "FALLBACK": "close",
        # Origins allowed to open WebSockets: a list of "scheme://host[:port]"
        # (the host may start with "*." for subdomains) or "*". None derives
        # them from ALLOWED_HOSTS (any scheme and port).
        "ALLOWED_ORIGINS": None,
        # Whether a handshake without an Origin header (non-browser clients) passes.
        "ALLOW_MISSING_ORIGIN": True,
        # Dotted path to a callable(token: str) -> user or None resolving bearer tokens.
        "TOKEN_AUTHENTICATOR": "wsreject.tokens.authenticate",
        # Seconds the application may take to accept or deny a handshake before
        # DenialMiddleware answers 503 "Connection check timed out". None: no limit.
        "DECISION_TIMEOUT": 4.0,
        # The Django cache alias holding cached permission sets, access rules and
        # the shared denial log. Several server processes need a shared cache
        # (Redis, Memcached, the database cache) to see each other's changes at
        # the next handshake: see check wsreject.W020.
        "CACHE": "default",
        # Seconds a user's permission set and the access rules stay cached. Changes
        # take effect at the next handshake through versioned keys; this only
        # bounds memory, and staleness should a version bump be lost.
        "PERMISSION_CACHE_TIMEOUT": 300,
        # Recent denials kept per process for the admin's "Recent denials" page
        # (0 turns the log off).
        "DENIAL_LOG_SIZE": 100,
    }
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    "DENIAL_MODE": "http",
    "FALLBACK": "close",
    "ALLOWED_ORIGINS": None,
    "ALLOW_MISSING_ORIGIN": True,
    "TOKEN_AUTHENTICATOR": "wsreject.tokens.authenticate",
    "DECISION_TIMEOUT": 4.0,
    "CACHE": "default",
    "PERMISSION_CACHE_TIMEOUT": 300,
    "DENIAL_LOG_SIZE": 100,
}

DENIAL_MODES = ("http", "close_code")
FALLBACKS = ("close", "close_code")


class Settings:
    """Attribute access to ``settings.WSREJECT`` merged over :data:`DEFAULTS`.

    Nothing is cached: each access reads Django's settings, which is cheap and
    keeps ``override_settings`` and ``settings`` fixtures working.
    """

    def user_settings(self) -> dict[str, Any]:
        value = getattr(django_settings, "WSREJECT", None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown wsreject setting {name!r}")
        return self.user_settings().get(name, DEFAULTS[name])


wsreject_settings = Settings()
