"""hypercorn's WebSocket stream tests (``tests/protocol/test_ws_stream.py``, hypercorn
0.18), rewritten against a real ``python -m wsreject.daphne``.

hypercorn's tests drive its ``WSStream`` with mocks and compare the events it emits;
here the same application messages go to a real server and the same outcome is read on
the wire: the status, headers and body of a denial or a 101, the close frame. Tests of
hypercorn's internals (its frame buffer, HTTP/2 handshakes, ``server_names``, ping
timer) have no equivalent and are left out. Where hypercorn's 500 has an empty body,
ours says "Internal Server Error"; the status and framing agree.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.wsclient import Accepted, build_request, raw_handshake, ws_connect

pytestmark = pytest.mark.server

LOST = {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def url(server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize(("version", "valid"), [(b"13", True), (b"12", False)])
async def test_handshake_validity(peer_server, version, valid):
    request, _ = build_request(*peer_server.address, "/accept")
    request = request.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: " + version)
    reader, writer = await asyncio.open_connection(*peer_server.address)
    try:
        writer.write(request)
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    status = int(status_line.split()[1])
    if valid:
        assert status == 101
    else:
        assert 400 <= status < 500


async def test_handshake_accept_http1(peer_server):
    response = await raw_handshake(*peer_server.address, "/accept")
    assert response.status == 101
    assert response.accept_ok
    assert response.header("upgrade").lower() == "websocket"
    assert response.header("connection").lower() == "upgrade"


async def test_handshake_accept_additional_headers(peer_server):
    response = await raw_handshake(*peer_server.address, "/extra-headers")
    assert response.status == 101
    assert response.accept_ok
    assert response.header_values("extra") == ["header"]


async def test_send_accept_with_additional_headers(peer_server):
    async with connect(url(peer_server, "/extra-headers")) as websocket:
        assert websocket.response.headers.get_all("extra") == ["header"]


async def test_send_reject(peer_server):
    response = await raw_handshake(*peer_server.address, "/send-reject")
    assert (response.status, response.body) == (200, b"Body")
    assert response.closed_by_server


async def test_send_app_error_handshake(peer_server):
    """hypercorn answers 500 with an empty body; ours says "Internal Server Error"."""
    response = await raw_handshake(*peer_server.address, "/missing-handshake")
    assert response.status == 500
    assert response.header("connection") == "close"
    assert response.header("content-length") == str(len(response.body))
    assert response.closed_by_server


async def test_send_app_error_connected(peer_server):
    """The application ends with the connection open: a close frame with 1011."""
    async with connect(url(peer_server, "/app-error-connected")) as websocket:
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == 1011


async def test_send_connection(peer_server):
    async with connect(url(peer_server, "/send-connection")) as websocket:
        assert await websocket.recv() == "hello"
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == 1000


@pytest.mark.parametrize(
    ("state", "message_type"),
    [
        ("handshake", "websocket.send"),
        ("response", "websocket.accept"),
        ("response", "websocket.send"),
        ("connected", "websocket.http.response.start"),
        ("connected", "websocket.http.response.body"),
        ("closed", "websocket.send"),
        ("closed", "websocket.http.response.start"),
        ("closed", "websocket.http.response.body"),
    ],
)
async def test_send_invalid_message_given_state(peer_server, reports, state, message_type):
    """``send()`` raises (hypercorn: ``UnexpectedMessageError``; here ``InvalidDenial``,
    or autobahn's ``Disconnected`` for a send after the application's own close); before
    accept the handshake is answered 500, after it the connection is closed."""
    path, report_id = reports.path("/invalid-message-given-state", state=state, message=message_type)
    result = await ws_connect(url(peer_server, path))
    if isinstance(result, Accepted):
        assert state in ("connected", "closed")
        async with result:
            with pytest.raises(ConnectionClosed):
                await result.recv()
    else:
        assert state in ("handshake", "response")
        assert result.status == 500
    raised = (await asyncio.to_thread(reports.wait, report_id))["raised"]
    assert raised == ("Disconnected" if (state, message_type) == ("closed", "websocket.send") else "InvalidDenial")


@pytest.mark.parametrize("case", ["status", "headers", "body"])
async def test_send_invalid_http_message(peer_server, case):
    response = await raw_handshake(*peer_server.address, f"/invalid-http-message?case={case}")
    assert response.status == 500


async def test_closure(peer_server, reports):
    """The application hears of the lost connection once: ``{"code": 1006}``."""
    path, report_id = reports.path("/closure")
    request, _ = build_request(*peer_server.address, path)
    reader, writer = await asyncio.open_connection(*peer_server.address)
    writer.write(request)
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()  # no closing handshake: the connection is lost
    assert await asyncio.to_thread(reports.wait, report_id) == [LOST]


async def test_closed_app_send_noop(peer_server, reports):
    path, report_id = reports.path("/send-after-disconnect")
    async with connect(url(peer_server, path)):
        pass
    assert await asyncio.to_thread(reports.wait, report_id) == {"raised": None}


# Issue 25: no socket outlives its application, counted on the server's side.


async def open_accepted(server, path: str):
    """A raw client that completes the handshake and then never reads or answers."""
    request, _ = build_request(*server.address, path)
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(request)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    return writer


async def wait_open_connections(server, expected: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        count = await asyncio.to_thread(server.open_connections)
        if count is None or count == expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", ["/return-after-accept", "/raise-after-accept", "/asgi-return-value"])
async def test_no_socket_outlives_its_application(peer_server, path):
    """Clients that never answer the close frame: the server still lets go of every
    socket (autobahn's closing-handshake timeout), rather than holding them forever."""
    assert peer_server.open_connections() is not None, "needs /proc (Linux)"
    assert await wait_open_connections(peer_server, 0, 10) == 0, "connections of earlier tests still open"
    writers = [await open_accepted(peer_server, path) for _ in range(5)]
    try:
        assert await wait_open_connections(peer_server, 0, 10) == 0
    finally:
        for writer in writers:
            writer.close()


async def test_stock_daphne_keeps_the_socket_of_a_returned_application(stock_daphne_peer):
    """The baseline the test above fixes: stock Daphne holds the connection open."""
    assert stock_daphne_peer.open_connections() is not None, "needs /proc (Linux)"
    writer = await open_accepted(stock_daphne_peer, "/return-after-accept")
    try:
        # Our server lets go within the closing-handshake timeout (1 s): 3 s is past it.
        assert await wait_open_connections(stock_daphne_peer, 0, 3) == 1
    finally:
        writer.close()
