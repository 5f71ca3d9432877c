"""An ASGI app that answers every WebSocket handshake with what the server put in the scope.

The denial's JSON body holds ``path``, ``raw_path`` (latin-1) and ``root_path``: what a
server delivers for a request target, measured rather than assumed. HTTP requests get
``200 ok`` (the harness's readiness probe).
"""

from __future__ import annotations

import json
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()
        seen = {
            "path": scope.get("path"),
            "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
            "root_path": scope.get("root_path", ""),
            "subprotocols": list(scope.get("subprotocols") or []),
        }
        body = json.dumps(seen).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
