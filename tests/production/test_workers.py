"""Several workers on one port: an admin change holds at the next handshake on every worker.

The demo in its production profile (PostgreSQL — an SQLite file when it is absent, except on
CI —, Redis for the cache) served by ``uvicorn --workers 2`` and by two Daphne+wsreject processes
accepting from one socket (``tests/bench/apps/shared_socket.py``, Daphne's ``--fd``): the bench's
2-worker peers. A client cannot choose the worker, so which workers served is read from
``/proc``: the worker processes that hold the accepted connections. Before the change, alice's
room connections are held open on both workers (each admitted her, and keeps a copy of what it
read) and bob is refused; the admin (on whichever worker answers) then takes alice's group away
and gives bob the permission; alice is refused at her next handshakes and bob's next connections,
held open again on both workers, are admitted. Last, the demo's throttle: one budget for both
workers (each counts in Redis with its own asyncio client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid

import pytest

from tests.admin.admin_client import ADMIN_PASSWORD, ADMIN_USERNAME, AdminClient
from tests.bench.peers import group_pids
from tests.support.demo import manage
from tests.support.servers import HOST, Server, running_process, running_server
from tests.support.services import REDIS_URL, fresh_postgres_database, postgres_unreachable, redis_unreachable, require
from tests.support.wsclient import Accepted, ws_connect

pytestmark = pytest.mark.server

APP = "project.asgi:application"
LOBBY = "/ws/rooms/lobby/"
CONNECTIONS = 24  # opened at once, so that both workers accept some


@contextlib.contextmanager
def _database(directory):
    if not os.environ.get("CI") and postgres_unreachable():
        yield f"sqlite:///{directory / 'shared.sqlite3'}"
        return
    with fresh_postgres_database("wsreject_workers") as url:
        yield url


@pytest.fixture
def demo_env(tmp_path):
    """A fresh database, migrated, and a flushed Redis database, for each server kind."""
    require(redis_unreachable())
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    client.flushdb()
    with _database(tmp_path) as database_url:
        env = {
            "DJANGO_SETTINGS_MODULE": "project.settings", "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
            "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "workers-" + uuid.uuid4().hex,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "WSREJECT_LOG_LEVEL": "WARNING",
        }  # fmt: skip
        manage("migrate", "--noinput", "-v0", env=env)
        yield env
    client.flushdb()


def _daphne_pair(port: int) -> list[str]:
    py = sys.executable
    return [py, "-m", "tests.bench.apps.shared_socket", HOST, str(port), "2", py, "-m", "wsreject.daphne", "-v", "0", APP]


@contextlib.contextmanager
def two_workers(kind: str, env: dict[str, str]):
    if kind == "uvicorn":
        with running_server("uvicorn-websockets", APP, env=env, extra_args=["--workers", "2"], startup_timeout=90) as server:
            yield server
    else:
        with running_process(_daphne_pair, label="daphne-wsreject-x2", env=env, startup_timeout=90) as server:
            yield server


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of the TCP connections accepted on ``port`` (state ESTABLISHED)."""
    wanted, found = f":{port:04X}", set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "01" and fields[1].endswith(wanted):
                found.add(fields[9])
    return found


def connections_by_process(server: Server) -> dict[int, int]:
    """How many of the accepted connections each process of the server's group holds."""
    inodes = _established_inodes(server.port)
    counts = {}
    for pid in group_pids(server.process.pid):
        held = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    held += target.startswith("socket:[") and target[8:-1] in inodes
        if held:
            counts[pid] = held
    return counts


async def _open(server: Server, token: str) -> Accepted | object:
    result = await ws_connect(server.url(LOBBY), headers=[("Authorization", f"Bearer {token}")])
    if isinstance(result, Accepted):
        await result.recv()  # the greeting: the consumer really connected
    return result


def held_on_every_worker(server: Server, token: str) -> dict[int, int]:
    """Open ``CONNECTIONS`` at once and hold them while counting them per worker; every one
    must be admitted. Up to three tries until both workers hold some (the kernel picks)."""

    async def run() -> dict[int, int]:
        held: list[Accepted] = []
        try:
            for _ in range(3):
                results = await asyncio.gather(*(_open(server, token) for _ in range(CONNECTIONS)))
                statuses = [getattr(r, "status_code", None) for r in results]
                held += [r for r in results if isinstance(r, Accepted)]
                assert statuses == [101] * CONNECTIONS, statuses
                counts = connections_by_process(server)
                if len(counts) == 2:
                    return counts
            return counts
        finally:
            await asyncio.gather(*(one.close() for one in held), return_exceptions=True)

    return asyncio.run(run())


def refused(server: Server, token: str) -> list[int]:
    async def run() -> list[int]:
        results = await asyncio.gather(*(_open(server, token) for _ in range(CONNECTIONS)))
        for result in results:
            if isinstance(result, Accepted):
                await result.close()
        return [getattr(r, "status_code", 0) for r in results]

    return asyncio.run(run())


def _permission_option(page: str, label: str) -> str:
    end = page.index(f"{label}</option>")
    start = page.rindex('<option value="', 0, end) + len('<option value="')
    return page[start : page.index('"', start)]


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
def test_an_admin_change_holds_at_the_next_handshake_on_every_worker(demo_env, kind):
    env = demo_env
    tokens = json.loads(manage("seed_demo", "--json", env=env))
    manage(
        "createsuperuser", "--noinput", "--username", ADMIN_USERNAME, "--email", "root@example.com",
        env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
    )  # fmt: skip
    alice, bob = tokens["alice"], tokens["bob"]
    with two_workers(kind, env) as server:
        before = held_on_every_worker(server, alice)
        assert len(before) == 2, f"one worker accepted every connection: {before}"
        assert refused(server, bob) == [403] * CONNECTIONS

        admin = AdminClient(server).login()
        alice_id = admin.object_id("/admin/auth/user/", "alice")
        admin.submit(f"/admin/auth/user/{alice_id}/change/", "user_form", groups=[])
        bob_id = admin.object_id("/admin/auth/user/", "bob")
        _, page = admin.request(f"/admin/auth/user/{bob_id}/change/")
        admin.submit(
            f"/admin/auth/user/{bob_id}/change/", "user_form", user_permissions=[_permission_option(page, "Can connect to rooms")]
        )

        assert refused(server, alice) == [403] * CONNECTIONS
        after = held_on_every_worker(server, bob)
        assert len(after) == 2 and set(after) == set(before), f"before {before}, after {after}"

        # One throttle budget for both workers (Redis, counted with each worker's asyncio client).
        assert throttled(server, 6) == [101, 101, 101, 429, 429, 429]


def throttled(server: Server, count: int) -> list[int]:
    """``count`` handshakes to the demo's ``Throttle("3/60s")`` endpoint, at once after the first."""

    async def one() -> int:
        result = await ws_connect(server.url("/ws/limited/"))
        if isinstance(result, Accepted):
            await result.close()
        return result.status_code

    async def run() -> list[int]:
        return sorted([await one(), *await asyncio.gather(*(one() for _ in range(count - 1)))])

    return asyncio.run(run())
