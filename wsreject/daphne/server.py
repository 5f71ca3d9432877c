"""A Daphne server whose WebSocket handshakes can be denied with full HTTP responses.

Importing this module imports :mod:`daphne.server` first, which installs Twisted's
asyncio reactor, exactly as importing Daphne itself does.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne.server import Server  # isort:skip  (installs the asyncio reactor)
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet import reactor

from .forwarding import Forwarding
from .protocol import DEFAULT_MAX_DENIAL_BODY_SIZE, DENIAL_EXTENSION, DenialWebSocketProtocol

__all__ = ["WEBSOCKET_SPEC_VERSION", "DenialHTTPFactory", "DenialServer", "RootPathCheckingRequest"]

logger = logging.getLogger(__name__)

#: The ASGI HTTP/WebSocket spec version the WebSocket scope advertises: accept
#: ``headers`` (2.1) and close ``reason`` (2.3) are honoured. The disconnect event
#: carries ``reason`` too (2.5), but 2.4 (``send()`` raising once the connection is
#: closed) is not Daphne's behaviour, so 2.3 is what is claimed.
WEBSOCKET_SPEC_VERSION = "2.3"


class RootPathCheckingRequest(WebRequest):
    """Daphne's HTTP request, ignoring a ``Daphne-Root-Path`` header that is not ASCII
    (Daphne decodes it as ASCII unguarded: a 500 for any client that sends one)."""

    def process(self) -> Any:
        values = self.requestHeaders.getRawHeaders(b"daphne-root-path") or []
        if any(not value.isascii() for value in values):
            logger.info("Ignoring a Daphne-Root-Path header that is not ASCII")
            self.requestHeaders.removeHeader(b"daphne-root-path")
        return super().process()


class DenialHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory building :class:`RootPathCheckingRequest` requests."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = RootPathCheckingRequest
        return protocol


class DenialServer(Server):
    """:class:`daphne.server.Server` using :class:`DenialWebSocketProtocol`.

    Besides advertising ``websocket.http.response`` in every WebSocket scope, it hardens
    Daphne's bookkeeping: ``protocol_disconnected`` tolerates a connection already
    reaped, and the two periodic checker loops reschedule themselves even when an
    iteration raised (Daphne's only reschedule at their very end).

    Two options of its own: ``max_denial_body_size`` (bytes a denial body may have; a
    larger one is answered 500 and logged) and ``proxy_count`` (with the proxy header
    options, how many trusted proxies append to ``X-Forwarded-For``: see
    :mod:`wsreject.daphne.forwarding`, which replaces Daphne's own parsing).
    """

    websocket_protocol_class = DenialWebSocketProtocol

    def __init__(
        self,
        *args: Any,
        max_denial_body_size: int = DEFAULT_MAX_DENIAL_BODY_SIZE,
        proxy_count: int = 1,
        **kwargs: Any,
    ) -> None:
        if max_denial_body_size < 0:
            raise ValueError(f"max_denial_body_size must not be negative, not {max_denial_body_size}")
        self.max_denial_body_size = max_denial_body_size
        self.forwarding = Forwarding.from_daphne(
            kwargs.pop("proxy_forwarded_address_header", None),
            kwargs.pop("proxy_forwarded_port_header", None),
            kwargs.pop("proxy_forwarded_proto_header", None),
            proxy_count,
        )
        super().__init__(*args, **kwargs)  # Daphne's own forwarded-header parsing stays off

    # Daphne creates its factories inside run(); plug our protocols in as they are
    # assigned, on this server's own instances only.
    @property
    def ws_factory(self) -> Any:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        factory.protocol = self.websocket_protocol_class
        self._ws_factory = factory

    @property
    def http_factory(self) -> Any:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: Any) -> None:
        self._http_factory = factory if isinstance(factory, DenialHTTPFactory) else DenialHTTPFactory(self)

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        """Advertise the denial extension, pass the offered subprotocols as the client sent
        them, apply trusted forwarding headers, and watch the application so a handshake
        it leaves undecided (or a connection it leaves open) is settled as soon as it
        returns or raises.

        Daphne percent-decodes the ``Sec-WebSocket-Protocol`` values it puts in the scope
        (``chat%2Ev1`` becomes ``chat.v1``, ``a%2Cb`` two values), while autobahn checks the
        chosen one against the raw header: an application choosing what the scope offered
        would be refused. The raw values are what uvicorn and hypercorn pass."""
        if self.forwarding is not None and scope.get("type") in ("http", "websocket"):
            self.forwarding.apply(scope)
            protocol.client_addr = scope.get("client")  # Daphne's logs name the same client
        if scope.get("type") == "websocket":
            scope["extensions"] = {**(scope.get("extensions") or {}), DENIAL_EXTENSION: {}}
            scope.setdefault("asgi", {"version": "3.0", "spec_version": WEBSOCKET_SPEC_VERSION})
            if isinstance(protocol, DenialWebSocketProtocol):
                scope["subprotocols"] = list(getattr(protocol, "websocket_protocols", None) or [])
        queue = super().create_application(protocol, scope)
        instance = self.connections.get(protocol, {}).get("application_instance")
        if instance is not None and isinstance(protocol, DenialWebSocketProtocol):
            instance.add_done_callback(protocol.application_finished)
        return queue

    def protocol_disconnected(self, protocol: Any) -> None:
        """Daphne's version raises ``KeyError`` once the checker has reaped the connection."""
        if protocol in self.connections:
            super().protocol_disconnected(protocol)

    def application_checker(self) -> None:
        try:
            super().application_checker()
        except Exception:
            logger.exception("Daphne's application checker failed; rescheduling it")
            reactor.callLater(1, self.application_checker)  # type: ignore[arg-type]  # zope interface stubs

    def timeout_checker(self) -> None:
        try:
            super().timeout_checker()
        except Exception:
            logger.exception("Daphne's timeout checker failed; rescheduling it")
            reactor.callLater(2, self.timeout_checker)  # type: ignore[arg-type]  # zope interface stubs
