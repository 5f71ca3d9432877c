"""ASGI middleware that decides handshakes before any consumer is built.

Channels style: nothing per connection is stored on the instance, the scope
is copied before it is changed, and scopes other than ``websocket`` pass
through untouched. The recommended order, outermost first, is what
:func:`DenialMiddlewareStack` builds::

    DenialMiddleware(            # exceptions before accept -> denials; after -> close 1011
        OriginMiddleware(        # 403 "Origin not allowed"
            CredentialsMiddleware(   # scope["user"] from bearer token or session cookie
                RouteNotFoundMiddleware(URLRouter([...]))   # 404 "Not Found"
            )
        )
    )
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404

from .auth import CredentialsMiddleware, loaded_user
from .conf import wsreject_settings
from .denial import DenialResponse, DenyHandshake
from .origins import is_allowed, parse_origin
from .permissions import BasePermission, HasPermissions, IsAuthenticated, as_permission, is_authenticated, unauthenticated
from .transport import send_denial

logger = logging.getLogger("wsreject")

STACK_MODE_KEY = "wsreject.denial_mode"
HANDSHAKE_KEY = "wsreject.handshake"
INTERNAL_ERROR = "Internal Server Error"
DECISION_TIMED_OUT = "Connection check timed out"


def denial_for_exception(exc: BaseException) -> DenialResponse:
    """The response for an exception raised before accept. Unexpected ones become a bare 500.

    Django's exceptions render with the status phrase only: their messages are
    written for developers and may hold internals. Raise :class:`DenyHandshake`
    to choose the detail.
    """
    if isinstance(exc, DenyHandshake):
        return exc.response()
    if isinstance(exc, Http404):
        return DenyHandshake(404).response()
    if isinstance(exc, PermissionDenied):
        return DenyHandshake(403).response()
    if isinstance(exc, SuspiciousOperation):
        logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
        return DenyHandshake(400).response()
    logger.error("Unhandled error before accept; answering 500", exc_info=exc)
    return DenyHandshake(500, INTERNAL_ERROR).response()


class _Handshake:
    """Per-connection view of what the application has said so far.

    The outermost :class:`DenialMiddleware` makes one and puts it in the scope;
    nested ones share it, so there is one deadline and the innermost mode wins.
    """

    __slots__ = ("receive_raw", "send_raw", "connect_received", "accepted", "closed", "responded", "on_decided", "mode")

    def __init__(self, receive, send, mode: str | None) -> None:
        self.receive_raw = receive
        self.send_raw = send
        self.connect_received = False
        self.accepted = self.closed = self.responded = False
        self.on_decided = None
        self.mode = mode

    @property
    def decided(self) -> bool:
        return self.accepted or self.closed or self.responded

    async def receive(self):
        message = await self.receive_raw()
        if message["type"] == "websocket.connect":
            self.connect_received = True
        return message

    async def send(self, message):
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close":
            self.closed = True
        elif kind == "websocket.http.response.start":
            self.responded = True
        if self.decided and self.on_decided is not None:
            self.on_decided()
            self.on_decided = None
        await self.send_raw(message)

    async def deny(self, scope, response: DenialResponse, mode: str | None) -> None:
        if not self.connect_received:
            message = await self.receive_raw()  # ASGI: an answer follows websocket.connect
            if message["type"] != "websocket.connect":
                return  # the client has gone
            self.connect_received = True
        self.responded = True
        await send_denial(scope, self.send_raw, response, mode)

    async def fail(self, scope, exc: Exception, mode: str | None) -> None:
        """Answer an exception: a denial before accept, close 1011 after it."""
        if not self.decided:
            await self.deny(scope, denial_for_exception(exc), mode)
        elif self.accepted and not self.closed:
            logger.error("Unhandled error after accept; closing with 1011", exc_info=exc)
            self.closed = True
            await self.send_raw({"type": "websocket.close", "code": 1011})
        else:
            logger.error("Unhandled error after the handshake was answered", exc_info=exc)


class DenialMiddleware:
    """Turn anything raised before accept into a denial; close with 1011 after accept.

    ``denial_mode`` overrides ``WSREJECT["DENIAL_MODE"]`` for what this
    middleware wraps (it may be nested under a ``URLRouter`` prefix to give some
    routes another mode), and ``decision_timeout`` overrides
    ``WSREJECT["DECISION_TIMEOUT"]``: a handshake neither accepted nor denied in
    time is answered 503 before the server's own handshake timeout turns it into
    a reset. Only the outermost one keeps that deadline.
    """

    _unset = object()

    @property
    def _path_routing(self) -> bool:
        """Lets a URLRouter route a prefix to a DenialMiddleware wrapping a nested URLRouter."""
        return getattr(self.inner, "_path_routing", False)

    def __init__(self, inner, *, denial_mode: str | None = None, decision_timeout: Any = _unset) -> None:
        self.inner = inner
        self.denial_mode = denial_mode
        self.decision_timeout = decision_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        if self.denial_mode is not None:
            scope = dict(scope, **{STACK_MODE_KEY: self.denial_mode})
        outer = scope.get(HANDSHAKE_KEY)
        if outer is not None:
            return await self._nested(outer, scope, receive, send)
        handshake = _Handshake(receive, send, self.denial_mode)
        scope = dict(scope, **{HANDSHAKE_KEY: handshake})
        timeout = self.decision_timeout
        if timeout is self._unset:
            timeout = wsreject_settings.DECISION_TIMEOUT
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                handshake.on_decided = lambda: deadline.reschedule(None)
                await self.inner(scope, handshake.receive, handshake.send)
        except TimeoutError as exc:
            if deadline.expired() and not handshake.decided:
                logger.warning("Handshake for %r not decided within %ss", scope.get("path"), timeout)
                await handshake.deny(scope, DenyHandshake(503, DECISION_TIMED_OUT).response(), handshake.mode)
            else:
                await handshake.fail(scope, exc, handshake.mode)
        except Exception as exc:
            await handshake.fail(scope, exc, handshake.mode)

    async def _nested(self, handshake: _Handshake, scope, receive, send):
        if self.denial_mode is not None:
            handshake.mode = self.denial_mode
        try:
            await self.inner(scope, receive, send)
        except Exception as exc:
            await handshake.fail(scope, exc, handshake.mode)


class OriginMiddleware:
    """Deny a browser handshake from an origin that is not allowed: 403 "Origin not allowed".

    A missing ``Origin`` passes when ``allow_missing`` (non-browser clients send
    none); several ``Origin`` headers, ``null`` or a malformed value are denied.
    Arguments left as None read ``ALLOWED_ORIGINS`` / ``ALLOW_MISSING_ORIGIN``.
    """

    detail = "Origin not allowed"

    def __init__(self, inner, *, allowed_origins=None, allow_missing: bool | None = None) -> None:
        self.inner = inner
        self.allowed_origins = allowed_origins
        self.allow_missing = allow_missing

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not self.origin_allowed(scope):
            raise DenyHandshake(403, self.detail)
        return await self.inner(scope, receive, send)

    def origin_allowed(self, scope) -> bool:
        values = [value for name, value in scope.get("headers", ()) if name.lower() == b"origin"]
        if not values:
            allow = self.allow_missing
            return wsreject_settings.ALLOW_MISSING_ORIGIN if allow is None else allow
        if len(values) > 1:
            return False
        origin = parse_origin(values[0].decode("latin-1"))
        if origin is None:
            return False
        allowed = self.allowed_origins
        return is_allowed(origin, wsreject_settings.ALLOWED_ORIGINS if allowed is None else allowed)


async def authorize(scope, permission: BasePermission, consumer=None) -> None:
    """Raise the denial of ``permission`` for this handshake, if any.

    A check that needs a login is decided on the event loop when the client
    presented no credential; anything else runs in one worker thread.
    """
    user = loaded_user(scope)
    if permission.requires_authentication and user is not None and not is_authenticated(scope):
        raise unauthenticated(scope)
    denial = await database_sync_to_async(permission.check)(scope, consumer)
    if denial is not None:
        raise denial


class PermissionMiddleware:
    """Deny unless every given permission passes, before the consumer is built."""

    def __init__(self, inner, *permissions) -> None:
        if not permissions:
            raise ValueError("PermissionMiddleware needs at least one permission")
        self.inner = inner
        self.permission = as_permission(permissions[0])
        for extra in permissions[1:]:
            self.permission = self.permission & extra

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            await authorize(scope, self.permission)
        return await self.inner(scope, receive, send)


def LoginRequiredMiddleware(inner):  # noqa: N802 - reads like a class, as AuthMiddlewareStack does
    """401 ``WWW-Authenticate: Bearer`` for anonymous handshakes."""
    return PermissionMiddleware(inner, IsAuthenticated)


def PermissionRequiredMiddleware(inner, perms, *, detail: str | None = None):  # noqa: N802
    """401 for anonymous handshakes, 403 unless the user holds every permission in ``perms``."""
    return PermissionMiddleware(inner, IsAuthenticated, HasPermissions(perms, detail=detail))


class RouteNotFoundMiddleware:
    """Make Channels' ``URLRouter`` answer an unknown path with 404 "Not Found".

    The outermost ``URLRouter`` raises ``ValueError`` for a path it cannot
    route, nested ones raise ``Resolver404``. Handing the router the path as
    ``path_remaining`` (after ``root_path``, as it would strip it) makes it
    behave as a nested router, so an unknown path is an ``Http404``.
    """

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and "path_remaining" not in scope:
            path = scope.get("path", "")
            root_path = scope.get("root_path", "")
            if root_path and not path.startswith(root_path):
                raise Http404("path outside root_path")
            scope = dict(scope, path_remaining=path[len(root_path):])
        return await self.inner(scope, receive, send)


def DenialMiddlewareStack(inner, *, allowed_origins=None, denial_mode: str | None = None):  # noqa: N802
    """The recommended stack around a ``URLRouter``, as ``AuthMiddlewareStack`` is for Channels.

    Inside the credentials, :class:`~wsreject.rules.AccessRuleMiddleware` enforces
    the access rules edited in the admin.
    """
    from .rules import AccessRuleMiddleware  # late: rules imports this module

    return DenialMiddleware(
        OriginMiddleware(
            CredentialsMiddleware(AccessRuleMiddleware(RouteNotFoundMiddleware(inner))),
            allowed_origins=allowed_origins,
        ),
        denial_mode=denial_mode,
    )
