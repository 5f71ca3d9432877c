"""A Daphne server whose WebSocket handshakes can be denied with full HTTP responses.

Importing this module imports :mod:`daphne.server` first, which installs Twisted's
asyncio reactor, exactly as importing Daphne itself does.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne.server import Server  # isort:skip  (installs the asyncio reactor)
from twisted.internet import reactor

from .protocol import DENIAL_EXTENSION, DenialWebSocketProtocol

logger = logging.getLogger(__name__)


class DenialServer(Server):
    """:class:`daphne.server.Server` using :class:`DenialWebSocketProtocol`.

    Besides advertising ``websocket.http.response`` in every WebSocket scope, it hardens
    Daphne's bookkeeping: ``protocol_disconnected`` tolerates a connection already
    reaped, and the two periodic checker loops reschedule themselves even when an
    iteration raised (Daphne's only reschedule at their very end).
    """

    websocket_protocol_class = DenialWebSocketProtocol

    # Daphne creates its WebSocket factory inside run(); plug our protocol into it as
    # it is assigned, on this server's own factory instance only.
    @property
    def ws_factory(self) -> Any:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        factory.protocol = self.websocket_protocol_class
        self._ws_factory = factory

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        """Advertise the denial extension, pass the offered subprotocols as the client sent
        them, and watch the application so a handshake it leaves undecided is answered as
        soon as it returns or raises.

        Daphne percent-decodes the ``Sec-WebSocket-Protocol`` values it puts in the scope
        (``chat%2Ev1`` becomes ``chat.v1``, ``a%2Cb`` two values), while autobahn checks the
        chosen one against the raw header: an application choosing what the scope offered
        would be refused. The raw values are what uvicorn and hypercorn pass."""
        if scope.get("type") == "websocket":
            scope["extensions"] = {**(scope.get("extensions") or {}), DENIAL_EXTENSION: {}}
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
