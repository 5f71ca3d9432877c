"""uvicorn's own WebSocket tests (``tests/protocols/test_websocket.py``, uvicorn 0.54),
rewritten against a real ``python -m wsreject.daphne``: the denial extension, accept
headers, the application's return value and the close paths around them.

Same test names, same applications (:mod:`tests.daphne.peer_apps`), same assertions,
except the two deliberate differences listed in ``docs/servers.md`` ("Daphne + wsreject
vs uvicorn and hypercorn"): where uvicorn drops the TCP connection without a close frame
(the client sees 1006), wsreject's Daphne sends a close frame with 1011
(``test_duplicate_handshake``, ``test_asgi_return_value``). uvicorn's disconnect events
for a lost connection have no ``reason`` key; ours carry ``"reason": ""``, which the
ASGI spec defines as the same thing (a missing reason is an empty one).
"""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.wsclient import Accepted, Denied, raw_handshake, ws_connect

pytestmark = pytest.mark.server

LOST = {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def url(server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def refused_status(server, path: str) -> int:
    result = await ws_connect(url(server, path))
    assert isinstance(result, Denied), result
    return result.status


async def test_accept_connection(peer_server):
    async with connect(url(peer_server, "/accept")) as websocket:
        assert websocket.state.name == "OPEN"


async def test_close_connection(peer_server):
    assert await refused_status(peer_server, "/close") == 403


async def test_headers(peer_server, reports):
    """The scope holds the bytes sent: ``websockets`` 17 writes header values as
    ISO-8859-1, where uvicorn's test (with ``websockets``' legacy client) sent UTF-8."""
    path, report_id = reports.path("/headers")
    async with connect(url(peer_server, path), additional_headers=[("username", "abraão")]) as websocket:
        assert websocket.state.name == "OPEN"
    seen = reports.wait(report_id)
    assert seen["host"].startswith("127.0.0.1")
    assert bytes.fromhex(seen["username"]) == "abraão".encode("iso-8859-1")


async def test_extra_headers(peer_server):
    async with connect(url(peer_server, "/extra-headers")) as websocket:
        assert websocket.response.headers.get("extra") == "header"


async def test_missing_handshake(peer_server):
    assert await refused_status(peer_server, "/missing-handshake") == 500


async def test_send_before_handshake(peer_server):
    assert await refused_status(peer_server, "/send-before-handshake") == 500


async def test_duplicate_handshake(peer_server):
    """Deliberate difference: uvicorn drops the connection (1006); we close with 1011."""
    async with connect(url(peer_server, "/duplicate-handshake")) as websocket:
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == 1011


async def test_asgi_return_value(peer_server):
    """Deliberate difference: uvicorn drops the connection (1006); we close with 1011."""
    async with connect(url(peer_server, "/asgi-return-value")) as websocket:
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == 1011
    assert "application should return None, returned 123" in peer_server.wait_for_log("returned 123")


@pytest.mark.parametrize("code", [None, 1000, 1001])
@pytest.mark.parametrize("reason", [None, "test", False], ids=["none_as_reason", "normal_reason", "without_reason"])
async def test_app_close(peer_server, code, reason):
    options = {}
    if code is not None:
        options["code"] = str(code)
    if reason is not False:
        options["reason"] = "none" if reason is None else reason
    query = "&".join(f"{name}={value}" for name, value in options.items())
    async with connect(url(peer_server, f"/app-close?{query}")) as websocket:
        await websocket.ping()
        await websocket.send("abc")
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == (code or 1000)
    assert websocket.close_reason == (reason or "")


async def test_client_close(peer_server, reports):
    path, report_id = reports.path("/client-close")
    async with connect(url(peer_server, path)) as websocket:
        await websocket.ping()
        await websocket.send("abc")
        await websocket.close(code=1001, reason="custom reason")
    assert reports.wait(report_id) == {"type": "websocket.disconnect", "code": 1001, "reason": "custom reason"}


@pytest.mark.parametrize("subprotocol", ["proto1", "proto2"])
async def test_subprotocols(peer_server, subprotocol):
    result = await ws_connect(url(peer_server, f"/subprotocols?choose={subprotocol}"), subprotocols=["proto1", "proto2"])
    assert isinstance(result, Accepted)
    async with result:
        assert result.subprotocol == subprotocol


async def test_server_reject_connection(peer_server, reports):
    path, report_id = reports.path("/reject")
    assert await refused_status(peer_server, path) == 403
    assert reports.wait(report_id) == LOST


async def test_server_reject_connection_with_response(peer_server, reports):
    path, report_id = reports.path("/reject-with-response")
    response = await raw_handshake(*peer_server.address, path)
    assert response.status == 400
    assert response.body == b"goodbye"
    assert reports.wait(report_id) == LOST


async def test_server_reject_connection_with_multibody_response(peer_server, reports):
    path, report_id = reports.path("/reject-multibody")
    response = await raw_handshake(*peer_server.address, path)
    assert response.status == 400
    assert response.body == (b"x" * 10) + (b"y" * 10)
    assert reports.wait(report_id) == LOST


async def test_server_reject_connection_with_invalid_status(peer_server):
    response = await raw_handshake(*peer_server.address, "/reject-invalid-status")
    assert response.status == 500
    assert response.body == b"Internal Server Error"


async def test_server_reject_connection_with_body_nolength(peer_server):
    response = await raw_handshake(*peer_server.address, "/reject-body-nolength")
    assert response.status == 403
    assert response.body == b"hardbody"
    assert response.header("content-length") == "8"  # as uvicorn's websockets protocol


async def test_server_reject_connection_with_invalid_msg(peer_server):
    assert await refused_status(peer_server, "/reject-invalid-msg") == 404


async def test_server_reject_connection_with_missing_body(peer_server):
    assert await refused_status(peer_server, "/reject-missing-body") == 404


async def test_server_multiple_websocket_http_response_start_events(peer_server, reports):
    path, report_id = reports.path("/multiple-start")
    assert await refused_status(peer_server, path) == 404
    assert reports.wait(report_id) == (
        "Expected ASGI message 'websocket.http.response.body' but got 'websocket.http.response.start'."
    )
