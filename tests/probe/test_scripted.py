"""``wsreject_probe`` against a scripted server on 127.0.0.1: canned answers, exact bytes, exit codes."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from tests.support.servers import free_port

from .commands import run_probe
from .scripted import (
    ScriptedServer,
    accept_head,
    client_frames,
    close_frame,
    read_client_frame,
    server_frame,
    text_frame,
)

DENIAL_401 = (
    b"HTTP/1.1 401 Unauthorized\r\n"
    b"www-authenticate: Bearer\r\n"
    b"content-type: application/json\r\n"
    b"content-length: 30\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b'{"detail":"Not authenticated"}'
)


def send(data: bytes):
    return lambda conn, request: conn.sendall(data)


def assert_closed_politely(after: bytes) -> None:
    """The client's last words: one masked close frame with 1000."""
    frames = client_frames(after)
    assert [(f.opcode, f.masked) for f in frames][-1:] == [(0x8, True)], frames
    assert struct.unpack("!H", frames[-1].payload[:2]) == (1000,)


# --- accepted -------------------------------------------------------------------------------


def test_accepted_sends_a_valid_request_and_closes_with_1000() -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request, "Server: scripted"))) as server:
        run = run_probe(server.url("/ws/echo/?room=a%20b&x=1"), "--wait", "0.1")
        received = server.received()
    assert run.code == 0, run
    assert run.out.splitlines()[0] == "accepted: HTTP 101 Switching Protocols"
    assert "Server: scripted" in run.out
    assert "subprotocol: (none)" in run.out
    assert run.err == ""
    assert received.request_line == "GET /ws/echo/?room=a%20b&x=1 HTTP/1.1"
    assert received.header("host") == [f"127.0.0.1:{server.port}"]
    assert received.header("upgrade") == ["websocket"]
    assert received.header("connection") == ["Upgrade"]
    assert received.header("sec-websocket-version") == ["13"]
    assert len(received.key) == 24
    assert_closed_politely(received.after)


def test_each_request_has_a_fresh_key() -> None:
    keys = []
    for _ in range(2):
        with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request))) as server:
            assert run_probe(server.url("/"), "--wait", "0").code == 0
            keys.append(server.received().key)
    assert keys[0] != keys[1]


def test_headers_origin_cookies_and_subprotocols_are_sent_in_order() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request, "Sec-WebSocket-Protocol: chat.v2"))

    with ScriptedServer(script) as server:
        run = run_probe(
            server.url("/ws/"),
            "--subprotocol", "chat.v1", "--subprotocol", "chat.v2",
            "--origin", "https://app.example.com",
            "--cookie", "sessionid=abc", "--cookie", "csrftoken=def",
            "-H", "X-First: 1", "--header", "X-Second:  two words ",
            "--wait", "0",
        )  # fmt: skip
        received = server.received()
    assert run.code == 0, run
    assert "subprotocol: chat.v2" in run.out
    names = [name for name, _ in received.header_lines()]
    assert names[-4:] == ["Origin", "Cookie", "X-First", "X-Second"]
    assert received.header("sec-websocket-protocol") == ["chat.v1, chat.v2"]
    assert received.header("origin") == ["https://app.example.com"]
    assert received.header("cookie") == ["sessionid=abc; csrftoken=def"]
    assert received.header("x-second") == ["two words"]


def test_a_host_header_replaces_the_default() -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request))) as server:
        assert run_probe(server.url("/"), "-H", "Host: example.com", "--wait", "0").code == 0
        assert server.received().header("host") == ["example.com"]


def test_first_message_of_an_accepted_connection_is_shown() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request) + text_frame('{"user":"alice"}'))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "5")  # returns at the message, not after 5 s
        received = server.received()
    assert run.code == 0, run
    assert 'message (text): {"user":"alice"}' in run.out
    assert_closed_politely(received.after)


def test_a_detail_frame_without_a_4xxx_close_is_an_accept() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request) + text_frame('{"detail":"hello"}') + close_frame(1000, "bye"))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "5")
    assert run.code == 0, run
    assert 'closed by the server: 1000 "bye"' in run.out


def test_a_server_ping_is_answered_with_a_pong() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request) + server_frame(0x9, b"hi"))
        script.pong = client_frames(read_client_frame(conn))
        conn.sendall(text_frame('{"detail":"Forbidden"}') + close_frame(4403, "Forbidden"))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "5")
        server.received()
    assert run.code == 1, run
    assert [(f.opcode, f.masked, f.payload) for f in script.pong] == [(0xA, True, b"hi")]


# --- denied over HTTP -------------------------------------------------------------------------


def test_401_json_denial() -> None:
    with ScriptedServer(send(DENIAL_401)) as server:
        run = run_probe(server.url("/ws/private/"))
    assert run.code == 1, run
    assert run.out.splitlines() == [
        "denied: HTTP 401 Unauthorized",
        "",
        "HTTP/1.1 401 Unauthorized",
        "www-authenticate: Bearer",
        "content-type: application/json",
        "content-length: 30",
        "connection: close",
        "",
        "{",
        '  "detail": "Not authenticated"',
        "}",
    ]
    assert run.err == ""


def test_418_text_denial_keeps_header_order_and_repeats() -> None:
    response = (
        b"HTTP/1.1 418 I'm a Teapot\r\n"
        b"x-teapot: short-and-stout\r\n"
        b"set-cookie: a=1\r\n"
        b"set-cookie: b=2\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: 16\r\n"
        b"\r\n" + "I'm a teapot ☕".encode()
    )
    with ScriptedServer(send(response)) as server:
        run = run_probe(server.url("/ws/teapot/"))
    assert run.code == 1, run
    assert run.out.splitlines()[2:] == [
        "HTTP/1.1 418 I'm a Teapot",
        "x-teapot: short-and-stout",
        "set-cookie: a=1",
        "set-cookie: b=2",
        "content-type: text/plain; charset=utf-8",
        "content-length: 16",
        "",
        "I'm a teapot ☕",
    ]


def test_denial_without_reason_phrase_names_the_status() -> None:
    with ScriptedServer(send(b"HTTP/1.1 403 \r\ncontent-length: 0\r\n\r\n")) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert run.out.splitlines()[:3] == ["denied: HTTP 403 Forbidden", "", "HTTP/1.1 403  (no reason phrase; Forbidden)"]
    assert run.out.splitlines()[-1] == "(no body)"


def test_chunked_json_body_is_decoded() -> None:
    response = (
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        b"b\r\n{\"detail\":\"\r\n"
        b"10;ext=1\r\nToo many tries\"}\r\n"
        b"0\r\n\r\n"
    )
    with ScriptedServer(send(response)) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert '  "detail": "Too many tries"' in run.out.splitlines()


def test_body_until_close_when_no_length() -> None:
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\r\ndown ")
        conn.sendall(b"for maintenance")
        conn.shutdown(socket.SHUT_WR)

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert run.out.splitlines()[-1] == "down for maintenance"


def test_huge_body_is_cut_in_the_report() -> None:
    body = b"x" * (3 * 1024 * 1024)
    response = b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % len(body)

    def script(conn, request):
        conn.sendall(response)
        try:
            conn.sendall(body)
        except OSError:
            pass  # the probe stops reading at its limit and closes

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert len(run.out) < 6000
    assert run.out.splitlines()[-1] == "… (body cut: 4000 of 1048576+ bytes shown)"


def test_invalid_json_body_is_shown_as_text() -> None:
    with ScriptedServer(send(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{oops")) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert run.out.splitlines()[-2:] == ["{oops", "(the content-type says JSON, but the body is not valid JSON)"]


def test_control_characters_from_the_server_are_escaped() -> None:
    response = b"HTTP/1.1 400 Bad\x1b[31m\r\nx-evil: a\x1b]0;pwned\x07b\r\ncontent-length: 9\r\n\r\nred\x1b[0m!\n"
    with ScriptedServer(send(response)) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert "\x1b" not in run.out and "\x07" not in run.out
    assert "x-evil: a\\x1b]0;pwned\\x07b" in run.out
    assert "HTTP/1.1 400 Bad\\x1b[31m" in run.out


# --- denied in close-code mode ----------------------------------------------------------------


def test_detail_frame_then_4403_close_is_a_close_code_denial() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request) + text_frame('{"detail":"Not allowed to join this room"}') + close_frame(4403, "Not allowed to join this room"))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/ws/browser/rooms/lobby/"))
        received = server.received()
    assert run.code == 1, run
    lines = run.out.splitlines()
    assert lines[0] == "denied in close-code mode: close code 4403 (HTTP 403 Forbidden)"
    assert lines[-5:] == [
        "subprotocol: (none)",
        "close code: 4403",
        "status: 403 Forbidden",
        'reason: "Not allowed to join this room"',
        'detail: "Not allowed to join this room"',
    ]
    assert_closed_politely(received.after)


def test_close_code_denial_split_across_fragments_and_writes() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request))
        conn.sendall(server_frame(0x1, b'{"detail":', fin=False))
        conn.sendall(server_frame(0x0, b'"Room not found"}'))
        conn.sendall(close_frame(4404, ""))  # a server that drops reasons (stock Daphne)

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "5")
    assert run.code == 1, run
    assert run.out.splitlines()[-3:] == ["status: 404 Not Found", 'reason: ""', 'detail: "Room not found"']


def test_4xxx_close_without_a_detail_frame() -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request) + close_frame(4429, "slow down"))) as server:
        run = run_probe(server.url("/"))
    assert run.code == 1, run
    assert run.out.splitlines()[-2:] == ['reason: "slow down"', "detail: (no detail frame)"]


def test_a_greeting_then_4xxx_close_is_an_accept() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request) + text_frame('{"user":"bob"}') + close_frame(4000, "later"))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "5")
    assert run.code == 0, run


def test_close_code_flag_waits_for_a_slow_server() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request))
        time.sleep(0.3)  # a slow server (not synchronisation): the probe must outwait it
        conn.sendall(text_frame('{"detail":"Not authenticated"}') + close_frame(4401, "Not authenticated"))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "0", "--close-code")
    assert run.code == 1, run
    assert "close code: 4401" in run.out


def test_listening_ends_after_wait() -> None:
    """A denial that would come only after the probe's close is not waited for."""

    def script(conn, request):
        conn.sendall(accept_head(request))
        script.first = client_frames(read_client_frame(conn))  # the probe gave up listening
        conn.sendall(text_frame('{"detail":"late"}') + close_frame(4401, "late"))
        conn.shutdown(socket.SHUT_WR)

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--wait", "0")
        server.received()
    assert run.code == 0, run
    assert [(f.opcode, f.payload) for f in script.first] == [(0x8, struct.pack("!H", 1000))]


# --- failures: exit 2 -------------------------------------------------------------------------


def test_wrong_accept_is_a_failure() -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request, accept="dGhlIHNhbXBsZSBub25jZQ=="))) as server:
        run = run_probe(server.url("/"))
    assert run.code == 2, run
    assert run.out == ""
    assert run.err.startswith("wsreject_probe: invalid handshake: the server answered 101 with a wrong Sec-WebSocket-Accept")
    assert len(run.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (("Sec-WebSocket-Protocol: chat.v9",), "selecting subprotocol 'chat.v9', not one offered (chat.v1)"),
        (("Sec-WebSocket-Extensions: permessage-deflate",), "with extensions the probe did not offer"),
    ],
)
def test_accept_with_unoffered_choices_is_a_failure(extra, problem) -> None:
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request, *extra))) as server:
        run = run_probe(server.url("/"), "--subprotocol", "chat.v1")
    assert run.code == 2, run
    assert problem in run.err


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"HTTP/1.1 401 Unauth", "truncated response: the server closed the connection after 19 bytes of the response head"),
        (
            b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 30\r\n\r\n{\"detail\":",
            "truncated response: HTTP 401, content-length 30 but the connection closed after 10 bytes of body",
        ),
        (b"", "the server closed the connection without answering"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed response: not an HTTP/1.x status line: SSH-2.0-OpenSSH_9.6"),
        (b"HTTP/1.1 401 X\r\nbad header\r\n\r\n", "malformed response: a malformed header line: bad header"),
        (b"HTTP/1.1 401 X\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd", "malformed response: an invalid content-length: 3, 4"),
    ],
    ids=["head", "body", "nothing", "not-http", "header", "content-length"],
)
def test_truncated_or_malformed_response_is_a_failure(response: bytes, message: str) -> None:
    def script(conn, request):
        conn.sendall(response)
        conn.shutdown(socket.SHUT_WR)

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"))
    assert run.code == 2, run
    assert run.err.strip() == f"wsreject_probe: {message}"


def test_oversized_head_is_a_failure() -> None:
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\n" + b"x-filler: " + b"a" * 70000 + b"\r\n\r\n")

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"))
    assert run.code == 2, run
    assert "the response head exceeds 64 KiB" in run.err


def test_silence_is_a_timeout() -> None:
    with ScriptedServer(lambda conn, request: None) as server:
        started = time.monotonic()
        run = run_probe(server.url("/"), "--timeout", "0.3")
        elapsed = time.monotonic() - started
        server.received()  # the probe closed the connection
    assert run.code == 2, run
    assert run.err.strip() == "wsreject_probe: timed out after 0.3 s waiting for a response"
    assert 0.3 <= elapsed < 3


def test_connection_refused() -> None:
    port = free_port()  # bound and released: nobody listens there
    run = run_probe(f"ws://127.0.0.1:{port}/ws/echo/")
    assert run.code == 2, run
    assert run.err.strip() == f"wsreject_probe: connection refused by 127.0.0.1:{port}"
    assert run.out == ""


def test_protocol_error_after_accept_is_a_failure() -> None:
    masked_frame = bytes([0x81, 0x80 | 2]) + b"\0\0\0\0" + b"hi"  # servers must not mask
    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request) + masked_frame)) as server:
        run = run_probe(server.url("/"))
    assert run.code == 2, run
    assert run.err.strip() == "wsreject_probe: protocol error after the accept: a frame from the server is masked"


# --- JSON output ----------------------------------------------------------------------------


def test_json_output_of_a_denial() -> None:
    with ScriptedServer(send(DENIAL_401)) as server:
        run = run_probe(server.url("/ws/private/"), "--json")
    assert run.code == 1, run
    data = json.loads(run.out)
    assert data["outcome"] == "denied"
    assert data["exit_code"] == 1
    assert data["status"] == 401
    assert data["detail"] == "Not authenticated"
    assert data["body_json"] == {"detail": "Not authenticated"}
    assert data["http"]["headers"][0] == ["www-authenticate", "Bearer"]


def test_json_output_of_a_close_code_denial() -> None:
    def script(conn, request):
        conn.sendall(accept_head(request) + text_frame('{"detail":"Not authenticated"}') + close_frame(4401, "Not authenticated"))

    with ScriptedServer(script) as server:
        run = run_probe(server.url("/"), "--json")
    data = json.loads(run.out)
    assert (run.code, data["outcome"], data["status"], data["close_code"], data["detail"]) == (
        1, "denied_close_code", 401, 4401, "Not authenticated",
    )  # fmt: skip


def test_json_output_of_a_failure() -> None:
    port = free_port()
    run = run_probe(f"ws://127.0.0.1:{port}/", "--json")
    assert run.code == 2, run
    assert json.loads(run.out)["outcome"] == "error"
    assert "connection refused" in json.loads(run.out)["error"]
    assert run.err.startswith("wsreject_probe: connection refused")


# --- secrets are not echoed ------------------------------------------------------------------------


def test_credentials_are_masked_in_every_echo() -> None:
    token = "s3cr3t-t0ken-0123456789abcdefghijklmnop"
    with ScriptedServer(send(DENIAL_401)) as server:
        run = run_probe(
            server.url("/"), "-v", "2", "--json",
            "-H", f"Authorization: Bearer {token}", "--cookie", f"sessionid={token}", "-H", f"X-Api-Key: {token}",
        )  # fmt: skip
        received = server.received()
    assert received.header("authorization") == [f"Bearer {token}"]  # sent in full ...
    assert token not in run.out and token not in run.err  # ... never printed
    request = json.loads(run.out)["request"]
    assert "Authorization: Bearer s3cr…" in request
    assert "Cookie: sessionid=s3cr…" in request
    assert "X-Api-Key: s3cr…" in request
    assert "> Authorization: Bearer s3cr…" in run.err.splitlines()


def test_short_secrets_show_nothing() -> None:
    with ScriptedServer(send(DENIAL_401)) as server:
        run = run_probe(server.url("/"), "--json", "-H", "Authorization: Basic YTpi")
    assert "Authorization: Basic …" in json.loads(run.out)["request"]
    assert "YTpi" not in run.out


def test_verbosity_0_prints_the_summary_only() -> None:
    with ScriptedServer(send(DENIAL_401)) as server:
        run = run_probe(server.url("/"), "-v", "0")
    assert (run.code, run.out, run.err) == (1, "denied: HTTP 401 Unauthorized\n", "")
