"""``python manage.py wsreject_probe`` (a subprocess, as users run it) against the demo on real
servers: Daphne + wsreject, and uvicorn (its default websockets-sansio, and wsproto, which
sends no reason phrase).

Each server gets every probe at once (the subprocesses run concurrently: Django's start-up
dominates their time); the tests then check one result each.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.demo import DEMO_APP, DemoData, prepare_demo
from tests.support.servers import Server, free_port, running_server

from .commands import Run, run_probe_process

pytestmark = [pytest.mark.server]

KINDS = ("daphne-wsreject", "uvicorn-websockets-sansio", "uvicorn-wsproto")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("probe-demo"))


def probe_args(server: Server, tokens: dict[str, str]) -> dict[str, list[str]]:
    return {
        "anonymous": [server.url("/ws/private/")],
        "alice": [server.url("/ws/private/"), "--header", f"Authorization: Bearer {tokens['alice']}"],
        "echo": [server.url("/ws/echo/"), "--json"],
        "subprotocol": [server.url("/ws/subprotocol/"), "--subprotocol", "chat.v9", "--subprotocol", "chat.v2"],
        "close-code": [server.url("/ws/browser/private/")],
        "room": [server.url("/ws/rooms/lobby/"), "--json", "-H", f"Authorization: Bearer {tokens['bob']}"],
    }


@pytest.fixture(scope="module", params=KINDS)
def runs(request, demo: DemoData) -> tuple[Server, dict[str, Run]]:
    with running_server(request.param, DEMO_APP, env=demo.env) as server:
        cases = probe_args(server, demo.tokens)
        with ThreadPoolExecutor(len(cases)) as pool:
            futures = {name: pool.submit(run_probe_process, *args) for name, args in cases.items()}
            results = {name: future.result() for name, future in futures.items()}
        assert server.alive(), server.log()[-3000:]
    return server, results


def test_private_without_credentials_is_a_401(runs) -> None:
    server, results = runs
    run = results["anonymous"]
    assert run.code == 1, run
    lines = run.out.splitlines()
    assert lines[0] == "denied: HTTP 401 Unauthorized"
    status_line = "HTTP/1.1 401" if server.kind == "uvicorn-wsproto" else "HTTP/1.1 401 Unauthorized"
    assert lines[2].startswith(status_line)
    assert "www-authenticate: Bearer" in lines
    assert "content-type: application/json" in lines
    assert lines[-3:] == ["{", '  "detail": "Not authenticated"', "}"]
    assert run.err == ""


def test_private_with_a_token_is_accepted(runs, demo: DemoData) -> None:
    run = runs[1]["alice"]
    assert run.code == 0, run
    assert run.out.splitlines()[0] == "accepted: HTTP 101 Switching Protocols"
    assert 'message (text): {"user":"alice"}' in run.out
    assert demo.tokens["alice"] not in run.out + run.err


def test_echo_is_accepted(runs) -> None:
    run = runs[1]["echo"]
    assert run.code == 0, run
    data = json.loads(run.out)
    assert (data["outcome"], data["status"], data["subprotocol"], data["messages"]) == ("accepted", 101, None, [])


def test_subprotocol_is_reported(runs) -> None:
    run = runs[1]["subprotocol"]
    assert run.code == 0, run
    assert "subprotocol: chat.v2" in run.out


def test_close_code_mount_is_a_close_code_denial(runs) -> None:
    run = runs[1]["close-code"]
    assert run.code == 1, run
    lines = run.out.splitlines()
    assert lines[0] == "denied in close-code mode: close code 4401 (HTTP 401 Unauthorized)"
    assert lines[-4:] == [
        "close code: 4401",
        "status: 401 Unauthorized",
        'reason: "Not authenticated"',
        'detail: "Not authenticated"',
    ]


def test_room_denial_as_json(runs) -> None:
    run = runs[1]["room"]
    assert run.code == 1, run
    data = json.loads(run.out)
    assert (data["status"], data["detail"]) == (403, "Not allowed to join this room")


def test_closed_port() -> None:
    port = free_port()
    run = run_probe_process(f"ws://127.0.0.1:{port}/ws/echo/")
    assert run.code == 2, run
    assert run.err == f"wsreject_probe: connection refused by 127.0.0.1:{port}\n"
    assert run.out == ""
