"""A consumer's denial on real servers (issue 16, item 3): a synchronous ``AuthorizedConsumer``
refusing in ``connect()`` with headers reaches the wire exactly as its async twin does, on
Daphne + wsreject and on uvicorn — both take the one denial path, there is no second sender
for sync consumers. The app: :mod:`tests.e2e.denial_path_app`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets

from tests.support.servers import HOST, Server, running_server
from tests.support.wsclient import raw_handshake

from .denial_path_app import DETAIL

pytestmark = pytest.mark.server

KINDS = ("daphne-wsreject", "uvicorn-websockets-sansio")


@pytest.fixture(scope="module", params=KINDS)
def server(request) -> Iterator[Server]:
    with running_server(request.param, "tests.e2e.denial_path_app:application") as running:
        yield running


@pytest.mark.parametrize("endpoint", ["/ws/sync/", "/ws/async/"])
def test_a_consumers_denial_with_headers_reaches_the_wire(server, endpoint):
    response = asyncio.run(raw_handshake(HOST, server.port, endpoint))
    assert response.status == 423, response.describe()
    assert response.json() == {"detail": DETAIL}
    assert response.header_values("retry-after") == ["60"]
    assert response.header_values("x-denied-by") == ["connect"]
    assert response.header_values("content-type") == ["application/json"]
    assert response.header_values("content-length") == [str(len(response.body))]
    assert response.closed_by_server, response.describe()


def test_sync_and_async_denials_are_the_same_bytes(server):
    sync, async_ = (asyncio.run(raw_handshake(HOST, server.port, endpoint)) for endpoint in ("/ws/sync/", "/ws/async/"))

    def wire(response):  # uvicorn's Date header is the clock's, not the application's
        return response.status, [(k, v) for k, v in response.headers if k != "date"], response.body

    assert wire(sync) == wire(async_)


def test_a_sync_consumers_own_close_code_mode_wins_over_its_stack(server):
    async def play() -> tuple[str, int, str]:
        async with websockets.connect(server.url("/ws/sync-close-code/")) as ws:
            frame = await asyncio.wait_for(ws.recv(), 5)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        return frame, closed.value.rcvd.code, closed.value.rcvd.reason

    frame, code, reason = asyncio.run(play())
    assert (json.loads(frame), code, reason) == ({"detail": DETAIL}, 4423, DETAIL)
