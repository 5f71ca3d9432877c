"""Client input never a 5xx on real servers with PostgreSQL: impossible session keys, and a bug's
traceback logged once, not per handshake (issue 18, item 7).

A session cookie whose quoted value decodes to a NUL byte was a 500 on every endpoint under
PostgreSQL (which refuses NUL in text), with a 124-line traceback per handshake. Each server here
(``runserver``, uvicorn, ``python -m wsreject.daphne``) serves the demo on a PostgreSQL copy; the
cookies are sent byte for byte by the raw client.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.core.test_session_keys import HOSTILE_COOKIES
from tests.support.demo import DEMO_APP
from tests.support.servers import Server, running_process, running_server
from tests.support.wsclient import RawResponse, raw_handshake

from .deployment import POSTGRES_URL, base_env, django_shell, postgres_database

pytestmark = pytest.mark.server

# uvicorn's default WebSocket implementation (``--ws auto``); its deprecated ``--ws websockets``
# answers any non-ASCII header with its own 500 before the application runs (quirk
# handshake.non-ascii-request-header-500 in tests/support/quirks.py).
SERVERS = ("runserver", "uvicorn-websockets-sansio", "daphne-wsreject")
TRACEBACK = "Traceback (most recent call last)"
NOT_AUTHENTICATED = (401, {"detail": "Not authenticated"})

SIGN_IN_ALICE = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
alice = get_user_model().objects.get(username="alice")
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = str(alice.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = alice.get_session_auth_hash()
session.create()
result(session.session_key)
"""


@pytest.fixture(scope="module")
def postgres_env(postgres_demo_template) -> Iterator[dict[str, Any]]:
    """A PostgreSQL copy of the demo for this module's servers, and a real session of alice's."""
    with postgres_database(postgres_demo_template.location) as name:
        env = base_env(f"{POSTGRES_URL}/{name}")  # LOG_RATE 100: under it every denial has its line
        yield {"env": env, "alice_session": django_shell(env, SIGN_IN_ALICE)}


@pytest.fixture(scope="module", params=SERVERS)
def server(request, postgres_env) -> Iterator[Server]:
    env = postgres_env["env"]
    if request.param == "runserver":
        command = lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]  # noqa: E731
        with running_process(command, label="runserver", env=env) as started:
            yield started
    else:
        with running_server(request.param, DEMO_APP, env=env) as started:
            yield started


def handshake(server: Server, path: str, cookie: bytes | None = None) -> RawResponse:
    headers = [("Cookie", cookie)] if cookie is not None else []
    return asyncio.run(raw_handshake(server.host, server.port, path, headers, timeout=10))


def settled(server: Server, marker: str) -> str:
    """The log once every earlier handshake's lines are in it: a denial of ``marker`` (a path
    nothing routes) is logged after them, by the same process."""
    assert handshake(server, marker).status == 404
    server.wait_for_line(f"path={marker}", "status=404", timeout=10)
    return server.log()


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_an_impossible_session_key_is_anonymous_never_a_500(server, cookie):
    private = handshake(server, "/ws/private/", cookie)
    assert (private.status, private.json()) == NOT_AUTHENTICATED, private.describe()
    assert handshake(server, "/ws/echo/", cookie).status == 101, "a public endpoint opens as for no cookie at all"
    log = settled(server, f"/ws/settled-{uuid.uuid4().hex}/")
    assert TRACEBACK not in log and "status=500" not in log, log


def test_a_real_session_still_signs_in(server, postgres_env):
    """The control: the check that refuses impossible keys lets Django's own through."""
    cookie = f"sessionid={postgres_env['alice_session']}".encode()
    assert handshake(server, "/ws/private/", cookie).status == 101
    assert handshake(server, "/ws/private/").status == 401


def test_a_bug_logs_one_traceback_then_counts(server):
    """``/ws/broken/`` raises in a permission check: every handshake is a 500 and a denial line,
    but only the first logs the traceback (the repeats are summed up a minute later)."""
    for _ in range(5):
        broken = handshake(server, "/ws/broken/")
        assert (broken.status, broken.json()) == (500, {"detail": "Internal Server Error"})
    log = settled(server, "/ws/settled-broken/")
    assert log.count("path=/ws/broken/ status=500") >= 5
    assert log.count("Unhandled error before accept; answering 500") == 1, log
    assert log.count("RuntimeError: secret internal state") == 1, "the error once, in its one traceback"
