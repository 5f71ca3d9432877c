"""Two real server processes sharing Redis and a database: a change made in the admin of
one holds at the next handshake on both.

The demo runs twice on uvicorn (``websockets``), in production profile: PostgreSQL (a
fresh database, dropped afterwards; an SQLite file when PostgreSQL is absent) and Redis
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
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, ProxyHandler, Request, build_opener

import pytest

from tests.support.demo import manage
from tests.support.servers import running_server
from tests.support.wsclient import Accepted, ws_connect

from .html_forms import form_fields, replace

pytestmark = pytest.mark.server

REDIS_URL = os.environ.get("WSREJECT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
POSTGRES_URL = os.environ.get("WSREJECT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
ADMIN_PASSWORD = "admin-password-" + uuid.uuid4().hex[:8]


def _redis_or_none():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return client


@contextlib.contextmanager
def _database(tmp_path):
    """A fresh PostgreSQL database (dropped afterwards), else an SQLite file."""
    import psycopg

    name = f"wsreject_admin_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{POSTGRES_URL}/test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES_URL}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Migrated, seeded demo data and two uvicorn processes sharing it and Redis."""
    redis_client = _redis_or_none()
    if redis_client is None:
        reason = f"Redis does not answer at {REDIS_URL}: two processes need a shared cache"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the two-process admin test: {reason}")
        pytest.skip(reason)
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
            "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com",
            env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            one = stack.enter_context(running_server("uvicorn-websockets", "project.asgi:application", env=env))
            two = stack.enter_context(running_server("uvicorn-websockets", "project.asgi:application", env=env))
            yield {"servers": (one, two), "tokens": tokens, "database": database_url.split(":")[0]}
        redis_client.flushdb()


# --- a browser without JavaScript, for the admin --------------------------------------------------


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 comes back as the answer


class AdminSession:
    """The Django admin over HTTP, with cookies and CSRF tokens as a browser sends them."""

    def __init__(self, server) -> None:
        self.server = server
        self.opener = build_opener(ProxyHandler({}), HTTPCookieProcessor(CookieJar()), _NoRedirect())

    def request(self, path: str, fields: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        data = urlencode(fields).encode() if fields is not None else None
        request = Request(self.server.http_url(path), data=data)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except HTTPError as error:
            return error.code, error.read().decode()

    def login(self) -> None:
        status, page = self.request("/admin/login/")
        assert status == 200, page[:500]
        fields = replace(replace(form_fields(page, "login-form"), "username", "root"), "password", ADMIN_PASSWORD)
        status, page = self.request("/admin/login/?next=/admin/", fields)
        assert status == 302, f"login failed: {page[:1000]}"

    def submit(self, path: str, form_id: str, **changes) -> None:
        """Open the form at ``path``, change fields, save; the admin must redirect (saved)."""
        status, page = self.request(path)
        assert status == 200, f"{path}: {status}"
        fields = form_fields(page, form_id)
        for name, value in changes.items():
            fields = replace(fields, name, value)
        status, page = self.request(path, fields + [("_save", "Save")])
        assert status == 302, f"{path} not saved ({status}): {page[page.find('errornote') - 100 :][:1500]}"

    def object_id(self, changelist: str, label: str) -> str:
        """The id of the object whose changelist link reads ``label``."""
        status, page = self.request(f"{changelist}?q={label}")
        marker = f'">{label}</a>'
        end = page.index(marker)
        start = page.rindex(changelist, 0, end) + len(changelist)
        return page[start:end].split("/")[0]


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
    admin_one, admin_two = AdminSession(one), AdminSession(two)
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
