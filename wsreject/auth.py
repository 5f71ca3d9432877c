"""Who is connecting: credentials from the handshake, and a user resolved only when needed.

``CredentialsMiddleware`` reads ``Authorization: Bearer <token>`` and the
session cookie. A handshake that carries neither gets ``AnonymousUser`` at once
(no query, no thread hop); otherwise ``scope["user"]`` is a lazy object that
loads the user on first use, from a worker thread (``database_sync_to_async``)
or with ``await aresolve_user(scope)``.

A bearer token that does not resolve to an active user marks the credential
*invalid*, so a login check can answer "Invalid credentials" rather than
"Not authenticated". A malformed ``Authorization`` header (another scheme,
``Bearer`` alone, non-ASCII, several headers) counts as no credential at all.
Tokens in the query string are never read: URLs end up in logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.functional import LazyObject, SimpleLazyObject, empty
from django.utils.module_loading import import_string

from .conf import wsreject_settings

STATE_KEY = "wsreject.auth"
# RFC 6750 b64token.
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Credential:
    """What the client presented: ``kind`` is ``"bearer"`` or ``"session"``."""

    kind: str
    value: str


class AuthState:
    """Per-connection authentication state, shared by every copy of the scope."""

    __slots__ = ("credential", "invalid")

    def __init__(self, credential: Credential | None) -> None:
        self.credential = credential
        self.invalid = False  # set when a presented bearer token does not resolve


def auth_state(scope: dict[str, Any]) -> AuthState:
    """The scope's :class:`AuthState`; a scope built without our middleware has none."""
    state = scope.get(STATE_KEY)
    if state is None:
        user = scope.get("user")
        # Another middleware (e.g. Channels' AuthMiddleware) resolved the user: trust it.
        return AuthState(Credential("external", "") if user is not None else None)
    return state


def header_values(scope: dict[str, Any], name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


def read_credential(scope: dict[str, Any]) -> Credential | None:
    """The bearer token, else the session cookie, else None."""
    authorization = header_values(scope, b"authorization")
    if len(authorization) == 1:
        try:
            match = _BEARER.match(authorization[0].decode("ascii"))
        except UnicodeDecodeError:
            match = None
        if match:
            return Credential("bearer", match.group(1))
    if "django.contrib.sessions" in settings.INSTALLED_APPS:
        cookies = header_values(scope, b"cookie")
        if cookies:
            parsed = parse_cookie("; ".join(v.decode("latin-1") for v in cookies))
            session_key = parsed.get(settings.SESSION_COOKIE_NAME)
            if session_key:
                return Credential("session", session_key)
    return None


def resolve_user(scope: dict[str, Any], state: AuthState):
    """Load the user for ``state.credential``; synchronous, so run it off the event loop."""
    credential = state.credential
    if credential is None:
        return AnonymousUser()
    if credential.kind == "bearer":
        authenticate = import_string(wsreject_settings.TOKEN_AUTHENTICATOR)
        user = authenticate(credential.value)
        if user is None or not getattr(user, "is_active", False):
            state.invalid = True
            return AnonymousUser()
        return user
    # Session: Django's own get_user verifies the session hash, as for views.
    from django.contrib.auth import get_user

    return get_user(SimpleNamespace(session=scope["session"]))


def loaded_user(scope: dict[str, Any]):
    """``scope["user"]`` if it is loaded already, else None (never triggers a query)."""
    user = scope.get("user")
    if isinstance(user, LazyObject) and user._wrapped is empty:
        return None
    return user


async def aresolve_user(scope: dict[str, Any]):
    """Load ``scope["user"]`` from async code: at most one thread hop, none when loaded."""
    user = scope.get("user")
    if isinstance(user, LazyObject) and user._wrapped is empty:
        await database_sync_to_async(user._setup)()
    return loaded_user(scope)


class CredentialsMiddleware:
    """Put ``scope["user"]`` (lazy), ``scope["session"]`` and the credential state in the scope."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        credential = read_credential(scope)
        state = AuthState(credential)
        scope[STATE_KEY] = state
        if "django.contrib.sessions" in settings.INSTALLED_APPS:
            scope["session"] = _session_store(credential)
        if credential is None:
            scope["user"] = AnonymousUser()
        else:
            scope["user"] = SimpleLazyObject(lambda: resolve_user(scope, state))
        return await self.inner(scope, receive, send)


def _session_store(credential: Credential | None):
    """A session object; it touches the session backend only when read."""
    from importlib import import_module

    engine = import_module(settings.SESSION_ENGINE)
    key = credential.value if credential and credential.kind == "session" else None
    return engine.SessionStore(key)
