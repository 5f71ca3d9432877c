"""An ASGI app that accepts every WebSocket and closes it with the code in ``?code=`` and
reason ``bye``; HTTP gets ``200 ok`` (the harness's readiness probe)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()
        code = int(parse_qs(scope["query_string"].decode())["code"][0])
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code, "reason": "bye"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
