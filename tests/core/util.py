"""Helpers for the in-process core tests (no servers)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wsreject.http import DENIAL_EXTENSION as EXTENSION
from wsreject.testing import HandshakeCommunicator

CONNECT = {"type": "websocket.connect"}


def ws_scope(path: str = "/ws/x/", headers=None, *, extension: bool = True, **extra) -> dict[str, Any]:
    """A WebSocket scope as a server builds it."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": list(headers or []),
        "subprotocols": [],
        "client": ["127.0.0.1", 50000],
        "server": ["127.0.0.1", 8000],
        "extensions": {EXTENSION: {}} if extension else {},
    }
    scope.update(extra)
    return scope


class Recorder:
    """An ASGI receive/send pair: feeds ``incoming`` then blocks; records what is sent."""

    def __init__(self, incoming=(CONNECT,)) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []
        self.receive_calls = 0

    async def receive(self):
        self.receive_calls += 1
        if self.incoming:
            return self.incoming.pop(0)
        await asyncio.Event().wait()

    async def send(self, message):
        self.sent.append(message)

    @property
    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


async def handshake(app, path: str = "/ws/x/", headers=None, *, finish: bool = True, **kwargs):
    """Run one handshake; return (communicator, result). ``finish`` waits for a denied app to end
    cleanly (any exception that escaped the application is raised here)."""
    communicator = HandshakeCommunicator(app, path, headers=headers, **kwargs)
    result = await communicator.handshake()
    if finish and not result.accepted:
        await communicator.wait(timeout=1)
    return communicator, result


async def close_code_handshake(app, path: str = "/ws/x/", headers=None, **kwargs):
    communicator = HandshakeCommunicator(app, path, headers=headers, **kwargs)
    result = await communicator.handshake(close_code=True)
    return communicator, result


def json_body(detail: Any) -> bytes:
    return json.dumps({"detail": detail}, ensure_ascii=False, separators=(",", ":")).encode()


def denial_headers(body: bytes, *before: tuple[bytes, bytes], content_type: bool = True) -> list[tuple[bytes, bytes]]:
    """The header list wsreject (and FastAPI) send: given headers, content-length, content-type."""
    headers = list(before) + [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", b"application/json"))
    return headers


async def disconnect(communicator, code: int = 1000) -> None:
    await communicator.send_input({"type": "websocket.disconnect", "code": code})
    await communicator.wait(timeout=1)


def challenge_for(detail: str) -> bytes:
    """The ``WWW-Authenticate`` of a 401 with this detail: bare for no credential, RFC 6750 otherwise."""
    if detail == "Not authenticated":
        return b"Bearer"
    return f'Bearer error="invalid_token", error_description="{detail}"'.encode()
