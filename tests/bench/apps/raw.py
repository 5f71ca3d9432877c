"""The limit: an ASGI app that does nothing but answer, with the bytes wsreject would send.

No framework, no routing table, no authentication: the decision is a look at the
path and at whether an ``Authorization`` or ``Cookie`` header is present, and the
answers are built once at import. A denial is the two messages of the ASGI
WebSocket Denial Response extension; an accepted handshake is ``websocket.accept``
(plus the room greeting the demo sends), then text is echoed until the client leaves.

Every answer is counted per status; ``GET /__bench__/counts`` (plain HTTP) returns the
counts as JSON, so the harness can check what the load generator counted against what
the server sent.

    uvicorn tests.bench.apps.raw:app
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

COUNTS: Counter[int] = Counter()


def _denial(status: int, detail: str, *extra: tuple[bytes, bytes]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    headers = [*extra, (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    return status, headers, body


NOT_AUTHENTICATED = _denial(401, "Not authenticated", (b"www-authenticate", b"Bearer"))
INVALID_TOKEN = _denial(
    401,
    "Invalid credentials",
    (b"www-authenticate", b'Bearer error="invalid_token", error_description="Invalid credentials"'),
)
FORBIDDEN = _denial(403, "Not allowed to join this room")
NOT_FOUND = _denial(404, "Not Found")
GREETING = json.dumps({"room": "lobby", "user": "alice"}, separators=(",", ":"))


def _credential(scope: Scope) -> bytes | None:
    """``authorization`` when present, else ``cookie``, else None (names only, values unread)."""
    found = None
    for name, _ in scope["headers"]:
        if name == b"authorization":
            return name
        if name == b"cookie":
            found = name
    return found


async def _deny(send: Send, answer: tuple[int, list[tuple[bytes, bytes]], bytes]) -> None:
    status, headers, body = answer
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
    COUNTS[status] += 1
    # One turn of the loop lets uvicorn see the connection closed before the app returns;
    # returning at once makes uvicorn (websockets-sansio) log "ASGI callable returned without
    # completing handshake." at ERROR for every denial. wsreject's stack awaits past that
    # point anyway; the FastAPI reference does not, and pays that log line (see the report).
    await asyncio.sleep(0)


async def _accept_and_echo(receive: Receive, send: Send, greeting: str | None) -> None:
    await send({"type": "websocket.accept"})
    COUNTS[101] += 1
    if greeting is not None:
        await send({"type": "websocket.send", "text": greeting})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    path = scope["path"]
    if path == "/ws/echo/":
        await _accept_and_echo(receive, send, None)
    elif path == "/ws/private/":
        await _deny(send, INVALID_TOKEN if _credential(scope) else NOT_AUTHENTICATED)
    elif path == "/ws/rooms/lobby/":
        credential = _credential(scope)
        if credential == b"cookie":
            await _accept_and_echo(receive, send, GREETING)
        else:
            await _deny(send, FORBIDDEN if credential else NOT_AUTHENTICATED)
    else:
        await _deny(send, NOT_FOUND)


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/__bench__/counts":
        status, body = 200, json.dumps({str(k): v for k, v in sorted(COUNTS.items())}).encode()
    else:
        status, body = 404, b"not found"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)
