"""The registry of open connections: a connection is registered when it is accepted at a routed
endpoint (once), forgotten when it closes or its application returns; a denied handshake
registers nothing and keeps no hook."""

from __future__ import annotations

import pytest

from wsreject.connections import registry, unwatch, watch
from wsreject.handshake import Handshake


async def _receive():
    return {"type": "websocket.connect"}


@pytest.fixture
def sent():
    messages = []

    async def send(message):
        messages.append(message)

    return messages, send


@pytest.fixture(autouse=True)
def empty_registry():
    assert len(registry) == 0
    yield
    for connection in registry:
        registry.forget(connection)


def routed(send) -> Handshake:
    handshake = Handshake(_receive, send)
    handshake.route = object()  # a leaf was reached (what is recorded there does not matter here)
    return handshake


async def test_registered_once_at_accept_and_forgotten_at_close(sent):
    messages, send = sent
    handshake = routed(send)
    scope = {"type": "websocket", "path": "/ws/x/"}
    watch(handshake, scope, application=None)
    assert len(registry) == 0  # nothing before the accept
    await handshake.send({"type": "websocket.accept"})
    await handshake.send({"type": "websocket.accept"})  # a second accept (a broken application)
    assert [c.scope for c in registry] == [scope]
    await handshake.send({"type": "websocket.close", "code": 1000})
    assert len(registry) == 0
    unwatch(handshake)  # the application returns after its close: nothing left to forget
    assert len(registry) == 0 and handshake.on_accepted is None and handshake.on_closed is None


async def test_forgotten_when_the_application_returns_without_closing(sent):
    _, send = sent
    handshake = routed(send)
    watch(handshake, {"type": "websocket"}, application=None)
    await handshake.send({"type": "websocket.accept"})
    assert len(registry) == 1
    unwatch(handshake)
    assert len(registry) == 0


async def test_a_denied_handshake_registers_nothing_and_keeps_no_hook(sent):
    _, send = sent
    handshake = routed(send)
    watch(handshake, {"type": "websocket"}, application=None)
    await handshake.send({"type": "websocket.http.response.start", "status": 401, "headers": []})
    await handshake.send({"type": "websocket.http.response.body", "body": b""})
    unwatch(handshake)
    assert len(registry) == 0
    assert handshake.on_accepted is None and handshake.on_closed is None  # no cycle keeps it alive


async def test_an_accept_without_a_routed_endpoint_is_not_registered(sent):
    _, send = sent
    handshake = Handshake(_receive, send)  # no leaf recorded (a routing wsreject cannot see)
    watch(handshake, {"type": "websocket"}, application=None)
    await handshake.send({"type": "websocket.accept"})
    assert len(registry) == 0
    unwatch(handshake)
