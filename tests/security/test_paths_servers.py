"""Path spellings against real servers: what they deliver, and rules covering every spelling.

Each request target is written on the socket exactly as listed (percent-encodings,
doubled slashes, absolute form), so what is tested is what a client can send.
First the servers' decoding is measured with an app that echoes its scope; then
the demo runs on Daphne + wsreject and on uvicorn (websockets-sansio, ``--ws
auto``) three times: without rules (bob's answers tell which spellings reach
RoomConsumer, and on which mount: 403 over HTTP under ``/ws/``, close code 4403
under ``/ws/browser/``), with a disabled ``/ws/rooms/*`` rule, and with a disabled
``rooms`` route-name rule. Every spelling reaching a covered consumer must be
refused by the rule; every other spelling must get exactly its answer without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin.admin_client import AdminClient
from tests.support.demo import DEMO_APP
from tests.support.servers import Server, running_server

from .deployment import demo_copy
from .rawhttp import HeaderPair, exchange, upgrade_request
from .spellings import DELIVERED, DELIVERED_DIFFERENTLY

pytestmark = pytest.mark.server

KINDS = ("daphne-wsreject", "uvicorn-websockets-sansio")
JOIN_REFUSED = {"detail": "Not allowed to join this room"}

Spelling = tuple[str, tuple[HeaderPair, ...]]
SPELLINGS: list[Spelling] = [(target, ()) for target in [*DELIVERED, *DELIVERED_DIFFERENTLY]] + [
    (target, ())
    for target in (
        "/ws/rooms/lobby",
        "/ws/rooms/lobby//",
        "/ws/Rooms/lobby/",
        "/ws/rooms/dev/",
        "/ws/rooms/nope/",
        "/ws/browser/rooms/lobby/",
        "/ws/browser/rooms/lobby",
        "//ws/browser//rooms/lobby/",
        "/ws/browser/rooms/%64ev/",
        "/ws/private/",
    )
] + [
    # Daphne takes a root path from the client (Daphne-Root-Path, percent-decoded); uvicorn ignores it.
    ("/x/ws//rooms/lobby/", (("Daphne-Root-Path", "/x"),)),
    ("/%78/ws/browser/rooms/lobby/", (("Daphne-Root-Path", "/%78"),)),
    ("/x/ws/rooms/lobby/", (("Daphne-Root-Path", "/y"),)),
]


def family(kind: str) -> str:
    return "daphne" if kind.startswith("daphne") else "uvicorn"


@pytest.mark.parametrize("kind", KINDS)
def test_servers_percent_decode_the_path_as_measured(kind):
    with running_server(kind, "tests.security.scope_echo:app") as server:
        for target, expected in DELIVERED.items():
            seen = exchange(server.address, upgrade_request(target)).json()
            assert seen["path"] == expected, target
            assert seen["raw_path"] == target.split("?")[0], target
        for target, per_server in DELIVERED_DIFFERENTLY.items():
            assert exchange(server.address, upgrade_request(target)).json()["path"] == per_server[family(kind)], target


def digest(server: Server, spelling: Spelling, token: str) -> tuple[Any, ...]:
    """One raw handshake: ``(101, first JSON frame, close code)`` or ``(status, body, Retry-After)``."""
    target, headers = spelling
    reply = exchange(server.address, upgrade_request(target, headers, token=token))
    if reply.status == 101:
        return (101, reply.first_text(), reply.close_code)
    assert reply.status is not None, f"{target}: no answer ({reply.outcome})"
    return (reply.status, reply.body.decode("utf-8", "replace"), reply.header("retry-after"))


def answers(server: Server, token: str) -> dict[Spelling, tuple[Any, ...]]:
    return {spelling: digest(server, spelling, token) for spelling in SPELLINGS}


# Spellings of /ws/limited/ that reach LimitedConsumer on both servers, in the order sent.
LIMITED = [
    "/ws/limited/",
    "/ws//limited/",
    "/ws%2Flimited/",
    "/ws///limited/",
    "/ws/%6Cimited/",
    "/ws/limited/?again=1",
    "/ws/browser//limited/",
    "/ws%2fbrowser%2flimited%2f",
]


@pytest.fixture(scope="module", params=KINDS)
def observed(request, demo_template, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Every spelling's answer on one server: without rules (bob, alice), then (alice) with a
    disabled ``/ws/rooms/*`` rule, then with a disabled ``rooms`` rule added (a route name
    is more specific than a prefix: it answers first). The rules are added in the server's
    own admin, so its next handshake sees them. Also the ``LIMITED`` spellings' answers."""
    kind = request.param
    with (
        demo_copy(demo_template, tmp_path_factory.mktemp("paths")) as deployment,
        running_server(kind, DEMO_APP, env=deployment.env) as server,
    ):
        tokens = deployment.tokens
        admin = AdminClient(server).login()
        seen: dict[str, Any] = {"kind": kind, "limited": [exchange(server.address, upgrade_request(t)) for t in LIMITED]}
        seen["bob"] = answers(server, tokens["bob"])
        seen["none"] = answers(server, tokens["alice"])
        admin.add_rule(endpoint="/ws/rooms/*", enabled=[], retry_after="77", disabled_detail="Rooms closed (prefix)")
        seen["prefix"] = answers(server, tokens["alice"])
        admin.add_rule(endpoint="rooms", enabled=[], retry_after="78", disabled_detail="Rooms closed (name)")
        seen["name"] = answers(server, tokens["alice"])
    yield seen


def reaches_rooms(bob_answer: tuple[Any, ...]) -> str | None:
    """Which mount RoomConsumer refused bob on: "ws" (HTTP 403), "browser" (close 4403), or None."""
    if bob_answer[:2] == (403, '{"detail":"Not allowed to join this room"}'):
        return "ws"
    if bob_answer == (101, JOIN_REFUSED, 4403):
        return "browser"
    return None


def test_spellings_reach_the_room_consumer_on_both_mounts(observed):
    mounts = {spelling: reaches_rooms(answer) for spelling, answer in observed["bob"].items()}
    alice = observed["none"]
    expected_ws = ["/ws/rooms/lobby/", "/ws//rooms/lobby/", "/ws///rooms/lobby/", "/ws%2Frooms/lobby/", "/ws%2frooms%2flobby%2f"]
    expected_ws += ["/ws/%72ooms/lob%62y/", "/ws/rooms/lobby%2F", "/ws/rooms/LOBBY/"]
    for target in expected_ws:
        assert mounts[(target, ())] == "ws", target
    assert mounts[("/ws/browser//rooms/lobby/", ())] == "browser"
    assert mounts[("/ws%2Fbrowser%2Frooms%2Flobby%2F", ())] == "browser"
    assert alice[("/ws//rooms/lobby/", ())] == (101, {"room": "lobby", "user": "alice"}, None)
    for target in ("/ws/rooms/lobby", "/ws/rooms/lobby//", "/ws/rooms/lobby/%2F", "/ws/Rooms/lobby/", "/WS/rooms/lobby/"):
        assert alice[(target, ())] == (404, '{"detail":"Not Found"}', None), target  # never the consumer
    daphne = observed["kind"].startswith("daphne")
    # Measured: Daphne reads //ws/... as authority "ws" (404); uvicorn routes it like /ws/...
    assert mounts[("//ws/rooms/lobby/", ())] == (None if daphne else "ws")
    # Daphne takes the root path the client sends; uvicorn routes /x/ws/... nowhere.
    assert mounts[("/x/ws//rooms/lobby/", (("Daphne-Root-Path", "/x"),))] == ("ws" if daphne else None)
    assert mounts[("/%78/ws/browser/rooms/lobby/", (("Daphne-Root-Path", "/%78"),))] == ("browser" if daphne else None)


def test_a_disabled_prefix_rule_refuses_every_spelling_under_its_mount(observed):
    covered = 0
    for spelling, bob in observed["bob"].items():
        answer = observed["prefix"][spelling]
        if reaches_rooms(bob) == "ws":
            assert answer == (503, '{"detail":"Rooms closed (prefix)"}', "77"), spelling
            covered += 1
        else:
            assert answer == observed["none"][spelling], spelling
    assert covered >= 12


def test_a_disabled_route_name_rule_refuses_every_spelling_on_both_mounts(observed):
    covered = {"ws": 0, "browser": 0}
    for spelling, bob in observed["bob"].items():
        answer = observed["name"][spelling]
        mount = reaches_rooms(bob)
        if mount == "ws":
            assert answer == (503, '{"detail":"Rooms closed (name)"}', "78"), spelling
        elif mount == "browser":
            assert answer == (101, {"detail": "Rooms closed (name)"}, 4503), spelling
        else:
            assert answer == observed["none"][spelling], spelling
            continue
        covered[mount] += 1
    assert covered["ws"] >= 12 and covered["browser"] >= 3, covered


def test_a_root_path_does_not_change_what_a_rule_covers(demo_database):
    """uvicorn ``--root-path /prefix`` puts the prefix in front of ``scope["path"]``; the rule
    still covers the routed endpoint. (Daphne's root path, sent by the client in
    ``Daphne-Root-Path``, is among the spellings above.)"""
    data = demo_database
    alice = data.tokens["alice"]
    with running_server("uvicorn-websockets-sansio", DEMO_APP, env=data.env, extra_args=["--root-path", "/prefix"]) as server:
        assert digest(server, ("/ws//rooms/lobby/", ()), alice) == (101, {"room": "lobby", "user": "alice"}, None)
        AdminClient(server).login().add_rule(endpoint="rooms", enabled=[], retry_after="78", disabled_detail="Closed")
        for target in ("/ws//rooms/lobby/", "//ws/rooms/dev/", "/ws%2Frooms/lobby/", "/prefix/ws/rooms/lobby/"):
            expected = (503, '{"detail":"Closed"}', "78") if target != "/prefix/ws/rooms/lobby/" else (404, '{"detail":"Not Found"}', None)
            assert digest(server, (target, ()), alice) == expected, target
        assert digest(server, ("/ws/browser//rooms/lobby/", ()), alice) == (101, {"detail": "Closed"}, 4503)
        assert digest(server, ("/ws/private/", ()), alice) == (101, {"user": "alice"}, None)


def test_spellings_share_one_throttle_budget(observed):
    """Throttle("3/60s"): three handshakes per client, however the path is spelled, on either mount."""
    got = observed["limited"]
    assert [(reply.status, reply.first_text()) for reply in got[:3]] == [(101, {"ok": True})] * 3
    for target, reply in zip(LIMITED[3:6], got[3:6]):
        assert (reply.status, reply.json()) == (429, {"detail": "Too many connection attempts"}), target
        assert 0 < int(reply.header("retry-after")) <= 60
    for target, reply in zip(LIMITED[6:], got[6:]):
        assert (reply.status, reply.close_code, reply.first_text()) == (101, 4429, {"detail": "Too many connection attempts"}), target
