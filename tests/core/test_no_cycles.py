"""A handshake is freed by reference counting when it ends: nothing of it is left in a reference
cycle for the garbage collector (which, at thousands of denials a second, is time spent on every
one). Checked through the demo's whole stack (``MetricsMiddleware`` included) for a denial by the
consumer, after a refused credential, by middleware (Origin), by the router (404) and for an
accepted connection: with collection off, ``gc.collect()`` under ``DEBUG_SAVEALL`` must find no
``Handshake``, no ``Observation`` and no consumer among what only the collector could free."""

from __future__ import annotations

import gc

import pytest

from project.asgi import application
from wsreject.testing import HandshakeCommunicator

pytestmark = pytest.mark.django_db

CASES = {
    "consumer 401": ("/ws/private/", [], 401),
    "forged token 401": ("/ws/private/", [(b"authorization", b"Bearer wsr_" + b"A1" * 31)], 401),
    "Origin 403": ("/ws/private/", [(b"origin", b"https://evil.example")], 403),
    "unknown path 404": ("/ws/does-not-exist/", [], 404),
    "accepted echo": ("/ws/echo/", [], 101),
}
WATCHED = {"Handshake", "Observation", "EchoConsumer", "PrivateConsumer", "Timeout"}


async def play(path: str, headers: list[tuple[bytes, bytes]], status: int) -> None:
    communicator = HandshakeCommunicator(application, path, headers=headers)
    result = await communicator.handshake()
    assert result.status_code == status if not result.accepted else status == 101
    if result.accepted:
        await communicator.disconnect()
    else:
        await communicator.wait(1)


@pytest.mark.parametrize("case", list(CASES))
async def test_a_handshake_leaves_no_cycle(case):
    path, headers, status = CASES[case]
    await play(path, headers, status)  # warm: caches, lazy imports, the demo's first-use state
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            await play(path, headers, status)
        gc.collect()
        kept = sorted({type(o).__name__ for o in gc.garbage} & WATCHED)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kept == []
