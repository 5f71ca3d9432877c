"""Daphne + wsreject never answers client input with a 5xx.

``Sec-WebSocket-Protocol`` values reach the application as the client sent them (stock
Daphne percent-decodes them, so an application choosing ``chat.v1`` from the scope
for ``chat%2Ev1`` was refused by autobahn with a 500): the answers must be uvicorn's.
A list of malformed requests — non-ASCII bytes in the path and headers, huge and
duplicate headers, odd ``Origin`` values, bad keys and versions, broken framing —
must never get a 5xx, nor make the server log an error; the server keeps serving.
And an application closing an accepted connection with a code RFC 6455 gives servers
(1001, 1011, 1013 ...) gets exactly that close frame, where autobahn used to raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.demo import DEMO_APP, DemoData
from tests.support.servers import Server, running_server

from .deployment import demo_copy
from .rawhttp import exchange, upgrade_request

pytestmark = pytest.mark.server

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture(scope="module")
def demo(demo_template, tmp_path_factory) -> Iterator[DemoData]:
    with demo_copy(demo_template, tmp_path_factory.mktemp("daphne-input")) as data:
        yield data


@pytest.fixture(scope="module")
def daphne(demo) -> Iterator[Server]:
    with running_server("daphne-wsreject", DEMO_APP, env=demo.env) as server:
        yield server


def answer(server: Server, request: bytes, timeout: float = 10.0, frame_timeout: float = 2.0) -> tuple[Any, ...]:
    reply = exchange(server.address, request, timeout=timeout, frame_timeout=frame_timeout)
    if reply.status == 101:
        return (101, reply.header("sec-websocket-protocol"), reply.first_text())
    if reply.status is None:
        return (reply.outcome,)
    return (reply.status, reply.body.decode("utf-8", "replace"))


SUBPROTOCOLS = ["chat%2Ev1", "chat%2ev1", "chat.v1, chat%2Ev1", "chat%2Ev1, chat.v2", "chat%2Cv1", "chat.v1", "chat%", "%ff"]


def test_percent_encoded_subprotocols_are_answered_as_uvicorn_does(demo, daphne):
    requests = {offer: upgrade_request("/ws/subprotocol/", [("Sec-WebSocket-Protocol", offer)]) for offer in SUBPROTOCOLS}
    with running_server("uvicorn-websockets-sansio", DEMO_APP, env=demo.env) as uvicorn:
        expected = {offer: answer(uvicorn, request) for offer, request in requests.items()}
    got = {offer: answer(daphne, request) for offer, request in requests.items()}
    assert got == expected
    assert got["chat%2Ev1"] == (400, '{"detail":"Unsupported subprotocol"}')
    assert got["chat%2Ev1, chat.v2"] == (101, "chat.v2", {"subprotocol": "chat.v2"})


def request(target: bytes = b"/ws/echo/", extra: tuple[bytes, ...] = (), *, base: bool = True, key: bytes | None = KEY,
            method: bytes = b"GET", version: bytes = b"HTTP/1.1", host: bool = True, body: bytes = b"") -> bytes:  # fmt: skip
    lines = [method + b" " + target + b" " + version]
    if host:
        lines.append(b"Host: 127.0.0.1")
    if base:
        lines += [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13"]
        if key is not None:
            lines.append(b"Sec-WebSocket-Key: " + key)
    lines += list(extra)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def handshake_without(version: bytes | None) -> tuple[bytes, ...]:
    lines = [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Key: " + KEY]
    return (*lines, b"Sec-WebSocket-Version: " + version) if version is not None else tuple(lines)


MALFORMED = {
    "non-ascii path": request(b"/ws/\xe9/"),
    "non-ascii path in a room": request(b"/ws/rooms/caf\xc3\xa9/"),
    "non-ascii query": request(b"/ws/echo/?q=\xff"),
    "non-ascii path on the browser mount": request(b"/ws/browser/\xe9/"),
    "non-ascii header name": request(extra=(b"X-\xe9: a",)),
    "non-ascii Origin": request(extra=(b"Origin: http://\xe9.example",)),
    "non-ascii Authorization": request(b"/ws/private/", (b"Authorization: Bearer t\xf6k\xe9n",)),
    "non-ascii Sec-WebSocket-Protocol": request(b"/ws/subprotocol/", (b"Sec-WebSocket-Protocol: ch\xe9t",)),
    "non-ascii Cookie": request(b"/ws/private/", (b"Cookie: sessionid=\xff\xfe",)),
    "non-ascii Host": request(extra=(b"Host: \xe9",), host=False),
    "non-ascii Sec-WebSocket-Key": request(key=b"\xe9\xe9"),
    "non-ascii Daphne-Root-Path": request(extra=(b"Daphne-Root-Path: /\xe9",)),
    "undecodable Daphne-Root-Path": request(b"/%ff/ws/echo/", (b"Daphne-Root-Path: /%ff",)),
    "Daphne-Root-Path not a prefix": request(extra=(b"Daphne-Root-Path: /nope",)),
    "NUL in a header": request(extra=(b"X-A: a\x00b",)),
    "control characters in Authorization": request(b"/ws/private/", (b"Authorization: Token \x01\x02",)),
    "huge header": request(extra=(b"X-Big: " + b"a" * 60000,)),
    "huge Authorization": request(b"/ws/private/", (b"Authorization: Bearer " + b"a" * 60000,)),
    "huge Cookie": request(b"/ws/private/", (b"Cookie: sessionid=" + b"a" * 30000,)),
    "500 headers": request(extra=tuple(b"X-H%d: v" % i for i in range(500))),
    "long path": request(b"/ws/" + b"a" * 8000 + b"/"),
    "two Sec-WebSocket-Keys": request(extra=(b"Sec-WebSocket-Key: " + KEY,)),
    "two Sec-WebSocket-Versions": request(extra=(b"Sec-WebSocket-Version: 13",)),
    "two Upgrades": request(extra=(b"Upgrade: websocket",)),
    "two Hosts": request(extra=(b"Host: other",)),
    "two Origins": request(extra=(b"Origin: http://127.0.0.1", b"Origin: http://evil.example")),
    "two Authorizations": request(b"/ws/private/", (b"Authorization: Bearer a", b"Authorization: Bearer b")),
    "two Cookies": request(b"/ws/private/", (b"Cookie: a=1", b"Cookie: sessionid=x")),
    "two Sec-WebSocket-Protocols": request(b"/ws/subprotocol/", (b"Sec-WebSocket-Protocol: chat.v1", b"Sec-WebSocket-Protocol: x")),
    "Origin null": request(extra=(b"Origin: null",)),
    "Origin with a port out of range": request(extra=(b"Origin: http://127.0.0.1:99999",)),
    "Origin with a broken IPv6 host": request(extra=(b"Origin: http://[::1",)),
    "Origin javascript:": request(extra=(b"Origin: javascript:alert(1)",)),
    "Origin with a space": request(extra=(b"Origin: http://ex ample.com",)),
    "empty Origin": request(extra=(b"Origin: ",)),
    "long Origin": request(extra=(b"Origin: http://" + b"a" * 5000 + b".com",)),
    "Origin with userinfo": request(extra=(b"Origin: http://user:pw@127.0.0.1",)),
    "Origin with a path": request(extra=(b"Origin: http://127.0.0.1/x?y#z",)),
    "no Sec-WebSocket-Key": request(key=None),
    "empty Sec-WebSocket-Key": request(key=b""),
    "Sec-WebSocket-Key not base64": request(key=b"!!!!"),
    "Sec-WebSocket-Key too short": request(key=b"YWJj"),
    "Sec-WebSocket-Version 8": request(base=False, extra=handshake_without(b"8")),
    "Sec-WebSocket-Version abc": request(base=False, extra=handshake_without(b"abc")),
    "Sec-WebSocket-Version list": request(base=False, extra=handshake_without(b"13, 8")),
    "no Sec-WebSocket-Version": request(base=False, extra=handshake_without(None)),
    "no Connection": request(base=False, extra=(b"Upgrade: websocket", b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: " + KEY)),
    "Upgrade list": request(base=False, extra=(b"Upgrade: h2c, websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: " + KEY)),
    "HTTP/1.0": request(version=b"HTTP/1.0"),
    "POST upgrade": request(method=b"POST"),
    "body with Content-Length": request(extra=(b"Content-Length: 5",), body=b"hello"),
    "chunked body": request(extra=(b"Transfer-Encoding: chunked",), body=b"0\r\n\r\n"),
    "bad extension parameters": request(extra=(b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=abc",)),
    "garbage extensions": request(extra=(b"Sec-WebSocket-Extensions: ;;;,,,==",)),
    "empty Sec-WebSocket-Protocol": request(b"/ws/subprotocol/", (b"Sec-WebSocket-Protocol: ",)),
    "commas Sec-WebSocket-Protocol": request(b"/ws/subprotocol/", (b"Sec-WebSocket-Protocol: ,,, ,",)),
    "undecodable percent in Sec-WebSocket-Protocol": request(b"/ws/subprotocol/", (b"Sec-WebSocket-Protocol: %ff%fe",)),
    "Bearer without a token": request(b"/ws/private/", (b"Authorization: Bearer",)),
    "Basic garbage": request(b"/ws/private/", (b"Authorization: Basic !!!",)),
    "JWT garbage": request(b"/ws/private/", (b"Authorization: Bearer a.b.c",)),
    "unsigned JWT": request(b"/ws/private/", (b"Authorization: Bearer eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxfQ.",)),
    "forged wsreject token": request(b"/ws/private/", (b"Authorization: Bearer wsr_" + b"A" * 62,)),
    "garbage ticket": request(b"/ws/private/?ticket=wst_garbage"),
    "undecodable ticket": request(b"/ws/private/?ticket=%ff%fe"),
    "two tickets": request(b"/ws/private/?ticket=a&ticket=b"),
    "weird X-Forwarded-For": request(extra=(b"X-Forwarded-For: ::::, 999.1.1.1, \xff",)),
    "NUL in the path": request(b"/ws/echo%00/"),
    "asterisk target": request(b"*"),
    "absolute target": request(b"http://127.0.0.1/ws/echo/"),
    "authority target": request(b"127.0.0.1:80"),
    "undecodable percent in the path": request(b"/ws/rooms/%zz/"),
    "dot segments": request(b"/ws/../ws/echo/"),
    "obsolete line folding": request(extra=(b"X-A: a", b" continued")),
    "header without a colon": request(extra=(b"NoColonHere",)),
    "header name with a space": request(extra=(b"X A: b",)),
    "underscore in a header name": request(b"/ws/private/", (b"Authorization_x: Bearer x",)),
    "bare LF line endings": request().replace(b"\r\n", b"\n"),
}


def test_malformed_requests_never_get_a_5xx_nor_log_an_error(daphne, demo):
    got = {name: answer(daphne, raw, timeout=3, frame_timeout=0.3) for name, raw in MALFORMED.items()}
    server_errors = {name: answer for name, answer in got.items() if isinstance(answer[0], int) and answer[0] >= 500}
    assert not server_errors, server_errors
    refused = sum(isinstance(answer[0], int) and 400 <= answer[0] < 500 for answer in got.values())
    assert refused >= 40, got  # most are refused (400, 401, 403, 404 ...), not silently accepted
    assert answer(daphne, upgrade_request("/ws/private/", token=demo.tokens["alice"])) == (101, None, {"user": "alice"})
    problems = [line for line in daphne.log().splitlines() if "ERROR" in line or "Traceback" in line or "CRITICAL" in line]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def closing_server() -> Iterator[Server]:
    with running_server("daphne-wsreject", "tests.security.close_app:app") as server:
        yield server


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, 1013, 3000, 4999])
def test_an_application_close_code_reaches_the_client(closing_server, code):
    start = len(closing_server.log())
    reply = exchange(closing_server.address, upgrade_request(f"/?code={code}"))
    assert reply.status == 101 and reply.frames and reply.frames[0][0] == 8, reply.frames
    assert reply.close_code == code and reply.frames[0][1][2:] == b"bye"
    log = closing_server.log()[start:]
    assert "Exception" not in log and "Traceback" not in log, log
