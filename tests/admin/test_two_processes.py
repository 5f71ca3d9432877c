"""Two real server processes sharing Redis and a database: a change made in the admin of
one holds at the next handshake on both.

The demo runs twice on uvicorn (``websockets``), in production profile: PostgreSQL (a
fresh database, dropped afterwards; an SQLite file when PostgreSQL is absent, except on CI) and Redis
(db 5, flushed first) for Django's cache. The admin is driven over HTTP like a browser
without JavaScript: log in, open a change form, submit it. Every change is made on one
server after both have served, and so cached, the state before it; the other must see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid

import pytest

from tests.support.demo import manage
from tests.support.servers import running_server
from tests.support.services import REDIS_URL, fresh_postgres_database, postgres_unreachable, redis_unreachable, require
from tests.support.wsclient import Accepted, ws_connect

from .admin_client import ADMIN_PASSWORD, ADMIN_USERNAME, AdminClient

pytestmark = pytest.mark.server



@contextlib.contextmanager
def _database(tmp_path):
    """A fresh PostgreSQL database (dropped afterwards); an SQLite file when PostgreSQL is absent,
    except on CI, which provides it."""
    if not os.environ.get("CI") and postgres_unreachable():
        yield f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        return
    with fresh_postgres_database("wsreject_admin") as url:
        yield url


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Migrated, seeded demo data and two uvicorn processes sharing it and Redis."""
    require(redis_unreachable())  # two processes need a shared cache
    import redis

    redis_client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    redis_client.flushdb()
    with _database(tmp_path_factory.mktemp("two-processes")) as database_url:
        env = {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "two-processes-" + uuid.uuid4().hex,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "WSREJECT_LOG_LEVEL": "WARNING",
        }
        manage("migrate", "--noinput", "-v0", env=env)
        tokens = json.loads(manage("seed_demo", "--json", env=env))
        manage(
            "createsuperuser", "--noinput", "--username", ADMIN_USERNAME, "--email", "root@example.com",
            env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            one = stack.enter_context(running_server("uvicorn-websockets", "project.asgi:application", env=env))
            two = stack.enter_context(running_server("uvicorn-websockets", "project.asgi:application", env=env))
            yield {"servers": (one, two), "tokens": tokens, "database": database_url.split(":")[0]}
        redis_client.flushdb()


def handshake(server, path: str, token: str | None = None):
    """One real WebSocket handshake; an accepted connection is closed at once."""

    async def run():
        headers = [("Authorization", f"Bearer {token}")] if token else None
        result = await ws_connect(server.url(path), headers=headers)
        if isinstance(result, Accepted):
            await result.recv()  # the consumer's greeting: it really connected
            await result.close()
        return result

    return asyncio.run(run())


def statuses(deployment, path: str, token: str | None = None) -> list[int]:
    return [handshake(server, path, token).status_code for server in deployment["servers"]]


def test_grant_revoke_disable_and_re_enable_hold_on_both_processes(deployment):
    one, two = deployment["servers"]
    if os.environ.get("CI"):
        assert deployment["database"] == "postgres", "CI runs PostgreSQL: the test should use it"
    alice, bob = deployment["tokens"]["alice"], deployment["tokens"]["bob"]
    admin_one, admin_two = AdminClient(one), AdminClient(two)
    admin_one.login()
    admin_two.login()
    lobby = "/ws/rooms/lobby/"

    # Both processes serve, and cache, the state before every change.
    assert statuses(deployment, lobby, alice) == [101, 101]
    assert statuses(deployment, lobby, bob) == [403, 403]

    # Revoke, on process one: alice leaves the group that grants chat.join_room.
    alice_id = admin_one.object_id("/admin/auth/user/", "alice")
    admin_one.submit(f"/admin/auth/user/{alice_id}/change/", "user_form", groups=[])
    denied = handshake(two, lobby, alice)
    assert (denied.status_code, denied.json()) == (403, {"detail": "Not allowed to join this room"})
    assert statuses(deployment, lobby, alice) == [403, 403]

    # Grant, on process two: bob receives the permission directly.
    bob_id = admin_two.object_id("/admin/auth/user/", "bob")
    status, page = admin_two.request(f"/admin/auth/user/{bob_id}/change/")
    join_room = _permission_option(page, "Can connect to rooms")
    admin_two.submit(f"/admin/auth/user/{bob_id}/change/", "user_form", user_permissions=[join_room])
    assert statuses(deployment, lobby, bob) == [101, 101]

    # Disable, on process one: an access rule closes every room.
    admin_one.submit(
        "/admin/wsreject/accessrule/add/", "accessrule_form",
        endpoint="/ws/rooms/*", enabled=[], retry_after="90", disabled_detail="Rooms closed for the move",
    )  # fmt: skip
    for server in (two, one):
        closed = handshake(server, lobby, bob)
        assert closed.status_code == 503
        assert closed.header("retry-after") == "90"
        assert closed.json() == {"detail": "Rooms closed for the move"}
    assert statuses(deployment, "/ws/private/", bob) == [101, 101]  # only rooms are closed

    # Re-enable, on process two.
    rule_id = admin_two.object_id("/admin/wsreject/accessrule/", "/ws/rooms/*")
    admin_two.submit(f"/admin/wsreject/accessrule/{rule_id}/change/", "accessrule_form", enabled="on")
    assert statuses(deployment, lobby, bob) == [101, 101]
    assert statuses(deployment, lobby, alice) == [403, 403]  # her revocation still holds

    # The admin of either process lists the denials of both (copied to Redis within ~1 s).
    pids = {f":{server.process.pid}<" for server in (one, two)}
    deadline = time.monotonic() + 5
    while True:
        status, page = admin_one.request("/admin/wsreject/accessrule/denials/")
        assert status == 200
        if all(pid in page for pid in pids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert all(pid in page for pid in pids), page[page.find("wsreject-denials") :][:3000]
    assert "Rooms closed for the move" in page

    # Who can connect, as seen from process two.
    status, page = admin_two.request("/admin/wsreject/accessrule/endpoints/")
    assert status == 200
    rooms_row = page[page.index("/ws/rooms/&lt;slug:name&gt;/") :].split("</tr>")[0]
    assert ">bob<" in rooms_row and ">alice<" not in rooms_row


def _permission_option(page: str, label: str) -> str:
    """The value of the ``<option>`` whose text ends with ``label``."""
    end = page.index(f"{label}</option>")
    start = page.rindex('<option value="', 0, end) + len('<option value="')
    return page[start : page.index('"', start)]
