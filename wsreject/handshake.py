"""The state of one handshake, shared by every wsreject layer that sees it.

The outermost :class:`~wsreject.middleware.DenialMiddleware` puts a
:class:`Handshake` in the scope (``scope["wsreject.handshake"]``) and hands inner
layers its ``receive`` and ``send``, which note what the application has said:
whether ``websocket.connect`` was read, and whether the handshake was accepted,
closed or answered with a denial. It also carries the route record
(:mod:`wsreject.routes`): the hops Channels' routers matched, and the
:class:`~wsreject.routes.RouteHit` once a leaf is reached; the leaf's decision
(``on_route``) runs then, before the consumer is built, and fixes the denial
mode for the rest of the handshake (:meth:`Handshake.fix_mode`).

:meth:`Handshake.fail` is where every exception of the handshake ends: before
the handshake is answered, :meth:`Handshake.refuse` — the one denial path,
exception → handler → one validated response → transport — and after it, close
``1011`` with one traceback per kind of error (:func:`~wsreject.reporting.log_unexpected`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .denial import DenialResponse, DenyHandshake, ExceptionHandler, denial_for_exception, is_unavailable
from .reporting import log_unexpected, warn_rate_limited
from .routes import Hop, RouteHit, leaf_denial_mode
from .scope import HANDSHAKE_KEY, escape
from .transport import deny
from .types import Message, Receive, Scope, Send

__all__ = ["UNSEEN_ROUTE_DETAIL", "Handshake", "ProbeHandshake", "ProbeStop", "RouteHook", "current_handshake", "probe_route"]

RouteHook = Callable[[Scope, RouteHit], Awaitable[None]]

#: The refusal for a handshake that reached a consumer the routing record cannot name.
UNSEEN_ROUTE_DETAIL = "Service Unavailable"

logger = logging.getLogger("wsreject")


class Handshake:
    """Per-connection view of what the application has said so far."""

    __slots__ = (
        "_receive",
        "_send",
        "accepted",
        "client_gone",
        "closed",
        "connect_received",
        "denial_mode",
        "endpoint",
        "exception_handler",
        "expects_route",
        "hops",
        "miss_mode",
        "mode_fixed",
        "on_accepted",
        "on_closed",
        "on_decided",
        "on_revoked",
        "responded",
        "revoked",
        "route",
        "route_base",
        "route_checks",
        "unseen",
        "user",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        denial_mode: str | None = None,
        exception_handler: ExceptionHandler | None = None,
    ) -> None:
        self._receive = receive
        self._send = send
        self.connect_received = False
        self.accepted = self.closed = self.responded = False
        self.on_decided: Callable[[], None] | None = None
        self.on_accepted: Callable[[], None] | None = None  # the connection opened (see wsreject.connections)
        self.on_closed: Callable[[], None] | None = None  # the application closed it
        self.on_revoked: Callable[[Any], Awaitable[None]] | None = None  # the consumer's on_access_revoked
        self.revoked = False  # closed by revocation: what the application sends after is dropped
        self.denial_mode = denial_mode  # the declared mode (None: WSREJECT["DENIAL_MODE"]); see fix_mode
        self.mode_fixed = False  # the handshake reached its consumer: denial_mode no longer changes
        self.exception_handler = exception_handler
        self.endpoint: Any = None  # the routed endpoint, when the access side resolved it
        self.user: Any = None  # scope["user"] as CredentialsMiddleware set it, for the log
        self.client_gone = False  # a send failed: the server says the client left
        self.hops: list[Hop] = []  # the routes Channels matched so far (see wsreject.routes)
        self.route: RouteHit | None = None  # the leaf reached
        self.route_base: str | None = None  # path_remaining where the recording started
        self.route_checks: list[RouteHook] = []  # the route-dependent decisions, run at the leaf
        self.expects_route = False  # a recorded routing is below: a consumer must be reached through it
        self.miss_mode: str | None = None  # the mode of a nested stack whose router found no route
        self.unseen: str | None = None  # the route (mount) behind which the leaf could not be seen

    async def reach(self, scope: Scope, hit: RouteHit) -> None:
        """A leaf recorder reached ``hit``: remember it, fix the denial mode (the consumer's,
        else the innermost stack's between the route and the consumer) and run the route's
        decisions."""
        self.route = hit
        self.endpoint = hit
        self.fix_mode(leaf_denial_mode(hit.application))
        for check in self.route_checks:
            await check(scope, hit)

    def fix_mode(self, declared: str | None) -> None:
        """The handshake reached its consumer, which declares ``declared`` (or None): the denial
        mode is decided here, once. Precedence: the consumer's ``denial_mode``, else the innermost
        ``DenialMiddleware`` on the way (each sets ``denial_mode`` while the mode is not fixed),
        else ``WSREJECT["DENIAL_MODE"]`` (None, resolved by the transport). Called at the leaf
        recorder, or by an ``AuthorizedConsumer`` that no recorder saw; the first call wins."""
        if self.mode_fixed:
            return
        if declared:
            self.denial_mode = declared
        self.mode_fixed = True

    @property
    def decided(self) -> bool:
        return self.accepted or self.closed or self.responded

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "websocket.connect":
            self.connect_received = True
            if self.expects_route and self.route is None and not self.decided:
                self._refuse_unseen()
        return message

    def _refuse_unseen(self) -> None:
        """Fail closed: an application asks for ``websocket.connect`` below a recorded routing,
        but no leaf recorder saw the route (a part of the routing that hides its routes)."""
        where = self.hops[-1][0].pattern if self.hops else "the routing"
        self.unseen = str(where)
        warn_rate_limited(
            f"unseen-route:{where}",
            "A WebSocket consumer behind %r was reached without a recorded route: refused with 503 "
            "(see the system check wsreject.E013)",
            str(where),
        )
        raise DenyHandshake(503, UNSEEN_ROUTE_DETAIL, headers={"Retry-After": "5"})

    async def send(self, message: Message) -> None:
        if self.revoked:
            return  # wsreject closed the socket: the application learns it from websocket.disconnect
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
            if self.on_accepted is not None:
                self.on_accepted()
        elif kind == "websocket.close":
            self.closed = True
            if self.on_closed is not None:
                self.on_closed()
        elif kind == "websocket.http.response.start":
            self.responded = True
        if self.decided and self.on_decided is not None:
            self.on_decided()
            self.on_decided = None
        try:
            await self._send(message)
        except OSError:  # uvicorn's ClientDisconnected and friends
            self.client_gone = True
            raise

    async def close_revoked(self, code: int, reason: str) -> bool:
        """Close an accepted connection whose access was revoked (``code``, ``reason``); False when
        it was closed already. Later messages of the application are dropped: the server answers
        its next ``receive()`` with ``websocket.disconnect``."""
        if not self.accepted or self.closed or self.revoked:
            return False
        self.closed = self.revoked = True
        if self.on_closed is not None:
            self.on_closed()
        with contextlib.suppress(OSError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        return True

    async def refuse(self, scope: Scope, exc: BaseException) -> None:
        """The one denial path: ``exc`` → the exception handler → one validated response → the
        transport, in the handshake's denial mode. Every refusal before accept comes here, through
        :meth:`fail`: middleware, the route's decisions, consumers (sync and async), the decision
        deadline and unexpected errors."""
        await self.deny(scope, denial_for_exception(exc, scope, self.exception_handler))

    async def deny(self, scope: Scope, response: DenialResponse) -> None:
        """Send ``response`` (after ``websocket.connect``, reading it if needed); the last step
        of :meth:`refuse`."""
        receive = None if self.connect_received else self.receive
        if "user" not in scope and self.user is not None:
            scope = {**scope, "user": self.user}  # raised below CredentialsMiddleware: say who it was
        self.responded = True
        await deny(scope, self._send, response, denial_mode=self.denial_mode, receive=receive)

    async def fail(self, scope: Scope, exc: BaseException) -> None:
        """Answer an exception: a denial before accept, close 1011 after it.

        After the handshake was answered, a dependency that became unreachable (a
        channel layer whose Redis went away under every open consumer) is an outage,
        not a bug: one WARNING a minute names it, without a traceback per connection.
        """
        if not self.decided:
            await self.refuse(scope, exc)
            return
        if isinstance(exc, OSError):  # the client left: nothing to answer, nothing wrong
            logger.debug("WebSocket %s: connection lost (%r)", escape(scope.get("path", "")), exc)
            return
        outage = is_unavailable(exc)
        if outage:
            warn_rate_limited(
                f"unavailable-after-handshake:{type(exc).__name__}",
                "A dependency became unreachable after a WebSocket handshake was answered%s: %s: %s",
                "; closing with 1011" if self.accepted and not self.closed else "",
                type(exc).__name__,
                exc,
            )
        if self.accepted and not self.closed:
            if not outage:  # one traceback per kind of error, then a count (wsreject.reporting)
                log_unexpected("Unhandled error after accept; closing with 1011", exc)
            self.closed = True
            with contextlib.suppress(OSError):
                await self._send({"type": "websocket.close", "code": 1011})
        elif not outage:
            log_unexpected("Unhandled error after the handshake was answered", exc)


def current_handshake(scope: Scope) -> Handshake | None:
    """The scope's :class:`Handshake`, or None outside a ``DenialMiddleware``."""
    handshake = scope.get(HANDSHAKE_KEY)
    return handshake if isinstance(handshake, Handshake) else None


class ProbeStop(BaseException):
    """Ends a probe run at the leaf, before any consumer exists (a BaseException, so that no
    ``except Exception`` on the way mistakes it for an error)."""

    def __init__(self, scope: Scope, hit: RouteHit | None) -> None:
        super().__init__()
        self.scope = scope
        self.hit = hit


class ProbeHandshake(Handshake):
    """A handshake without a socket: the application runs on a probe scope until the leaf
    recorder is reached; nothing is ever sent, and errors propagate to the prober.

    ``at_leaf`` (optional) runs at the leaf after the route's decisions, before the stop;
    ``user`` (optional) is the user ``CredentialsMiddleware`` puts in the scope instead of
    asking the authenticators.
    """

    __slots__ = ("at_leaf", "injected_user", "routing_only")

    def __init__(self, at_leaf: RouteHook | None = None, *, routing_only: bool = False, user: Any = None) -> None:
        super().__init__(_probe_receive, _probe_send)
        self.at_leaf = at_leaf
        self.routing_only = routing_only  # learn the route only: no access rules on the way
        # Decide as this user, without authenticating (explaining a decision: never on a live
        # handshake, whose Handshake has no such attribute).
        self.injected_user = user

    async def reach(self, scope: Scope, hit: RouteHit) -> None:
        await super().reach(scope, hit)
        if self.at_leaf is not None:
            await self.at_leaf(scope, hit)
        raise ProbeStop(scope, hit)

    async def receive(self) -> Message:
        if self.expects_route:
            self._refuse_unseen()
        raise ProbeStop({}, None)  # an application asked for the socket: no consumer may run

    async def send(self, message: Message) -> None:
        raise ProbeStop({}, None)

    async def fail(self, scope: Scope, exc: BaseException) -> None:
        raise exc

    async def deny(self, scope: Scope, response: DenialResponse) -> None:
        raise ProbeStop(scope, None)


async def _probe_receive() -> Message:
    raise ProbeStop({}, None)


async def _probe_send(message: Message) -> None:
    raise ProbeStop({}, None)


async def probe_route(application: Any, path: str, root_path: str = "") -> RouteHit | None:
    """Where ``application`` (instrumented: :mod:`wsreject.routes`) routes ``path``: run it on a
    probe scope until the leaf recorder stops it; None when no route matches (or one cannot be seen)."""
    handshake = ProbeHandshake(routing_only=True)
    scope: Scope = {"type": "websocket", "path": path, "root_path": root_path, "headers": [], HANDSHAKE_KEY: handshake}
    try:
        await application(scope, handshake.receive, handshake.send)
    except ProbeStop as stop:
        return stop.hit
    except Exception:
        return None
    return None
