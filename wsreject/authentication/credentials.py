"""Who is connecting: ``CredentialsMiddleware`` and the user it resolves only when needed.

For each handshake the configured authenticators (``WSREJECT["AUTHENTICATORS"]``)
are asked, on the event loop, whether they recognise a credential. A handshake
that carries none gets ``AnonymousUser`` at once: no query, no thread hop.
Otherwise the user is authenticated before the inner application runs, as
Channels' ``AuthMiddleware`` does (so ``self.scope["user"]`` works in any
consumer, async ones included): on the event loop when the answer is in a
process-local cache, else in one worker thread.

A refused credential (invalid, expired, an inactive user) leaves the user
anonymous and is remembered, so the ``401`` says why ("Invalid credentials",
"Token expired") and carries the refusing scheme's challenge. Tokens in the
query string are never read (URLs end up in logs); browsers use single-use
tickets instead (:mod:`wsreject.authentication.tickets`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.functional import LazyObject

from ..conf import load, wsreject_settings
from ..denial import DenialResponse, DenyHandshake, DenyWithResponse
from ..edge.trust import vouched_user
from ..handshake import current_handshake
from ..offload import io_allowed, run_off_loop_if_needed
from ..scope import VOUCHED_KEY, header_values, loaded_user
from ..trace import active, record
from ..types import Receive, Scope, Send
from .base import (
    AUTHORIZATION_KEY,
    NOT_AUTHENTICATED,
    AuthenticationFailed,
    BaseAuthenticator,
    authorization,
    parse_authorization,
)
from .session_keys import plausible_session_key

STATE_KEY = "wsreject.auth"

Candidate = tuple[BaseAuthenticator, Any]


class AuthState:
    """Per-connection authentication state, shared by every copy of the scope."""

    __slots__ = ("candidates", "external", "failure", "refused_by")

    def __init__(self, candidates: Sequence[Candidate] = (), *, external: bool = False) -> None:
        self.candidates = tuple(candidates)
        self.failure: AuthenticationFailed | None = None
        self.refused_by: BaseAuthenticator | None = None
        self.external = external  # another middleware (Channels' AuthMiddleware) set scope["user"]

    @property
    def presented(self) -> bool:
        """Whether the handshake carries a credential some authenticator recognised."""
        return bool(self.candidates) or self.external

    def refuse(self, authenticator: BaseAuthenticator, failure: AuthenticationFailed) -> AnonymousUser:
        failure.__traceback__ = None  # kept for the answer; its frames would hold it: a cycle
        self.failure, self.refused_by = failure, authenticator
        return AnonymousUser()


def auth_state(scope: Scope) -> AuthState:
    """The scope's :class:`AuthState`; a scope built without our middleware has none."""
    state = scope.get(STATE_KEY)
    if isinstance(state, AuthState):
        return state
    return AuthState(external=scope.get("user") is not None)


def as_authentication_failure(exc: BaseException) -> AuthenticationFailed | None:
    """``exc`` as an :class:`AuthenticationFailed` when it means "credential refused"."""
    if isinstance(exc, AuthenticationFailed):
        return exc
    try:
        from rest_framework import exceptions as drf
    except ImportError:
        return None
    if isinstance(exc, (drf.AuthenticationFailed, drf.NotAuthenticated)):
        detail: Any = exc.detail
        if isinstance(detail, dict):
            detail = detail.get("detail") or ""
        return AuthenticationFailed(str(detail) or None)
    return None


def _call(authenticator: BaseAuthenticator, scope: Scope, credential: Any) -> Any:
    if not io_allowed():
        return authenticator.authenticate_without_io(scope, credential)
    if inspect.iscoroutinefunction(authenticator.authenticate):
        return async_to_sync(authenticator.authenticate)(scope, credential)
    return authenticator.authenticate(scope, credential)


def resolve_user(scope: Scope, state: AuthState) -> Any:
    """The user for the recognised credentials; synchronous (see :mod:`wsreject.offload`)."""
    for authenticator, credential in state.candidates:
        try:
            user = _call(authenticator, scope, credential)
        except Exception as exc:
            failure = as_authentication_failure(exc)
            if failure is None:
                raise
            return state.refuse(authenticator, failure)
        if user is None:
            continue  # not mine after all: ask the next one
        if not getattr(user, "is_active", False):
            return state.refuse(authenticator, AuthenticationFailed())
        return user
    return AnonymousUser()


def is_authenticated(scope: Scope) -> bool:
    user = scope.get("user")
    return bool(user is not None and user.is_authenticated)


@functools.lru_cache(maxsize=128)
def _unauthorized(detail: str, challenge: str) -> DenialResponse:
    return DenyHandshake(401, detail, headers={"WWW-Authenticate": challenge}).response()


def unauthenticated(scope: Scope) -> DenyHandshake:
    """The ``401`` for a handshake without a signed-in user, saying why."""
    state = auth_state(scope)
    failure, authenticator = state.failure, state.refused_by
    if failure is None or authenticator is None:
        return DenyWithResponse(_unauthorized(NOT_AUTHENTICATED, "Bearer"))
    challenge = authenticator.challenge(failure) or "Bearer"
    return DenyWithResponse(_unauthorized(failure.detail, challenge))


def refused_without_credentials(scope: Scope) -> bool:
    """True when nobody can be signed in: no credential at all, known without any I/O."""
    user = loaded_user(scope)
    return user is not None and not user.is_authenticated and not auth_state(scope).presented


async def aresolve_user(scope: Scope) -> Any:
    """Load ``scope["user"]`` from async code: on the event loop when cached, else one thread hop."""
    user = scope.get("user")
    if isinstance(user, LazyObject) and loaded_user(scope) is None:
        await run_off_loop_if_needed(getattr(user, "_setup"))  # noqa: B009 - LazyObject's hook, untyped
    return loaded_user(scope)


class UnrecognisedBearer(BaseAuthenticator):
    """A bearer token that no configured authenticator accepts as its own: refused as
    invalid (RFC 6750 ``invalid_token``), decided without any I/O."""

    def authenticate(self, scope: Scope, credential: Any) -> Any:
        raise AuthenticationFailed()

    authenticate_without_io = authenticate


UNRECOGNISED_BEARER = UnrecognisedBearer()


def candidates(scope: Scope, authenticators: Sequence[BaseAuthenticator]) -> list[Candidate]:
    """The authenticators that recognise something in this handshake, with what they read.

    A well-formed ``Authorization: Bearer <token>`` that none takes as its own is
    a refused credential ("Invalid credentials"), not an absent one: it comes
    last, and refuses when every candidate before it said "not mine".
    """
    found = []
    for authenticator in authenticators:
        credential = authenticator.get_credential(scope)
        if credential is not None:
            found.append((authenticator, credential))
    presented = authorization(scope)
    if presented is not None and presented[0].lower() == "bearer":
        found.append((UNRECOGNISED_BEARER, presented[1]))
    return found


class CredentialsMiddleware:
    """Put ``scope["user"]`` (lazy), ``scope["session"]`` and the authentication state in the scope.

    ``authenticators`` overrides ``WSREJECT["AUTHENTICATORS"]`` for what this
    middleware wraps (instances, classes or dotted paths).
    """

    def __init__(self, inner: Any, *, authenticators: Sequence[Any] | None = None) -> None:
        self.inner = inner
        self.authenticators = None if authenticators is None else tuple(load(entry) for entry in authenticators)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        injected = getattr(current_handshake(scope), "injected_user", None)  # a probe deciding as a given user
        scope[AUTHORIZATION_KEY] = parse_authorization(scope)  # once, for every authenticator
        authenticators = self.authenticators or wsreject_settings.authenticators()
        vouched = None if injected is not None else await vouched_user(scope)  # the edge decided it already
        if vouched is not None:
            scope[VOUCHED_KEY] = True
            state = AuthState(external=vouched.is_authenticated)
        elif injected is not None:
            state = AuthState(external=True)
        else:
            state = AuthState(candidates(scope, authenticators))
        scope[STATE_KEY] = state
        if "django.contrib.sessions" in settings.INSTALLED_APPS and "session" not in scope:
            scope["session"] = session_store(scope)
        if vouched is not None:
            scope["user"] = vouched
        elif injected is not None:  # an inactive user is refused as their credential would be
            scope["user"] = injected if injected.is_active else state.refuse(UNRECOGNISED_BEARER, AuthenticationFailed())
        elif state.candidates:
            # Before the consumer, which may read scope["user"] on the event loop.
            scope["user"] = await run_off_loop_if_needed(resolve_user, scope, state)
        else:
            scope["user"] = AnonymousUser()
        handshake = current_handshake(scope)
        if handshake is not None:
            handshake.user = scope["user"]
        if active():
            record("authentication", None, authentication_note(scope["user"], state))
        return await self.inner(scope, receive, send)


def authentication_note(user: Any, state: AuthState) -> str:
    """Who the authenticators found, for a trace."""
    if state.failure is not None and state.external:
        return f"anonymous: the given user is inactive (their credentials are refused: {state.failure.detail})"
    if state.failure is not None:
        return f"anonymous: {type(state.refused_by).__name__} refused the credential ({state.failure.detail})"
    if state.external:
        return f"{user.get_username()!r} (given, credentials not checked)"
    if not state.candidates:
        return "anonymous: no credential"
    return f"{user.get_username()!r} ({', '.join(type(found[0]).__name__ for found in state.candidates)})"


def session_key(scope: Scope) -> str | None:
    """The session cookie's value, when the sessions app is installed and the value can be a
    session key at all (:mod:`~wsreject.authentication.session_keys`); else None: no session."""
    if "django.contrib.sessions" not in settings.INSTALLED_APPS:
        return None
    cookies = header_values(scope, b"cookie")
    if not cookies:
        return None
    parsed = parse_cookie("; ".join(value.decode("latin-1") for value in cookies))
    value = parsed.get(settings.SESSION_COOKIE_NAME)
    if not value or not plausible_session_key(value, settings.SESSION_ENGINE):
        return None
    return value


def session_store(scope: Scope) -> Any:
    """A session object for the cookie (or a new one); it touches the backend only when read."""
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key(scope))


__all__ = [
    "AuthState",
    "CredentialsMiddleware",
    "aresolve_user",
    "auth_state",
    "is_authenticated",
    "unauthenticated",
]
