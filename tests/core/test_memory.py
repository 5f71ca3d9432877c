"""The denial path keeps nothing: many denials do not grow the Python heap.

Measured with tracemalloc (allocations still alive), not with time: after a
warm-up that fills every cache, bounded buffer and lazily imported module,
thousands more denials must leave (almost) nothing behind.
"""

import gc
import logging
import tracemalloc

import pytest
from channels.routing import URLRouter
from django.urls import path

from wsreject import DenyHandshake
from wsreject.access.denial_log import DenialLog, denial_log
from wsreject.middleware import DenialMiddleware, OriginMiddleware, RouteNotFoundMiddleware
from wsreject.testing import HandshakeCommunicator


async def maintenance(scope, receive, send):
    await receive()
    raise DenyHandshake(503, "Down for maintenance", headers={"Retry-After": "120"})


# The stack without the database-backed parts (rules, credentials): what every denial runs through.
application = DenialMiddleware(OriginMiddleware(RouteNotFoundMiddleware(URLRouter([path("down/", maintenance)]))))
PATHS = ["/down/", "/nowhere/"]  # a denial raised by the app, and a 404 from the router
ORIGIN_DENIED = [(b"origin", b"https://evil.example")]


async def deny_many(count: int) -> None:
    for index in range(count):
        headers = ORIGIN_DENIED if index % 3 == 2 else []
        communicator = HandshakeCommunicator(application, PATHS[index % 2], headers=headers)
        result = await communicator.handshake()
        assert result.status_code in (503, 404, 403)
        await communicator.wait(1)


@pytest.fixture
def quiet_wsreject_logger():
    """INFO records are not kept by pytest's log capture (which would grow by design)."""
    logger = logging.getLogger("wsreject")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def flush_on_demand(monkeypatch):
    """The recent-denials copy to the cache runs when the test says, not on a 1 s timer,
    so a copy in flight cannot land in one snapshot and not the other."""
    monkeypatch.setattr(DenialLog, "_schedule_flush", lambda self: None)


def settled_snapshot():
    denial_log.flush()  # the bounded ring and its (replaced) copy in the cache
    gc.collect()
    return tracemalloc.take_snapshot()


async def test_many_denials_keep_nothing(quiet_wsreject_logger, flush_on_demand):
    tracemalloc.start()  # before the warm-up, so what bounded buffers drop is traced too
    try:
        await deny_many(300)  # warm-up: caches, the recent-denials ring, lazy imports
        before = settled_snapshot()
        await deny_many(3000)
        after = settled_snapshot()
    finally:
        tracemalloc.stop()
    wsreject_growth = [
        stat
        for stat in after.compare_to(before, "filename")
        if "/wsreject/" in stat.traceback[0].filename and stat.size_diff > 0
    ]
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
    # 3000 denials: one byte kept per denial would already be 3 kB in wsreject's own files.
    assert sum(stat.size_diff for stat in wsreject_growth) < 3000, wsreject_growth
    assert total < 256 * 1024, [str(stat) for stat in after.compare_to(before, "filename")[:10]]
