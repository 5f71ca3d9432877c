"""Dependencies down: 503 with Retry-After, never a 500 or a wrongful accept; back up: recovery.

The demo runs on uvicorn (websockets-sansio, uvloop) and on Daphne + wsreject with
``DATABASE_URL`` and ``REDIS_URL`` pointing at :class:`~tests.security.proxy.TcpProxy`
instances in front of PostgreSQL (a fresh database, migrated and seeded through the
proxy) and Redis (cache and channel layer). A test cuts a proxy (every connection
reset, new ones too), checks what clients get and what the log says, restores it
and checks that the same server recovers. The wsreject logger runs at DEBUG, so the
log shows everything wsreject says; it must never say ERROR or print a traceback for
a dependency outage or for a client that left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.demo import DEMO_APP, prepare_demo
from tests.support.servers import Server, running_server
from tests.support.services import REDIS_HOST, REDIS_PORT, REDIS_URL, postgres_unreachable, redis_unreachable, require

from .deployment import postgres_database
from .proxy import TcpProxy
from .rawhttp import Reply, exchange, upgrade_request

pytestmark = pytest.mark.server

KINDS = ("uvicorn-websockets-sansio", "daphne-wsreject")
# The run's own Redis database (WSREJECT_TEST_REDIS_URL), flushed before use: a fixed number
# would be shared with concurrent runs, and with the other tests that picked it.
REDIS_DB = int(urlsplit(REDIS_URL).path.strip("/") or 0)
UNAVAILABLE = (503, {"detail": "Service Unavailable"}, "5")
# uvicorn 0.54 websockets-sansio logs this after every correct denial (SERVER_QUIRKS
# "log.denial-logged-as-error"): the server's line, not the application's.
SANSIO_QUIRK = "ERROR:    ASGI callable returned without completing handshake."


@dataclass
class Stack:
    server: Server
    database: TcpProxy
    redis: TcpProxy
    tokens: dict[str, str]

    def answer(self, path: str, who: str | None = None) -> tuple[Any, ...]:
        reply = exchange(self.server.address, upgrade_request(path, token=self.tokens.get(who or "")), timeout=15)
        return digest(reply)

    def flush_cache(self) -> None:
        """Empty the shared cache behind the servers' back, so the next answers need the database."""
        import redis

        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()


def digest(reply: Reply) -> tuple[Any, ...]:
    if reply.status == 101:
        return (101, reply.first_text())
    assert reply.status is not None, f"no answer: {reply.outcome} {reply.raw!r}"
    return (reply.status, reply.json() if reply.body else None, reply.header("retry-after"))


@pytest.fixture(scope="module")
def proxied_database() -> Iterator[tuple[TcpProxy, TcpProxy, dict[str, str], dict[str, str]]]:
    """Proxies to PostgreSQL and Redis, and a fresh demo database migrated and seeded through them."""
    require(postgres_unreachable())
    require(redis_unreachable(f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"))
    with (
        TcpProxy(("127.0.0.1", 5432)) as database,
        TcpProxy((REDIS_HOST, REDIS_PORT)) as cache,
        postgres_database(prefix="wsreject_security_deps") as name,
    ):
        env = {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{database.port}/{name}",
            "REDIS_URL": f"redis://127.0.0.1:{cache.port}/{REDIS_DB}",
        }
        data = prepare_demo(Path("/nonexistent"), env)
        yield database, cache, {**data.env, "WSREJECT_LOG_LEVEL": "DEBUG"}, data.tokens


@pytest.fixture(scope="module", params=KINDS)
def stack(request, proxied_database) -> Iterator[Stack]:
    database, cache, env, tokens = proxied_database
    database.restore()
    cache.restore()
    with running_server(request.param, DEMO_APP, env=env) as server:
        stack = Stack(server, database, cache, tokens)
        stack.flush_cache()
        yield stack
        database.restore()
        cache.restore()


@contextlib.contextmanager
def log_segment(server: Server) -> Iterator[Callable[[], str]]:
    """What the server logs from here on; on exit, nothing in it may be an ERROR or a traceback."""
    start = len(server.log())

    def segment() -> str:
        return server.log()[start:]

    yield segment
    problems = [
        line
        for line in segment().splitlines()
        if ("ERROR" in line and line.strip() != SANSIO_QUIRK) or "Traceback" in line or "CRITICAL" in line
    ]
    assert not problems, "\n".join(problems) + "\n--- log ---\n" + segment()[-5000:]


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.1)


BASELINE = {
    ("/ws/private/", "alice"): (101, {"user": "alice"}),
    ("/ws/rooms/lobby/", "bob"): (403, {"detail": "Not allowed to join this room"}, None),
    ("/ws/rooms/lobby/", "alice"): (101, {"room": "lobby", "user": "alice"}),
    ("/ws/echo/", None): (101, None),
}


def test_handshakes_reuse_the_redis_connections(stack):
    """Django makes a new cache object per task, and for Redis a new connection pool with it:
    wsreject keeps one per process, so a handshake does not open a TCP connection to Redis."""
    requests = [("/ws/rooms/lobby/", "bob"), ("/ws/private/", None), ("/ws/nowhere/", None)]
    for path, who in requests:  # warm: the pool has its connection
        stack.answer(path, who)
    before = stack.redis.accepted
    for _ in range(15):
        for path, who in requests:
            assert stack.answer(path, who)[0] in (401, 403, 404), (path, who)
    opened = stack.redis.accepted - before
    assert opened <= 2, f"{opened} new Redis connections for 45 sequential handshakes"


def test_database_down_is_503_then_recovers_without_restart(stack):
    for (path, who), expected in BASELINE.items():
        assert stack.answer(path, who) == expected, (path, who)
    with log_segment(stack.server) as log:
        # Nothing to answer from: every decision needs the database. (With the cache warm,
        # what needs no query is still answered: the echo endpoint with cached rules.)
        stack.flush_cache()
        stack.database.cut()
        for _ in range(3):
            for path, who in BASELINE:
                # Even the echo endpoint: the access rules cannot be loaded, so nothing is let through.
                assert stack.answer(path, who) == UNAVAILABLE, (path, who)
        causes = [line for line in log().splitlines() if "A dependency is unreachable during a WebSocket handshake" in line]
        assert len(causes) == 1, causes  # the cause once, not once per handshake (12 here)
        assert "OperationalError" in causes[0]
        stack.database.restore()
        until(lambda: stack.answer("/ws/private/", "alice")[0] == 101, 10, "recovery")
        for (path, who), expected in BASELINE.items():
            assert stack.answer(path, who) == expected, (path, who)


def test_redis_down_answers_from_the_database_or_503_then_recovers(stack):
    for (path, who), expected in BASELINE.items():
        assert stack.answer(path, who) == expected, (path, who)
    with log_segment(stack.server) as log:
        stack.redis.cut()
        for _ in range(2):
            # The cache is an optimisation: without it the database decides, correctly.
            assert stack.answer("/ws/private/", "alice")[0] == 101
            assert stack.answer("/ws/rooms/lobby/", "bob") == BASELINE[("/ws/rooms/lobby/", "bob")]
            assert stack.answer("/ws/private/", "carol")[0] == 101
            assert stack.answer("/ws/private/", "dave")[:2] == (401, {"detail": "Invalid credentials"})
            # The room needs the channel layer (Redis): 503, never an accept or a 500.
            assert stack.answer("/ws/rooms/lobby/", "alice") == UNAVAILABLE
            # A throttle that cannot count refuses.
            assert stack.answer("/ws/limited/") == UNAVAILABLE
        lines = log().splitlines()
        assert sum("WebSocket access cache unavailable" in line for line in lines) == 1
        assert sum("A dependency is unreachable during a WebSocket handshake" in line for line in lines) <= 2
        stack.redis.restore()
        answers = []

        def lobby_again() -> bool:
            answers.append(stack.answer("/ws/rooms/lobby/", "alice"))
            return answers[-1][0] == 101

        until(lobby_again, 10, "recovery")
        assert {answer[0] for answer in answers} <= {101, 503}, answers  # never a 500 on the way back
        for (path, who), expected in BASELINE.items():
            assert stack.answer(path, who) == expected, (path, who)
        assert stack.answer("/ws/limited/")[0] == 101


# Each case has its own spelling, so its log lines can be told apart.
LEAVING = [("/ws/private/", "alice"), ("/ws//private/", None), ("/ws/rooms/lobby/", "bob"), ("/ws/rooms/dev/", "alice")]


@pytest.mark.parametrize("slow", [False, True], ids=["mid-denial", "during-a-slow-check"])
def test_a_client_that_leaves_is_logged_at_debug_at_most(stack, slow):
    """The client sends its request and resets the connection at once; the server answers
    (or accepts) into the void — after a slow check (every database packet held 50 ms),
    or at once."""
    for path, who in LEAVING:
        stack.answer(path, who)  # warm
    with log_segment(stack.server) as log:
        if slow:
            stack.flush_cache()
            stack.database.delay(0.05)
        try:
            for path, who in LEAVING:
                request = upgrade_request(path, token=stack.tokens.get(who or ""))
                assert exchange(stack.server.address, request, hang_up=True).outcome == "closed"

            def every_case_answered() -> bool:
                text = log()
                return all(path in text for path, _who in LEAVING)

            until(every_case_answered, 20, "an answer (or a note) for every client that left")
            until(lambda: stack.database.connections == 0, 10, "no database work in flight")
        finally:
            stack.database.delay(0)
        assert stack.answer("/ws/private/", "alice")[0] == 101  # and the server is fine
