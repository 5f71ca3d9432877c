"""A WebSocket backend that is not Django: ``python -m tests.edge.echo_backend PORT``.

It accepts every handshake (the edge in front decided), sends one JSON message
saying what it received — the path and the identity headers — then echoes.
Plain HTTP gets a 200 (so the harness's readiness probe sees it up).
"""

from __future__ import annotations

import asyncio
import json
import sys
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

REPORTED = ("x-auth-request-user", "x-auth-request-email", "x-wsreject-vouch")


def plain_http(connection: ServerConnection, request: Request) -> Response | None:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return connection.respond(HTTPStatus.OK, "echo backend\n")
    return None


async def handler(connection: ServerConnection) -> None:
    request = connection.request
    assert request is not None
    report = {"backend": "echo", "path": request.path}
    report.update({name: request.headers.get_all(name) for name in REPORTED})
    await connection.send(json.dumps(report))
    async for message in connection:
        await connection.send(message)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, process_request=plain_http) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
