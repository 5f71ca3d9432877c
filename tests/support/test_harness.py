"""Tests of the test harness itself: the server runner and the two clients.

The client tests run against scripted in-process TCP servers (exact bytes, no
subprocess); the runner tests start every server kind once with the tiny ASGI app
below (``tests.support.test_harness:tiny_app``).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Self

import pytest

from tests.support import processes
from tests.support.processes import group_listens_on
from tests.support.servers import (
    ALL_SERVER_KINDS,
    DENIAL_EXTENSION_KINDS,
    Server,
    ServerStartError,
    free_port,
    running_server,
    server_command,
    server_fixture,
)
from tests.support.wsclient import (
    Accepted,
    Denied,
    NoResponse,
    build_request,
    expected_accept,
    raw_handshake,
    ws_connect,
)

TINY_APP = "tests.support.test_harness:tiny_app"


# --- a tiny ASGI app, served by the subprocesses -------------------------------------------------


async def tiny_app(scope, receive, send):
    """HTTP: 200 and the value of $WSREJECT_HARNESS_PROBE (default "ok"). Lifespan: supported. WebSocket ``/accept``: accept, send "hello",
    echo. Anything else: deny 403 via the extension, or close before accept without it."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        body = os.environ.get("WSREJECT_HARNESS_PROBE", "ok").encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    assert scope["type"] == "websocket"
    message = await receive()
    assert message["type"] == "websocket.connect"
    if scope["path"] == "/accept":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    if "websocket.http.response" in scope.get("extensions", {}):
        body = b'{"detail":"tiny says no"}'
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close"})


# --- scripted TCP servers for the client tests -----------------------------------------------------


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


class Scripted:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Self:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(request)
                await self.script(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def reply(data: bytes, *, then: str = "close", linger: float = 0.0) -> Script:
    async def script(reader, writer, request):
        writer.write(data)
        await writer.drain()
        if then == "stay":
            await asyncio.sleep(linger)
        elif then == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()

    return script


def _key(request: bytes) -> str:
    for line in request.decode("latin-1").split("\r\n"):
        if line.lower().startswith("sec-websocket-key:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no key")


# --- raw_handshake ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_raw_parses_status_headers_and_body_exactly() -> None:
    body = '{"detail":"Nö"}'.encode()
    data = (
        b"HTTP/1.1 401 Unauthorized\r\n"
        b"WWW-Authenticate: Bearer\r\n"
        b"www-authenticate: Basic realm=\"x\"\r\n"
        b"X-Note: caf\xe9\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    async with Scripted(reply(data)) as server:
        response = await raw_handshake("127.0.0.1", server.port, "/x", close_timeout=2)
    assert (response.status, response.reason, response.http_version) == (401, "Unauthorized", "HTTP/1.1")
    assert response.headers == [
        ("www-authenticate", "Bearer"),
        ("www-authenticate", 'Basic realm="x"'),
        ("x-note", "café"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    assert response.header_values("WWW-Authenticate") == ["Bearer", 'Basic realm="x"']
    with pytest.raises(LookupError):
        response.header("www-authenticate")
    assert response.header("X-NOTE") == "café"
    assert response.header("missing") is None
    assert response.body == body
    assert response.json() == {"detail": "Nö"}
    assert response.closed_by_server is True
    assert response.extra == b""


@pytest.mark.asyncio
async def test_raw_sends_a_real_upgrade_request_with_headers_in_order() -> None:
    async with Scripted(reply(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")) as server:
        await raw_handshake(
            "127.0.0.1",
            server.port,
            "/ws/x/?a=1",
            [("Origin", "http://a"), ("Origin", "http://b"), ("Authorization", "Bearer tökén"), ("X-Raw", b"\xff")],
            subprotocols=("chat.v1", "chat.v2"),
        )
    request = server.requests[0]
    lines = request.split(b"\r\n")
    assert lines[0] == b"GET /ws/x/?a=1 HTTP/1.1"
    assert b"Upgrade: websocket" in lines and b"Connection: Upgrade" in lines
    assert b"Sec-WebSocket-Version: 13" in lines
    assert b"Sec-WebSocket-Protocol: chat.v1, chat.v2" in lines
    tail = [line for line in lines if line.split(b":")[0] in (b"Origin", b"Authorization", b"X-Raw")]
    assert tail == [b"Origin: http://a", b"Origin: http://b", b"Authorization: Bearer t\xf6k\xe9n", b"X-Raw: \xff"]


@pytest.mark.asyncio
async def test_raw_records_a_connection_left_open() -> None:
    data = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\nno"
    async with Scripted(reply(data, then="stay", linger=3)) as server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        response = await raw_handshake("127.0.0.1", server.port, "/", close_timeout=0.3)
        assert loop.time() - start < 2
    assert response.body == b"no"
    assert response.closed_by_server is False


@pytest.mark.asyncio
async def test_raw_reads_until_eof_without_content_length() -> None:
    async with Scripted(reply(b"HTTP/1.1 500 Internal server error\r\n\r\nboom")) as server:
        response = await raw_handshake("127.0.0.1", server.port, "/")
    assert response.body == b"boom"
    assert response.closed_by_server is True


@pytest.mark.asyncio
async def test_raw_decodes_chunked_bodies() -> None:
    data = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    async with Scripted(reply(data)) as server:
        response = await raw_handshake("127.0.0.1", server.port, "/")
    assert response.body == b"abcde"
    assert response.closed_by_server is True


@pytest.mark.asyncio
async def test_raw_no_body_statuses_and_trailing_bytes() -> None:
    data = b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\noops!"
    async with Scripted(reply(data)) as server:
        response = await raw_handshake("127.0.0.1", server.port, "/")
    assert response.body == b""
    assert response.extra == b"oops!"  # a body where HTTP allows none is reported, not swallowed


@pytest.mark.asyncio
async def test_raw_informational_responses() -> None:
    data = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
    async with Scripted(reply(data)) as server:
        response = await raw_handshake("127.0.0.1", server.port, "/")
    assert response.status == 403
    assert [(r.status, r.headers) for r in response.interim] == [(103, [("link", "</x>")])]

    async with Scripted(reply(b"HTTP/1.1 100 Continue\r\n\r\n")) as server:
        response = await raw_handshake("127.0.0.1", server.port, "/")
    assert (response.status, response.body, response.closed_by_server) == (100, b"", True)


@pytest.mark.asyncio
async def test_raw_no_response_and_reset() -> None:
    async with Scripted(reply(b"")) as server:
        with pytest.raises(NoResponse):
            await raw_handshake("127.0.0.1", server.port, "/")
    async with Scripted(reply(b"HTTP/1.1 40", then="reset")) as server:
        with pytest.raises(NoResponse):
            await raw_handshake("127.0.0.1", server.port, "/")


@pytest.mark.asyncio
async def test_raw_101_checks_the_accept_key_and_closes() -> None:
    async def upgrade(reader, writer, request):
        accept = expected_accept(_key(request))
        writer.write(
            f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        await writer.drain()
        await asyncio.sleep(5)

    async with Scripted(upgrade) as server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        response = await raw_handshake("127.0.0.1", server.port, "/")
        assert loop.time() - start < 2
    assert response.status == 101
    assert response.accept_ok
    assert response.closed_by_server is None


@pytest.mark.asyncio
async def test_raw_times_out_on_a_silent_server() -> None:
    async def silent(reader, writer, request):
        await asyncio.sleep(5)

    async with Scripted(silent) as server:
        with pytest.raises(asyncio.TimeoutError):
            await raw_handshake("127.0.0.1", server.port, "/", timeout=0.3)


def test_expected_accept_matches_rfc6455_example() -> None:
    assert expected_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_build_request_ends_with_blank_line() -> None:
    request, key = build_request("127.0.0.1", 1, "/p", [("A", "b")])
    assert request.endswith(b"\r\nA: b\r\n\r\n")
    assert f"Sec-WebSocket-Key: {key}".encode() in request


# --- ws_connect -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ws_connect_denied_keeps_status_headers_body() -> None:
    body = b'{"detail":"Moved"}'
    data = (
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\nX-A: 1\r\nX-A: 2\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    async with Scripted(reply(data)) as server:
        result = await ws_connect(f"ws://127.0.0.1:{server.port}/", timeout=2)
    assert isinstance(result, Denied)
    assert result.status_code == 301  # not followed
    assert result.header_values("x-a") == ["1", "2"]
    assert result.header("location") == "/elsewhere"
    assert result.json() == {"detail": "Moved"}
    assert len(server.requests) == 1


# --- the server runner ------------------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    # Another process may take the port between the two calls (that is why running_process
    # retries); three misses in a row would mean free_port hands out taken ports.
    for _ in range(3):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", free_port()))
            except OSError:
                continue
            return
    pytest.fail("three ports from free_port() could not be bound")


def test_group_listens_on() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert group_listens_on(os.getpgrp(), port) is False  # bound, not listening
        sock.listen()
        assert group_listens_on(os.getpgrp(), port) is True
        # A group this process is not in does not hold it (1: init's group).
        assert group_listens_on(1, port) is False


class _Answers501(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # quiet
        pass


@pytest.mark.server
def test_a_port_answered_by_another_process_is_not_ready(monkeypatch) -> None:
    """The server loses its port to another process, which answers the readiness probe
    while the loser is still on its way out: not ready, retried on a new port."""
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers501)
    thread = threading.Thread(target=foreign.serve_forever, daemon=True)
    thread.start()
    taken = foreign.server_address[1]
    assert processes.probe_http("127.0.0.1", taken)
    ports = iter([taken])
    real_free_port = processes.free_port
    monkeypatch.setattr(processes, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port())
    # On the taken port: a process that takes a while to notice, then exits as a server does.
    loser = "import sys, time; time.sleep(2); print('OSError: [Errno 98] Address already in use'); sys.exit(1)"
    try:
        with processes.running_process(
            lambda port: [sys.executable, "-c", loser] if port == taken else server_command("uvicorn-wsproto", TINY_APP, port),
            label="loser",
        ) as server:
            assert server.port != taken
            assert group_listens_on(server.process.pid, server.port) is True
    finally:
        foreign.shutdown()
        foreign.server_close()
        thread.join(5)


def test_commands_use_this_interpreter() -> None:
    for kind in ALL_SERVER_KINDS:
        command = server_command(kind, TINY_APP, 1234)
        assert command[0] == sys.executable
        assert command[-1] == TINY_APP
        assert "1234" in " ".join(command)
    with pytest.raises(ValueError):
        server_command("nginx", TINY_APP, 1)


def test_unknown_kind_and_bad_app_string() -> None:
    with pytest.raises(ValueError), running_server("nginx", TINY_APP):
        pass
    with pytest.raises(ValueError), running_server("hypercorn", "no_colon"):
        pass


@pytest.mark.server
def test_startup_failure_reports_the_log() -> None:
    with (
        pytest.raises(ServerStartError) as info,
        running_server("uvicorn-wsproto", "tests.support.no_such_module:app", startup_timeout=15),
    ):
        pass
    message = str(info.value)
    assert "no_such_module" in message
    assert "uvicorn" in message


@pytest.mark.server
def test_startup_timeout_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(processes, "probe_http", lambda host, port, timeout=1.0: False)
    with (
        pytest.raises(ServerStartError) as info,
        running_server("uvicorn-wsproto", TINY_APP, startup_timeout=1.0, ready="http"),
    ):
        pass
    assert "no answer within 1 s" in str(info.value)


@pytest.mark.server
def test_port_clash_is_retried(monkeypatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real_free_port = processes.free_port
    monkeypatch.setattr(processes, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port())
    try:
        with running_server("uvicorn-wsproto", TINY_APP) as server:
            assert server.port != taken.getsockname()[1]
            assert server.alive()
    finally:
        taken.close()


@pytest.mark.server
def test_env_and_teardown_of_the_whole_process_group() -> None:
    with running_server("hypercorn", TINY_APP, env={"WSREJECT_HARNESS_PROBE": "from-env"}) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"from-env")
        pid = server.process.pid
        children = subprocess.run(["pgrep", "-g", str(pid)], check=False, capture_output=True, text=True).stdout.split()
        assert len(children) >= 1
    assert server.process.poll() is not None
    leftover = subprocess.run(["pgrep", "-g", str(pid)], check=False, capture_output=True, text=True).stdout.split()
    assert leftover == []
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1).close()


tiny_on_hypercorn = server_fixture("hypercorn", TINY_APP, env={"WSREJECT_HARNESS_PROBE": "fixture"})


@pytest.mark.server
@pytest.mark.asyncio
async def test_fixture_factory(tiny_on_hypercorn: Server) -> None:
    assert tiny_on_hypercorn.kind == "hypercorn" and tiny_on_hypercorn.alive()
    response = await raw_handshake(tiny_on_hypercorn.host, tiny_on_hypercorn.port, "/accept")
    assert response.status == 101 and response.accept_ok


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [pytest.param(kind, marks=pytest.mark.server, id=kind) for kind in ALL_SERVER_KINDS])
async def test_every_kind_serves_accepts_denies_and_stops(kind: str) -> None:
    with running_server(kind, TINY_APP) as server:
        assert server.url("/accept") == f"ws://127.0.0.1:{server.port}/accept"
        result = await ws_connect(server.url("/accept"), timeout=5)
        assert isinstance(result, Accepted)
        async with result:
            assert await result.recv() == "hello"
            await result.send("again")
            assert await result.recv() == "again"

        denied = await raw_handshake(server.host, server.port, "/deny", close_timeout=1.0)
        if kind in DENIAL_EXTENSION_KINDS:
            assert denied.status == 403
            assert denied.body == b'{"detail":"tiny says no"}'
        else:
            assert (denied.status, denied.reason, denied.body) == (403, "Access denied", b"")
        result = await ws_connect(server.url("/deny"), timeout=5)
        assert isinstance(result, Denied) and result.status_code == 403
        process = server.process
    assert process.poll() is not None, f"{kind} still running after the block"
    assert server.log(), f"{kind}: nothing captured in the log"
