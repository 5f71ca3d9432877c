"""The Daphne integration against a real ``python -m wsreject.daphne`` process.

Raw HTTP over a socket pins the exact bytes and that the server closes the connection
cleanly (EOF, not a reset or a hang); the ``websockets`` client checks what a real client
sees. All scenarios live in :mod:`tests.daphne.apps`, one path each.
"""

import asyncio
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.servers import running_server
from tests.support.wsclient import build_request, raw_handshake_bytes

pytestmark = pytest.mark.server

INTERNAL_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"server: daphne\r\n"
    b"content-length: 21\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Internal Server Error"
)
TIMED_OUT = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"server: daphne\r\n"
    b"content-length: 39\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b'{"detail":"Connection check timed out"}'
)
DENY = (
    b"HTTP/1.1 401 Unauthorized\r\n"
    b"content-type: application/json\r\n"
    b'www-authenticate: Bearer realm="chat"\r\n'
    b"server: daphne\r\n"
    b"content-length: 30\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b'{"detail":"Not authenticated"}'
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/deny", DENY, id="simple"),
        pytest.param(
            "/deny-multi-chunk",
            b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nx-denied-by: test\r\n"
            b"server: daphne\r\ncontent-length: 18\r\nconnection: close\r\n\r\nyou shall not pass",
            id="multi-chunk-body",
        ),
        pytest.param(
            "/deny-app-content-length",
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\n"
            b"server: daphne\r\ncontent-length: 9\r\nconnection: close\r\n\r\nslow down",
            id="app-framing-headers-replaced",
        ),
        pytest.param(
            "/deny-no-server-header-override",
            b"HTTP/1.1 404 Not Found\r\nserver: custom\r\ncontent-length: 4\r\nconnection: close\r\n\r\ngone",
            id="app-server-header-kept",
        ),
        pytest.param(
            "/deny-unknown-status",
            b"HTTP/1.1 499 Client Error\r\nserver: daphne\r\ncontent-length: 1\r\nconnection: close\r\n\r\n?",
            id="unknown-status-generic-phrase",
        ),
        pytest.param(
            "/deny-204",
            b"HTTP/1.1 204 No Content\r\nx-empty: yes\r\nserver: daphne\r\nconnection: close\r\n\r\n",
            id="204-no-body",
        ),
        pytest.param(
            "/deny-205",
            b"HTTP/1.1 205 Reset Content\r\nserver: daphne\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            id="205-no-body-length-0",
        ),
        pytest.param(
            "/deny-304",
            b'HTTP/1.1 304 Not Modified\r\netag: "abc"\r\nserver: daphne\r\nconnection: close\r\n\r\n',
            id="304-no-body",
        ),
        pytest.param(
            "/deny-start-only-then-return",
            b"HTTP/1.1 403 Forbidden\r\nserver: daphne\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            id="start-then-return-keeps-status",
        ),
        pytest.param(
            "/second-start",
            b"HTTP/1.1 403 Forbidden\r\nserver: daphne\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            id="second-start-refused-first-stands",
        ),
        pytest.param(
            "/close-before-accept",
            b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"server: daphne\r\ncontent-length: 9\r\nconnection: close\r\n\r\nForbidden",
            id="close-before-accept-403",
        ),
    ],
)
async def test_denial_response_bytes(denial_server, path, expected):
    assert await raw_handshake_bytes(*denial_server.address, path) == expected


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        pytest.param("/deny-start-then-raise", "application raised before", id="raise-after-start"),
        pytest.param("/raise-before-anything", "application raised before", id="raise-before-anything"),
        pytest.param("/return-before-anything", "application returned before", id="return-before-anything"),
        pytest.param("/invalid-status-999", "invalid status: 999", id="status-999"),
        pytest.param("/invalid-status-str", "invalid status: '403'", id="status-str"),
        pytest.param("/invalid-status-bool", "invalid status: True", id="status-bool"),
        pytest.param("/header-with-crlf", "control character", id="header-crlf"),
        pytest.param("/header-with-nul", "control character", id="header-nul"),
        pytest.param("/header-name-with-lf", "invalid header name", id="header-name-trailing-lf"),
        pytest.param("/header-not-bytes", "must be bytes", id="header-str"),
        pytest.param("/header-not-pair", "not a [name, value] pair", id="header-not-pair"),
        pytest.param("/accept-after-start", "websocket.accept after websocket.http.response.start", id="accept-after-start"),
        pytest.param("/send-after-start", "websocket.send after websocket.http.response.start", id="send-after-start"),
        pytest.param("/close-after-start", "websocket.close after websocket.http.response.start", id="close-after-start"),
        pytest.param("/body-before-start", "websocket.http.response.body without", id="body-before-start"),
        pytest.param("/oversize-body", "exceeds 1048576 bytes (the server's --max-denial-body-size)", id="oversize-body"),
        pytest.param("/informational-101", "status 101: a 1xx is not a denial", id="status-101"),
        pytest.param("/informational-100", "status 100: a 1xx is not a denial", id="status-100"),
        pytest.param("/accept-header-upgrade", "may not set the 'Upgrade' header", id="accept-header-upgrade"),
        pytest.param("/accept-header-crlf", "control character", id="accept-header-crlf"),
        pytest.param("/accept-header-sec-websocket-accept", "may not set the 'sec-websocket-accept'", id="accept-header-swa"),
        pytest.param("/send-before-accept", "websocket.send before websocket.accept", id="send-before-accept"),
        pytest.param("/accept-unoffered-subprotocol", "'not-offered' was not offered", id="unoffered-subprotocol"),
    ],
)
async def test_broken_application_gets_500_and_server_keeps_serving(denial_server, path, logged):
    started = time.monotonic()
    assert await raw_handshake_bytes(*denial_server.address, path) == INTERNAL_ERROR
    # Answered at once, not by Daphne's once-a-second checker or the connect timeout.
    assert time.monotonic() - started < 0.9
    log = denial_server.wait_for_log(f"WebSocket {path}: ")
    assert any(logged in line for line in log.splitlines() if f"WebSocket {path}: " in line)
    # The server still serves new connections.
    assert await raw_handshake_bytes(*denial_server.address, "/deny") == DENY


async def test_slow_application_gets_503_not_a_reset(denial_server):
    started = time.monotonic()
    assert await raw_handshake_bytes(*denial_server.address, "/slow") == TIMED_OUT
    # Not before the full timeout (autobahn's own timer may fire up to 1 s early).
    assert 1.0 <= time.monotonic() - started < 3.5
    denial_server.wait_for_log("WebSocket /slow: application neither accepted nor denied in time")


async def test_non_ascii_subprotocol_gets_400(denial_server):
    response = await raw_handshake_bytes(*denial_server.address, "/echo", [("Sec-WebSocket-Protocol", b"caf\xe9")])
    assert response == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"server: daphne\r\ncontent-length: 11\r\nconnection: close\r\n\r\nBad Request"
    )
    assert await raw_handshake_bytes(*denial_server.address, "/deny") == DENY


async def test_invalid_handshake_refused_by_autobahn_is_well_formed(denial_server):
    """Autobahn's own refusals no longer carry their reason text in the status line."""
    response = await raw_handshake_bytes(*denial_server.address, "/echo", [("Sec-WebSocket-Version", "13")])
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert response.endswith(b"content-length: 11\r\nconnection: close\r\n\r\nBad Request")


@pytest.mark.parametrize(
    ("path", "status", "headers", "body"),
    [
        pytest.param("/deny", 401, {"www-authenticate": 'Bearer realm="chat"'}, b'{"detail":"Not authenticated"}', id="401"),
        pytest.param("/deny-multi-chunk", 403, {"x-denied-by": "test"}, b"you shall not pass", id="multi-chunk"),
        pytest.param("/deny-204", 204, {"x-empty": "yes"}, b"", id="204"),
        pytest.param("/accept-after-start", 500, {}, b"Internal Server Error", id="malformed-500"),
        pytest.param("/slow", 503, {"content-type": "application/json"}, b'{"detail":"Connection check timed out"}', id="slow-503"),
    ],
)
async def test_websockets_client_sees_denial(denial_server, path, status, headers, body):
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"ws://127.0.0.1:{denial_server.port}{path}", open_timeout=10):
            pass
    response = caught.value.response
    assert response.status_code == status
    assert response.body == body
    assert response.headers["connection"] == "close"
    for name, value in headers.items():
        assert response.headers[name] == value


async def test_accept_path_still_works(denial_server):
    async with connect(f"ws://127.0.0.1:{denial_server.port}/echo", subprotocols=["chat"]) as websocket:
        assert websocket.subprotocol == "chat"
        await websocket.send("hello")
        assert await websocket.recv() == "hello"


async def test_close_reason_after_accept_reaches_client(denial_server):
    async with connect(f"ws://127.0.0.1:{denial_server.port}/echo") as websocket:
        await websocket.send("close:4003:not allowed in this room")
        with pytest.raises(ConnectionClosed) as caught:
            await websocket.recv()
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4003, "not allowed in this room")


async def test_scope_advertises_denial_extension(denial_server):
    async with connect(f"ws://127.0.0.1:{denial_server.port}/extensions") as websocket:
        assert await websocket.recv() == "['websocket.http.response']"


async def test_concurrent_denials(denial_server):
    responses = await asyncio.gather(*(raw_handshake_bytes(*denial_server.address, "/deny") for _ in range(40)))
    assert set(responses) == {DENY}


async def test_checker_loops_alive_after_errors(denial_server):
    """After every kind of error, Daphne's application checker still reaps and logs
    crashed applications, and undecided handshakes still time out."""
    for path in ("/second-start", "/raise-before-anything", "/oversize-body", "/close-before-accept"):
        await raw_handshake_bytes(*denial_server.address, path)
    line = "Exception inside application: failed before deciding"
    seen = denial_server.log().count(line)
    assert await raw_handshake_bytes(*denial_server.address, "/raise-before-anything") == INTERNAL_ERROR
    deadline = time.monotonic() + 5
    while denial_server.log().count(line) <= seen:
        assert time.monotonic() < deadline, "application checker stopped"
        await asyncio.sleep(0.05)
    assert await raw_handshake_bytes(*denial_server.address, "/slow") == TIMED_OUT
    assert "checker failed" not in denial_server.log()


async def test_client_leaving_mid_handshake(denial_server):
    """The pending handshake is settled quietly; nothing is written to the closed socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", denial_server.port)
    client = "127.0.0.1:%d" % writer.get_extra_info("sockname")[1]
    writer.write(build_request(*denial_server.address, "/slow")[0])
    await writer.drain()
    # The access log tells when Daphne has the handshake, and when it saw the client go.
    await asyncio.to_thread(denial_server.wait_for_line, client, '"WSCONNECTING /slow"')
    writer.close()
    await writer.wait_closed()
    await asyncio.to_thread(denial_server.wait_for_line, client, '"WSDISCONNECT /slow"')
    assert await raw_handshake_bytes(*denial_server.address, "/deny") == DENY
    assert "checker failed" not in denial_server.log()


# Baseline: what unmodified Daphne does with the same applications and options.


async def test_stock_daphne_close_before_accept_is_bare_403(stock_daphne):
    """A bare status line: no headers, no content-length, no body."""
    assert await raw_handshake_bytes(*stock_daphne.address, "/close-before-accept") == b"HTTP/1.1 403 Access denied\r\n\r\n"


async def test_stock_daphne_ignores_denial_and_resets(stock_daphne):
    """The denial messages are ignored; autobahn's handshake timeout aborts (TCP reset)."""
    with pytest.raises(ConnectionResetError):
        await raw_handshake_bytes(*stock_daphne.address, "/deny")


async def test_max_denial_body_size_option():
    """``--max-denial-body-size``: a body over it is a 500 whose log names the option; one
    within it goes out whole."""
    extra_args = ["--max-denial-body-size", "18"]
    with running_server("daphne-wsreject", "tests.daphne.apps:application", extra_args=extra_args, ready="tcp") as server:
        response = await raw_handshake_bytes(*server.address, "/deny-multi-chunk")  # 18 bytes: fits
        assert response.endswith(b"\r\n\r\nyou shall not pass")
        assert await raw_handshake_bytes(*server.address, "/deny") == INTERNAL_ERROR  # 30 bytes
        line = await asyncio.to_thread(server.wait_for_line, "WebSocket /deny: ", "exceeds 18 bytes")
        assert "--max-denial-body-size" in line
