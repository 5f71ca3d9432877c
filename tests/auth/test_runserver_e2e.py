"""The demo under ``manage.py runserver`` (wsreject's Daphne), over real sockets on 127.0.0.1.

A fresh demo database is migrated and seeded with ``manage.py`` (passwords included), the
server is started exactly as a developer starts it, and every credential is obtained the
way a client obtains it: a JWT from ``POST /api/token/``, a ticket from
``POST /api/ws-ticket/``. Runserver prints one line per denial: the demo's ``LOGGING`` has the
``wsreject`` logger write it, so runserver's own ``WebSocket DENY`` line is not printed too.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.request import ProxyHandler, Request, build_opener

import jwt
import pytest

from tests.support.demo import DEMO_PASSWORD, DemoData, manage, prepare_demo
from tests.support.servers import Server, running_process
from tests.support.wsclient import Accepted, Denied, raw_handshake, ws_connect

pytestmark = pytest.mark.server

INVALID_TICKET = "Invalid, expired or already used ticket"
DENY_LINE = re.compile(r"^WebSocket DENY  (?P<status>\d{3}) (?P<path>\S+) \[127\.0\.0\.1:\d+\] (?P<detail>.*)$")
LOGGER_LINE = re.compile(
    r"INFO wsreject: WebSocket denied: path=(?P<path>\S+) status=(?P<status>\d{3}) detail=(?P<detail>.*) user=\S+ client=\S+ mode=\S+$"
)

MINT = """
import json
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import AccessToken
alice = get_user_model().objects.get(username="alice")
expired = AccessToken.for_user(alice)
expired.set_exp(from_time=timezone.now() - timedelta(hours=1))
print(json.dumps({"drf": Token.objects.get(user=alice).key, "expired_jwt": str(expired)}))
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("runserver-auth"))


@pytest.fixture(scope="module")
def minted(demo) -> dict[str, str]:
    """A DRF token and an expired SimpleJWT access token for alice, made by the project itself."""
    return json.loads(manage("shell", "-c", MINT, env=demo.env).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runserver(demo) -> Iterator[Server]:
    with running_process(
        lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        label="runserver",
        env=demo.env,
    ) as server:
        yield server


def post(server: Server, path: str, data: Any = None, authorization: str | None = None) -> tuple[int, dict[str, str], Any]:
    """An HTTP POST (GET when ``data`` is None) to the server: status, headers, JSON body."""
    body = None if data is None else json.dumps(data).encode()
    request = Request(server.http_url(path), data=body, headers={"Content-Type": "application/json"})
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with build_opener(ProxyHandler({})).open(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def alice_jwt(runserver) -> str:
    status, _, body = post(runserver, "/api/token/", {"username": "alice", "password": DEMO_PASSWORD})
    assert status == 200, body
    return body["access"]


def deny_lines(server: Server) -> list[tuple[int, str, str]]:
    found = []
    for line in server.log().splitlines():
        line = line.strip()
        match = DENY_LINE.match(line) or LOGGER_LINE.search(line)  # either, never both: one line a denial
        if match:
            found.append((int(match["status"]), match["path"], match["detail"]))
    return found


class DenyLines:
    """The denial lines the server prints from now on (polled, with a deadline)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = len(deny_lines(server))

    def expect(self, *expected: tuple[int, str, str], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            new = deny_lines(self.server)[self.before :]
            if len(new) >= len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert new == list(expected), self.server.log()[-3000:]


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


async def opened_as(server: Server, path: str, authorization: str | None = None) -> Any:
    headers = [("Authorization", authorization)] if authorization else None
    result = await ws_connect(server.url(path), headers=headers, timeout=20)
    assert isinstance(result, Accepted), (path, getattr(result, "status_code", None), getattr(result, "body", None))
    async with result:
        return await result.recv_json(timeout=20)


async def refused(server: Server, path: str, authorization: str | None = None) -> Any:
    headers = [("Authorization", authorization)] if authorization else []
    return await raw_handshake(*server.address, path, headers, timeout=20)


def test_no_credential_is_401_and_one_deny_line(runserver):
    lines = DenyLines(runserver)
    response = run(refused(runserver, "/ws/private/"))
    assert (response.status, response.reason) == (401, "Unauthorized")
    assert response.header("www-authenticate") == "Bearer"
    assert response.body == b'{"detail":"Not authenticated"}'
    lines.expect((401, "/ws/private/", "Not authenticated"))


def test_drf_token_and_jwt_open_private(runserver, minted, alice_jwt):
    lines = DenyLines(runserver)
    assert run(opened_as(runserver, "/ws/private/", f"Token {minted['drf']}")) == {"user": "alice"}
    assert run(opened_as(runserver, "/ws/private/", f"Bearer {alice_jwt}")) == {"user": "alice"}
    assert run(opened_as(runserver, "/ws/rooms/lobby/", f"Bearer {alice_jwt}")) == {"room": "lobby", "user": "alice"}
    lines.expect()  # no denial, no line


def test_expired_jwt(runserver, minted):
    lines = DenyLines(runserver)
    response = run(refused(runserver, "/ws/private/", f"Bearer {minted['expired_jwt']}"))
    assert response.status == 401
    assert response.header("www-authenticate") == 'Bearer error="invalid_token", error_description="Token expired"'
    assert response.body == b'{"detail":"Token expired"}'
    lines.expect((401, "/ws/private/", "Token expired"))


def test_forged_jwt_and_wrong_drf_key(runserver, alice_jwt):
    claims = jwt.decode(alice_jwt, options={"verify_signature": False})
    forged = jwt.encode(claims, "another signing key, long enough for HS256 use", algorithm="HS256")
    lines = DenyLines(runserver)
    response = run(refused(runserver, "/ws/private/", f"Bearer {forged}"))
    assert response.status == 401
    assert response.header("www-authenticate") == 'Bearer error="invalid_token", error_description="Invalid credentials"'
    assert response.json() == {"detail": "Invalid credentials"}
    response = run(refused(runserver, "/ws/private/", "Token " + "0" * 40))
    assert (response.status, response.header("www-authenticate"), response.json()) == (401, "Token", {"detail": "Invalid credentials"})
    lines.expect((401, "/ws/private/", "Invalid credentials"), (401, "/ws/private/", "Invalid credentials"))


def test_ticket_opens_once(runserver, alice_jwt):
    status, headers, body = post(runserver, "/api/ws-ticket/", {}, f"Bearer {alice_jwt}")
    assert status == 200, body
    assert set(body) == {"ticket", "expires_in"} and body["ticket"].startswith("wst_") and body["expires_in"] == 30
    assert "no-store" in headers["Cache-Control"]
    ticket = body["ticket"]
    lines = DenyLines(runserver)

    assert run(opened_as(runserver, f"/ws/private/?ticket={ticket}")) == {"user": "alice"}
    again = run(ws_connect(runserver.url(f"/ws/private/?ticket={ticket}"), timeout=20))
    assert isinstance(again, Denied)
    assert (again.status_code, again.json()) == (401, {"detail": INVALID_TICKET})
    assert again.header("www-authenticate") == f'Bearer error="invalid_token", error_description="{INVALID_TICKET}"'

    lines.expect((401, "/ws/private/", INVALID_TICKET))
    assert ticket not in runserver.log(), "runserver logs paths, never query strings"


def test_ticket_view_refuses_anonymous_clients(runserver, alice_jwt):
    status, _, body = post(runserver, "/api/ws-ticket/", {})
    assert status == 401, body
    assert "ticket" not in body
    status, _, body = post(runserver, "/api/ws-ticket/", {}, "Bearer not.a.jwt")
    assert status == 401 and "ticket" not in body
    status, _, _ = post(runserver, "/api/ws-ticket/", None, f"Bearer {alice_jwt}")
    assert status == 405
