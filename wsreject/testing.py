"""Test helpers: drive an ASGI application's handshake and see denials as a client would.

::

    from wsreject.testing import HandshakeCommunicator

    async def test_private_needs_login():
        communicator = HandshakeCommunicator(application, "/ws/private/")
        result = await communicator.handshake()
        assert not result.accepted
        assert result.status_code == 401
        assert result.json() == {"detail": "Not authenticated"}
        assert result.header("www-authenticate") == "Bearer"

Unlike Channels' ``WebsocketCommunicator`` it advertises the
``websocket.http.response`` extension (pass ``denial_response=False`` to act as
a server without it) and sets ``client``, like a real server does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from channels.testing import WebsocketCommunicator

from .http import DENIAL_EXTENSION

__all__ = ["Accepted", "Denied", "HandshakeCommunicator"]


@dataclass
class Accepted:
    """The application accepted: ``subprotocol`` and ``headers`` are from ``websocket.accept``."""

    subprotocol: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    accepted = True


@dataclass
class Denied:
    """The application denied. ``denial_mode`` is ``"http"`` (a full response), ``"close"``
    (closed before accept: a server answers its own 403) or ``"close_code"``."""

    status_code: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    denial_mode: str = "http"
    close_code: int | None = None
    reason: str = ""
    accepted = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), decoded as latin-1."""
        key = name.lower().encode("latin-1")
        for header_name, value in self.headers:
            if header_name == key:
                return value.decode("latin-1")
        return None

    def header_list(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.headers if k == key]

    def json(self) -> Any:
        return json.loads(self.body)


class HandshakeCommunicator(WebsocketCommunicator):
    """A ``WebsocketCommunicator`` whose :meth:`handshake` returns :class:`Accepted` or :class:`Denied`."""

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
        *,
        denial_response: bool = True,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        spec_version: str | None = None,
    ) -> None:
        super().__init__(application, path, headers=headers, subprotocols=subprotocols, spec_version=spec_version)
        self.scope["client"] = list(client)
        self.scope["server"] = ["127.0.0.1", 8000]
        self.scope["extensions"] = {DENIAL_EXTENSION: {}} if denial_response else {}

    async def handshake(self, timeout: float = 5, *, close_code: bool = False) -> Accepted | Denied:
        """Send ``websocket.connect`` and read the answer, waiting up to ``timeout`` seconds per message.

        The default is generous: a first handshake that opens a database connection in a worker
        thread can take over a second on a loaded CI machine, and a passing test never waits.

        With ``close_code=True`` an accept followed at once by a ``{"detail"}``
        frame and a close with code 4100-4599 is reported as :class:`Denied`
        (``denial_mode="close_code"``); other frames stay readable with ``receive_from``.
        """
        await self.send_input({"type": "websocket.connect"})
        first = await self.receive_output(timeout)
        kind = first["type"]
        if kind == "websocket.accept":
            accepted = Accepted(first.get("subprotocol"), list(first.get("headers", [])))
            return await self._read_close_code_denial(accepted, timeout) if close_code else accepted
        if kind == "websocket.close":
            return Denied(403, denial_mode="close", close_code=first.get("code", 1000), reason=first.get("reason") or "")
        if kind == "websocket.http.response.start":
            body = b""
            while True:
                message = await self.receive_output(timeout)
                if message["type"] != "websocket.http.response.body":
                    raise AssertionError(f"expected websocket.http.response.body, got {message!r}")
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            return Denied(first["status"], list(first.get("headers", [])), body)
        raise AssertionError(f"unexpected first message {first!r}")

    async def _read_close_code_denial(self, accepted: Accepted, timeout: float) -> Accepted | Denied:
        if await self.receive_nothing(timeout=0.1):
            return accepted
        frame = await super().receive_output(timeout)
        self._pushback = [frame]
        if frame["type"] != "websocket.send" or await self.receive_nothing(timeout=0.1):
            return accepted
        close = await super().receive_output(timeout)
        self._pushback.append(close)
        code = close.get("code") or 0
        if close["type"] == "websocket.close" and 4100 <= code <= 4599:
            self._pushback = []
            body = (frame.get("text") or "").encode("utf-8")
            return Denied(code - 4000, body=body, denial_mode="close_code", close_code=code, reason=close.get("reason", ""))
        return accepted

    async def receive_output(self, timeout: float = 1) -> dict[str, Any]:
        pushback: list[dict[str, Any]] = getattr(self, "_pushback", None) or []
        if pushback:
            return pushback.pop(0)
        message: dict[str, Any] = await super().receive_output(timeout)
        return message
