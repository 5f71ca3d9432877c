"""ASGI middleware that decides handshakes before any consumer is built.

Channels style: nothing per connection is stored on the instance, the scope
is copied before it is changed, and scopes other than ``websocket`` pass
through untouched. The recommended order, outermost first, is what
:func:`DenialMiddlewareStack` builds::

    DenialMiddleware(                    # anything raised before accept -> a denial; after -> close 1011
        OriginMiddleware(                # 403 "Origin not allowed"
            CredentialsMiddleware(       # scope["user"] from the configured authenticators
                AccessRuleMiddleware(    # the admin's access rules, on the routed endpoint
                    RouteNotFoundMiddleware(URLRouter([...]))   # 404 "Not Found"
                )
            )
        )
    )
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.urls.exceptions import Resolver404

from .authentication import CredentialsMiddleware
from .conf import wsreject_settings
from .connections import unwatch, watch
from .denial import DenyHandshake, ExceptionHandler
from .enforcement import AccessRuleMiddleware
from .handshake import Handshake, current_handshake
from .metrics import OBSERVATION_KEY, UNMATCHED, Observation
from .origins import is_allowed, parse_origin
from .permissions import BasePermission, HasPermissions, IsAuthenticated, as_permission, authorize
from .routes import routes_paths
from .scope import HANDSHAKE_KEY, escape, header_values
from .trace import active, record
from .types import Receive, Scope, Send

__all__ = [
    "DECISION_TIMED_OUT",
    "NO_ROUTE",
    "DenialMiddleware",
    "DenialMiddlewareStack",
    "LoginRequiredMiddleware",
    "OriginMiddleware",
    "PermissionMiddleware",
    "PermissionRequiredMiddleware",
    "RouteNotFoundMiddleware",
    "Wrapper",
    "origin_note",
]

logger = logging.getLogger("wsreject")

DECISION_TIMED_OUT = "Connection check timed out"
NO_ROUTE = "No route found for path"  # the outermost URLRouter's ValueError
_UNSET: Any = object()


class Wrapper:
    """A middleware around ``inner``. Like Channels' own, it may wrap a nested ``URLRouter``
    inside ``path()``: it says it routes paths when what it wraps does."""

    inner: Any

    @property
    def _path_routing(self) -> bool:
        return routes_paths(self.inner)


class DenialMiddleware(Wrapper):
    """Turn anything raised before accept into a denial; close with 1011 after accept.

    ``denial_mode`` overrides ``WSREJECT["DENIAL_MODE"]`` for what this
    middleware wraps (it may be nested under a ``URLRouter`` prefix to give some
    routes another mode); ``exception_handler`` overrides
    ``WSREJECT["EXCEPTION_HANDLER"]`` (``handler(exc, scope)`` returns a
    :class:`~wsreject.denial.DenialResponse`, or None for a logged 500);
    ``decision_timeout`` overrides ``WSREJECT["DECISION_TIMEOUT"]``: a handshake
    neither accepted nor denied in time is answered 503 before the server's own
    handshake timeout turns it into a reset. Only the outermost one keeps that
    deadline.
    """

    def __init__(
        self,
        inner: Any,
        *,
        denial_mode: str | None = None,
        exception_handler: ExceptionHandler | None = None,
        decision_timeout: Any = _UNSET,
    ) -> None:
        self.inner = inner
        self.denial_mode = denial_mode
        self.exception_handler = exception_handler
        self.decision_timeout = decision_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        outer = current_handshake(scope)
        if outer is not None:
            return await self._nested(outer, scope, receive, send)
        handshake = Handshake(receive, send, self.denial_mode, self.exception_handler)
        if wsreject_settings.REVOCATION:
            watch(handshake, scope, self)  # registered if accepted: re-checked when access changes
        observation = scope.get(OBSERVATION_KEY)
        if isinstance(observation, Observation):
            observation.handshake = handshake  # MetricsMiddleware outside: its label without a probe
        scope = {**scope, HANDSHAKE_KEY: handshake}
        timeout = wsreject_settings.DECISION_TIMEOUT if self.decision_timeout is _UNSET else self.decision_timeout
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                handshake.on_decided = lambda: deadline.reschedule(None)
                await self.inner(scope, handshake.receive, handshake.send)
        except TimeoutError as exc:
            if deadline.expired() and not handshake.decided:
                logger.warning("Handshake for %s not decided within %ss", escape(scope.get("path", "")), timeout)
                await handshake.fail(scope, DenyHandshake(503, DECISION_TIMED_OUT))  # the one denial path
            else:
                await handshake.fail(scope, exc)
        except Exception as exc:
            await handshake.fail(scope, exc)
            if isinstance(exc, DenyHandshake):
                exc.__traceback__ = None  # answered; its frames refer to it: a cycle holding the handshake
        finally:
            # The hooks refer back to the handshake, the route record to the scopes it matched in,
            # which hold the handshake: cycles. Dropped now, a handshake is freed by reference
            # counting when it ends, not left for the garbage collector (every denial, at any rate).
            unwatch(handshake)
            handshake.on_decided = None
            handshake.hops = []
            handshake.route = handshake.endpoint = None

    async def _nested(self, handshake: Handshake, scope: Scope, receive: Receive, send: Send) -> Any:
        before = handshake.denial_mode, handshake.exception_handler
        if self.denial_mode is not None and not handshake.mode_fixed:  # below the consumer's leaf: decided there
            handshake.denial_mode = self.denial_mode
        if self.exception_handler is not None:
            handshake.exception_handler = self.exception_handler
        try:
            await self.inner(scope, receive, send)
        except Resolver404:
            # A nested router found no route: the router above tries its next one, as with
            # plain Channels, and this stack's settings no longer apply.
            handshake.denial_mode, handshake.exception_handler = before
            if self.denial_mode is not None and handshake.miss_mode is None:
                handshake.miss_mode = self.denial_mode  # if no route matches at all, the 404 goes out so
            raise
        except Exception as exc:
            await handshake.fail(scope, exc)
            if isinstance(exc, DenyHandshake):
                exc.__traceback__ = None


class OriginMiddleware(Wrapper):
    """Deny a browser handshake from an origin that is not allowed: 403 "Origin not allowed".

    A missing ``Origin`` passes when ``allow_missing`` (non-browser clients send
    none); several ``Origin`` headers, ``null`` or a malformed value are denied.
    Arguments left as None read ``ALLOWED_ORIGINS`` / ``ALLOW_MISSING_ORIGIN``.
    """

    detail = "Origin not allowed"

    def __init__(self, inner: Any, *, allowed_origins: list[str] | None = None, allow_missing: bool | None = None) -> None:
        self.inner = inner
        self.allowed_origins = allowed_origins
        self.allow_missing = allow_missing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] == "websocket" and not self.origin_allowed(scope):
            denial = DenyHandshake(403, self.detail)
            if active():
                record("Origin", denial, origin_note(scope))
            raise denial
        if active():
            record("Origin", None, origin_note(scope))
        return await self.inner(scope, receive, send)

    def origin_allowed(self, scope: Scope) -> bool:
        values = header_values(scope, b"origin")
        if not values:
            allow = self.allow_missing
            return bool(wsreject_settings.ALLOW_MISSING_ORIGIN if allow is None else allow)
        if len(values) > 1:
            return False
        origin = parse_origin(values[0].decode("latin-1"))
        if origin is None:
            return False
        allowed = self.allowed_origins
        return is_allowed(origin, wsreject_settings.ALLOWED_ORIGINS if allowed is None else allowed)


def origin_note(scope: Scope) -> str:
    values = header_values(scope, b"origin")
    return "no Origin header" if not values else ", ".join(escape(value.decode("latin-1")) for value in values)


class PermissionMiddleware(Wrapper):
    """Deny unless every given permission passes, before the consumer is built.

    The permissions see the application this middleware guards as their
    ``consumer`` argument.
    """

    def __init__(self, inner: Any, *permissions: Any) -> None:
        if not permissions:
            raise ValueError("PermissionMiddleware needs at least one permission")
        self.inner = inner
        permission: BasePermission = as_permission(permissions[0])
        for extra in permissions[1:]:
            permission = permission & extra
        self.permission = permission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] == "websocket":
            await authorize(scope, self.permission, self.inner)
        return await self.inner(scope, receive, send)


def LoginRequiredMiddleware(inner: Any) -> PermissionMiddleware:
    """401 (with the challenge of the refused credential) for anonymous handshakes."""
    return PermissionMiddleware(inner, IsAuthenticated)


def PermissionRequiredMiddleware(
    inner: Any, perms: str | list[str] | tuple[str, ...], *, detail: str | None = None
) -> PermissionMiddleware:
    """401 for anonymous handshakes, 403 unless the user holds every permission in ``perms``."""
    return PermissionMiddleware(inner, IsAuthenticated, HasPermissions(perms, detail=detail))


class RouteNotFoundMiddleware(Wrapper):
    """Answer Channels' own "no route" outcome with 404 "Not Found".

    The outermost ``URLRouter`` raises ``ValueError("No route found for path …")``
    for a path (or a ``root_path``) it cannot route; nested ones raise
    ``Resolver404``, an ``Http404``. The router runs on the scope as it comes
    (path-rewriting middleware below works); its ``ValueError`` becomes a 404
    when no endpoint was reached.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        try:
            return await self.inner(scope, receive, send)
        except ValueError as exc:
            handshake = current_handshake(scope)
            if str(exc).startswith(NO_ROUTE) and (handshake is None or handshake.route is None):
                if handshake is not None and handshake.miss_mode is not None:
                    handshake.denial_mode = handshake.miss_mode  # the mount the path went furthest into
                observation = scope.get(OBSERVATION_KEY)
                if isinstance(observation, Observation) and observation.endpoint is None:
                    observation.endpoint = UNMATCHED  # the routing said so: no probe to ask it again
                raise DenyHandshake(404) from None
            raise


def DenialMiddlewareStack(
    inner: Any,
    *,
    allowed_origins: list[str] | None = None,
    denial_mode: str | None = None,
    authenticators: list[Any] | None = None,
    exception_handler: ExceptionHandler | None = None,
) -> DenialMiddleware:
    """The recommended stack around a ``URLRouter``, as ``AuthMiddlewareStack`` is for Channels."""
    return DenialMiddleware(
        OriginMiddleware(
            CredentialsMiddleware(
                AccessRuleMiddleware(RouteNotFoundMiddleware(inner)),
                authenticators=authenticators,
            ),
            allowed_origins=allowed_origins,
        ),
        denial_mode=denial_mode,
        exception_handler=exception_handler,
    )
