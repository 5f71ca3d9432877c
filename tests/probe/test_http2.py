"""``wsreject_probe --http2`` against hypercorn over cleartext HTTP/2 (RFC 8441 extended
CONNECT, prior knowledge) and over TLS (ALPN h2), and what it says where HTTP/2 or its
WebSockets are not on offer.

The server runs the FastAPI reference app (``tests/conformance/reference_fastapi.py``), which
needs no database: the conformance suite shows the demo answers the same over HTTP/2
(``hypercorn-h2``), and ``tests/conformance/test_http2.py`` probes the demo's close-code mode
with the same client. The command runs in this process (``commands.run_probe``: argparse and
all), the servers are real; the probes of one server run at once.
"""

from __future__ import annotations

import json
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.servers import Server, running_server
from wsreject.probe.h2 import INSTALL_HINT

from .commands import Run, run_probe
from .scripted import ScriptedServer

pytestmark = [pytest.mark.server]


REFERENCE_APP = "tests.conformance.reference_fastapi:app"
TOKENS = {"alice": "alice-h2-probe-token-0123456789", "bob": "bob-h2-probe-token-0123456789"}
ENV = {"WSREJECT_REF_TOKENS": json.dumps(TOKENS)}


@pytest.fixture(scope="module")
def hypercorn():
    with running_server("hypercorn", REFERENCE_APP, env=ENV) as server:
        yield server


@pytest.fixture(scope="module")
def runs(hypercorn: Server) -> dict[str, Run]:
    alice = f"Authorization: Bearer {TOKENS['alice']}"
    bob = f"Authorization: Bearer {TOKENS['bob']}"
    cases = {
        "anonymous": [hypercorn.url("/ws/private/")],
        "alice": [hypercorn.url("/ws/private/"), "-H", alice],
        "subprotocol": [hypercorn.url("/ws/subprotocol/"), "--subprotocol", "chat.v9", "--subprotocol", "chat.v2"],
        "room": [hypercorn.url("/ws/rooms/lobby/"), "--json", "-H", bob],
        "verbose": [hypercorn.url("/ws/private/"), "-v", "2", "-H", alice, "--origin", "http://localhost:8000"],
    }
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {name: pool.submit(run_probe, "--http2", *args) for name, args in cases.items()}
        results = {name: future.result() for name, future in futures.items()}
    assert hypercorn.alive(), hypercorn.log()[-3000:]
    return results


def test_a_denial_is_the_same_http_response(runs) -> None:
    run = runs["anonymous"]
    assert run.code == 1, run
    lines = run.out.splitlines()
    assert lines[0] == "denied: HTTP 401 Unauthorized"
    assert lines[2] == "HTTP/2 401"  # no reason phrase in HTTP/2, and no note about it
    assert "www-authenticate: Bearer" in lines
    assert "content-type: application/json" in lines
    assert not [line for line in lines if line.startswith(("connection:", "upgrade:"))]
    assert '{"detail":"Not authenticated"}' in run.out or '"detail": "Not authenticated"' in run.out


def test_an_accept_is_a_200_and_its_first_message(runs) -> None:
    run = runs["alice"]
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0] == "accepted: HTTP 200 OK"
    assert lines[2] == "HTTP/2 200"
    assert any('{"user":"alice"}' in line for line in lines), run


def test_the_subprotocol_is_negotiated(runs) -> None:
    run = runs["subprotocol"]
    assert run.code == 0, run
    assert "subprotocol: chat.v2" in run.out.splitlines()


def test_json_report(runs) -> None:
    run = runs["room"]
    assert run.code == 1, run
    report = json.loads(run.out)
    assert (report["outcome"], report["status"], report["detail"]) == ("denied", 403, "Not allowed to join this room")
    assert report["http"]["version"] == "HTTP/2"
    assert report["request"][:2] == [":method: CONNECT", ":protocol: websocket"]
    assert any(line.startswith("authorization: Bearer") and "…" in line for line in report["request"])


def test_verbose_shows_the_extended_connect_masked(runs) -> None:
    run = runs["verbose"]
    assert run.code == 0, run
    request = [line[2:] for line in run.err.splitlines() if line.startswith("> ")]
    assert request[:4] == [":method: CONNECT", ":protocol: websocket", ":scheme: http", ":path: /ws/private/"]
    assert "origin: http://localhost:8000" in request
    assert "sec-websocket-version: 13" in request
    assert TOKENS["alice"] not in run.err


def test_a_server_without_http2() -> None:
    """uvicorn speaks HTTP/1.1 only: the probe says so, exit 2."""
    with running_server("uvicorn-wsproto", REFERENCE_APP, env=ENV) as server:
        run = run_probe("--http2", server.url("/ws/private/"), "--timeout", "5")
    assert run.code == 2, run
    assert "does not speak HTTP/2" in run.err, run


def test_connection_specific_headers_are_refused(hypercorn: Server) -> None:
    run = run_probe("--http2", hypercorn.url("/ws/echo/"), "-H", "Keep-Alive: timeout=5")
    assert run.code == 2, run
    assert "connection-specific header, not allowed in HTTP/2" in run.err


def test_without_h2_installed(monkeypatch: pytest.MonkeyPatch, hypercorn: Server) -> None:
    """The extra is optional: without it --http2 is a clear error, exit 2, nothing sent."""
    for name in [name for name in sys.modules if name == "h2" or name.startswith("h2.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "h2", None)  # what an absent package looks like to import
    run = run_probe("--http2", hypercorn.url("/ws/echo/"))
    assert run.code == 2, run
    assert run.err.strip() == f"wsreject_probe: {INSTALL_HINT}"
    assert run.out == ""


# --- over TLS, and servers that do not offer WebSockets over HTTP/2 -----------------------------


def test_wss_negotiates_h2_with_alpn(tmp_path) -> None:
    """hypercorn with a certificate: the probe offers ALPN h2 and gets the same denial."""
    from tests.conformance.http3 import make_certificate

    certfile, keyfile = make_certificate(tmp_path)
    args = ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    with running_server("hypercorn", REFERENCE_APP, env=ENV, extra_args=args, ready="tcp") as server:
        untrusted = run_probe("--http2", server.url("/ws/private/").replace("ws://", "wss://"))
        run = run_probe("--http2", "--insecure", server.url("/ws/private/").replace("ws://", "wss://"))
    assert untrusted.code == 2 and "certificate verification failed" in untrusted.err, untrusted
    assert run.code == 1, run
    lines = run.out.splitlines()
    assert (lines[0], lines[2]) == ("denied: HTTP 401 Unauthorized", "HTTP/2 401")
    assert "www-authenticate: Bearer" in lines


def test_a_tls_server_without_h2(tmp_path) -> None:
    """A TLS server that does not select ALPN h2: exit 2, nothing sent in HTTP/2."""
    from tests.conformance.http3 import make_certificate

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*make_certificate(tmp_path))
    with ScriptedServer(lambda conn, request: None, tls=context) as server:
        run = run_probe("--http2", "--insecure", server.url("/ws/", scheme="wss"), "--timeout", "2")
    assert run.code == 2, run
    assert run.err == f"wsreject_probe: the server at 127.0.0.1:{server.port} did not agree to HTTP/2 (ALPN h2) in the TLS handshake\n"


def test_an_http2_server_without_extended_connect() -> None:
    """HTTP/2 without SETTINGS_ENABLE_CONNECT_PROTOCOL (the h2 package's server defaults):
    the probe says WebSockets are not offered there, exit 2, and sends no CONNECT."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    def script(conn, request) -> None:
        server = H2Connection(H2Configuration(client_side=False))
        server.initiate_connection()
        conn.sendall(server.data_to_send())

    with ScriptedServer(script) as server:
        run = run_probe("--http2", server.url("/ws/echo/"), "--timeout", "3")
        received = server.received()
    assert run.code == 2, run
    assert "does not offer WebSockets over HTTP/2: no SETTINGS_ENABLE_CONNECT_PROTOCOL" in run.err
    assert received.request_line == "PRI * HTTP/2.0"  # the connection preface ...
    assert received.after.startswith(b"SM\r\n\r\n")
    assert HEADERS not in _frame_types(received.after[len(b"SM\r\n\r\n") :])  # ... and no request


HEADERS = 0x1


def _frame_types(data: bytes) -> list[int]:
    """The types of the HTTP/2 frames in ``data`` (RFC 9113 §4.1: 9-byte headers)."""
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types
