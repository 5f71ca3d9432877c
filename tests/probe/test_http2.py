"""``wsreject_probe --http2`` against the demo on hypercorn over cleartext HTTP/2 (RFC 8441
extended CONNECT, prior knowledge), and what it says where HTTP/2 is not on offer.

The command runs in this process (``commands.run_probe``: argparse and all), the servers are
real; the probes of one server run at once.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.demo import DEMO_APP, DemoData, prepare_demo
from tests.support.servers import Server, running_server
from wsreject.probe.h2 import INSTALL_HINT

from .commands import Run, run_probe

pytestmark = [pytest.mark.server]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("probe-h2-demo"))


@pytest.fixture(scope="module")
def hypercorn(demo: DemoData):
    with running_server("hypercorn", DEMO_APP, env=demo.env) as server:
        yield server


@pytest.fixture(scope="module")
def runs(hypercorn: Server, demo: DemoData) -> dict[str, Run]:
    alice = f"Authorization: Bearer {demo.tokens['alice']}"
    bob = f"Authorization: Bearer {demo.tokens['bob']}"
    cases = {
        "anonymous": [hypercorn.url("/ws/private/")],
        "alice": [hypercorn.url("/ws/private/"), "-H", alice],
        "subprotocol": [hypercorn.url("/ws/subprotocol/"), "--subprotocol", "chat.v9", "--subprotocol", "chat.v2"],
        "close-code": [hypercorn.url("/ws/browser/maintenance/")],
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


def test_close_code_mode_over_http2(runs) -> None:
    run = runs["close-code"]
    assert run.code == 1, run
    lines = run.out.splitlines()
    assert lines[0] == "denied in close-code mode: close code 4503 (HTTP 503 Service Unavailable)"
    assert 'detail: "Down for maintenance"' in lines
    assert 'reason: "Down for maintenance"' in lines


def test_json_report(runs) -> None:
    run = runs["room"]
    assert run.code == 1, run
    report = json.loads(run.out)
    assert (report["outcome"], report["status"], report["detail"]) == ("denied", 403, "Not allowed to join this room")
    assert report["http"]["version"] == "HTTP/2"
    assert report["request"][:2] == [":method: CONNECT", ":protocol: websocket"]
    assert any(line.startswith("authorization: Bearer") and "…" in line for line in report["request"])


def test_verbose_shows_the_extended_connect_masked(runs, demo: DemoData) -> None:
    run = runs["verbose"]
    assert run.code == 0, run
    request = [line[2:] for line in run.err.splitlines() if line.startswith("> ")]
    assert request[:4] == [":method: CONNECT", ":protocol: websocket", ":scheme: http", ":path: /ws/private/"]
    assert "origin: http://localhost:8000" in request
    assert "sec-websocket-version: 13" in request
    assert demo.tokens["alice"] not in run.err


def test_a_server_without_http2(demo: DemoData) -> None:
    """uvicorn speaks HTTP/1.1 only: the probe says so, exit 2."""
    with running_server("uvicorn-wsproto", DEMO_APP, env=demo.env) as server:
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
