"""The state of one handshake, shared by every wsreject layer that sees it.

The outermost :class:`~wsreject.middleware.DenialMiddleware` puts a
:class:`Handshake` in the scope (``scope["wsreject.handshake"]``) and hands inner
layers its ``receive`` and ``send``, which note what the application has said:
whether ``websocket.connect`` was read, and whether the handshake was accepted,
closed or answered with a denial. Inner layers set how a denial leaves (the
innermost ``denial_mode`` wins) and, on the access side, which endpoint the
request was routed to.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .denial import DenialResponse, ExceptionHandler, denial_for_exception, is_unavailable
from .reporting import warn_rate_limited
from .scope import HANDSHAKE_KEY, Scope, escape
from .transport import Message, Receive, Send, deny

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
        "on_decided",
        "responded",
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
        self.denial_mode = denial_mode
        self.exception_handler = exception_handler
        self.endpoint: Any = None  # the routed endpoint, when the access side resolved it
        self.user: Any = None  # scope["user"] as CredentialsMiddleware set it, for the log
        self.client_gone = False  # a send failed: the server says the client left

    @property
    def decided(self) -> bool:
        return self.accepted or self.closed or self.responded

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "websocket.connect":
            self.connect_received = True
        return message

    async def send(self, message: Message) -> None:
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
        try:
            await self._send(message)
        except OSError:  # uvicorn's ClientDisconnected and friends
            self.client_gone = True
            raise

    async def deny(self, scope: Scope, response: DenialResponse) -> None:
        """Send ``response`` (after ``websocket.connect``, reading it if needed)."""
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
            await self.deny(scope, denial_for_exception(exc, scope, self.exception_handler))
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
            if not outage:
                logger.error("Unhandled error after accept; closing with 1011", exc_info=exc)
            self.closed = True
            with contextlib.suppress(OSError):
                await self._send({"type": "websocket.close", "code": 1011})
        elif not outage:
            logger.error("Unhandled error after the handshake was answered", exc_info=exc)


def current_handshake(scope: Scope) -> Handshake | None:
    """The scope's :class:`Handshake`, or None outside a ``DenialMiddleware``."""
    handshake = scope.get(HANDSHAKE_KEY)
    return handshake if isinstance(handshake, Handshake) else None
