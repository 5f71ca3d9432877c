"""Single-use WebSocket tickets: issued by the ticket views, consumed by the demo's handshakes.

HTTP goes through Django's test client (CSRF enforced), handshakes through
``HandshakeCommunicator`` against ``project.asgi.application``; both share the test's
real database and cache. The last test runs the demo twice on uvicorn with Redis and
races the two processes for one ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.request import ProxyHandler, Request, build_opener

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.support.demo import DEMO_APP, DEMO_PASSWORD, prepare_demo
from tests.support.servers import running_server
from tests.support.services import REDIS_URL, redis_unreachable, require
from tests.support.wsclient import Accepted, Denied, ws_connect
from wsreject.access.denial_log import denial_log

from .support import INVALID_TICKET, assert_401, connect, denial, get_user, greeting, invalid_token

TICKET = re.compile(r"^wst_[A-Za-z0-9_-]{43}$")
PASSWORD = "ticket-test-password"
ORIGIN = "http://testserver"


@pytest.fixture
def users(demo_tokens, settings) -> dict[str, str]:
    """The demo's users (seed_demo), with a password for ``/api/token/``; their wsreject tokens."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins
    for user in get_user_model().objects.all():
        user.set_password(PASSWORD)
        user.save()
    return demo_tokens


# --- HTTP: getting tickets ------------------------------------------------------------------------


def csrf_client(username: str | None = None) -> Client:
    """A client that enforces CSRF, logged in as ``username`` (session), holding a CSRF cookie."""
    client = Client(enforce_csrf_checks=True)
    if username:
        client.force_login(get_user(username))
    assert client.get("/").status_code == 200  # the demo page sets the CSRF cookie
    return client


def csrf_token(client: Client) -> str:
    return client.cookies[django_settings.CSRF_COOKIE_NAME].value


def jwt_for(username: str) -> str:
    response = Client().post("/api/token/", {"username": username, "password": PASSWORD}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["access"]


def drf_key(username: str) -> str:
    return Token.objects.get(user__username=username).key


def api_ticket(authorization: str | None = None, *, data: Any = None, **headers: str) -> Any:
    """``POST /api/ws-ticket/`` (DRF) with an ``Authorization`` header; the response."""
    if authorization:
        headers["Authorization"] = authorization
    body = json.dumps(data if data is not None else {})
    return Client(enforce_csrf_checks=True).post("/api/ws-ticket/", body, content_type="application/json", headers=headers)


def ticket_for(username: str, **kwargs: Any) -> str:
    response = api_ticket(f"Bearer {jwt_for(username)}", **kwargs)
    assert response.status_code == 200, response.content
    return response.json()["ticket"]


aticket_for = sync_to_async(ticket_for)


def assert_ticket_response(response: Any, ttl: int = 30) -> str:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}
    assert TICKET.match(body["ticket"]), body
    assert body["expires_in"] == ttl
    assert "no-store" in response["Cache-Control"]
    return body["ticket"]


def test_ticket_with_a_jwt(users):
    assert_ticket_response(api_ticket(f"Bearer {jwt_for('alice')}"))


def test_ticket_with_a_drf_token(users):
    assert_ticket_response(api_ticket(f"Token {drf_key('alice')}"))


def test_ticket_with_a_session_needs_the_csrf_token(users):
    client = csrf_client("alice")
    refused = client.post("/api/ws-ticket/", "{}", content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    response = client.post("/api/ws-ticket/", "{}", content_type="application/json", headers={"X-CSRFToken": csrf_token(client)})
    assert_ticket_response(response)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer not.a.jwt", "Token " + "0" * 40, "Basic YWxpY2U6dGlja2V0LXRlc3QtcGFzc3dvcmQ="], ids=["none", "bad-jwt", "bad-drf", "basic"]
)
def test_ticket_refused_without_valid_credentials(users, authorization):
    response = api_ticket(authorization)
    assert response.status_code in (401, 403), response.content
    assert "ticket" not in response.json()


def test_ticket_refused_for_an_anonymous_session(users):
    client = csrf_client()
    response = client.post("/api/ws-ticket/", "{}", content_type="application/json", headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code in (401, 403) and "ticket" not in response.json()


def test_ticket_view_is_post_only(users):
    response = Client().get("/api/ws-ticket/", headers={"Authorization": f"Bearer {jwt_for('alice')}"})
    assert response.status_code == 405
    assert Client().get("/api/ws-ticket/").status_code in (401, 403)  # DRF authenticates before routing the method


def test_ticket_for_an_inactive_user_is_refused(users):
    key = drf_key("dave")
    assert api_ticket(f"Token {key}").status_code in (401, 403)


@pytest.mark.parametrize("path", ["ws/private/", "", 5, "/" + "a" * 2001], ids=["relative", "empty", "number", "long"])
def test_ticket_path_must_be_absolute(users, path):
    response = api_ticket(f"Bearer {jwt_for('alice')}", data={"path": path})
    assert response.status_code == 400 and "ticket" not in response.json()


# --- handshakes with tickets --------------------------------------------------------------------


def with_ticket(path: str, ticket: str) -> str:
    return f"{path}?ticket={ticket}"


async def test_a_ticket_opens_private_once(users):
    ticket = await aticket_for("alice")
    assert await greeting(with_ticket("/ws/private/", ticket)) == {"user": "alice"}
    result = await denial(with_ticket("/ws/private/", ticket))
    assert_401(result, INVALID_TICKET, invalid_token(INVALID_TICKET))


async def test_a_ticket_opens_a_room_with_the_users_permissions(users):
    assert await greeting(with_ticket("/ws/rooms/lobby/", await aticket_for("alice"))) == {"room": "lobby", "user": "alice"}
    result = await denial(with_ticket("/ws/rooms/lobby/", await aticket_for("bob")))
    assert (result.status_code, result.json()) == (403, {"detail": "Not allowed to join this room"})


async def test_a_ticket_in_close_code_mode(users):
    ticket = await aticket_for("alice")
    assert await greeting(with_ticket("/ws/browser/private/", ticket)) == {"user": "alice"}
    result = await denial(with_ticket("/ws/browser/private/", ticket), close_code=True)
    assert (result.denial_mode, result.close_code, result.reason) == ("close_code", 4401, INVALID_TICKET)
    assert result.json() == {"detail": INVALID_TICKET}


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("ticket=wst_" + "A" * 43, INVALID_TICKET),
        ("ticket=wst_", INVALID_TICKET),
        ("ticket=wst_" + "A" * 200, "Not authenticated"),  # not a ticket's shape: no credential
        ("ticket=" + "A" * 47, "Not authenticated"),
    ],
    ids=["unknown", "empty", "too-long", "no-prefix"],
)
async def test_made_up_tickets(users, query, detail):
    challenge = invalid_token(detail) if detail == INVALID_TICKET else "Bearer"  # a refused ticket, or no credential
    assert_401(await denial(f"/ws/private/?{query}"), detail, challenge)


async def test_two_tickets_in_one_query_are_none(users):
    first, second = await aticket_for("alice"), await aticket_for("alice")
    result = await denial(f"/ws/private/?ticket={first}&ticket={second}")
    assert_401(result, "Not authenticated", "Bearer")
    assert await greeting(with_ticket("/ws/private/", first)) == {"user": "alice"}, "neither was consumed"


@pytest.fixture(params=["locmem", "redis"])
def ticket_cache(request, settings) -> str:
    """Tickets (and every wsreject cache entry) in a local-memory cache, or in Redis under a
    key prefix of this test's own."""
    if request.param == "redis":
        require(redis_unreachable())
        settings.CACHES = {
            **settings.CACHES,
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": f"wsreject-ticket-test-{uuid.uuid4().hex}",
                "TIMEOUT": 60,
            },
        }
    return request.param


async def test_concurrent_handshakes_with_one_ticket_exactly_one_wins(users, ticket_cache):
    for round_ in range(25):
        ticket = await aticket_for("alice")
        results = await asyncio.wait_for(asyncio.gather(*(connect(with_ticket("/ws/private/", ticket)) for _ in range(2))), 60)
        accepted = [(c, r) for c, r in results if r.accepted]
        denied = [r for _, r in results if not r.accepted]
        assert len(accepted) == 1, f"round {round_}: {len(accepted)} accepted"
        assert_401(denied[0], INVALID_TICKET, invalid_token(INVALID_TICKET))
        communicator = accepted[0][0]
        assert json.loads(await communicator.receive_from(timeout=10)) == {"user": "alice"}
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(timeout=10)


async def test_an_expired_ticket_is_refused(users, settings, ticket_cache):
    settings.WSREJECT = {**settings.WSREJECT, "TICKET_TTL": 1}
    authorization = f"Bearer {await sync_to_async(jwt_for)('alice')}"
    response = await sync_to_async(api_ticket)(authorization)
    issued_by = time.time()  # the ticket expires at the latest one TTL after this
    ticket = assert_ticket_response(response, ttl=1)
    deadline = time.monotonic() + 30
    while time.time() <= issued_by + 1.05:  # poll the clock until it is past the expiry
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert_401(await denial(with_ticket("/ws/private/", ticket)), INVALID_TICKET, invalid_token(INVALID_TICKET))


async def test_ticket_ttl_comes_from_the_settings(users, settings):
    settings.WSREJECT = {**settings.WSREJECT, "TICKET_TTL": 120}
    response = await sync_to_async(api_ticket)(f"Token {await sync_to_async(drf_key)('alice')}")
    ticket = assert_ticket_response(response, ttl=120)
    assert await greeting(with_ticket("/ws/private/", ticket)) == {"user": "alice"}


def origin(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"origin", value.encode())]


async def test_a_ticket_is_bound_to_the_origin_that_asked(users):
    async def bound() -> str:
        return await aticket_for("alice", Origin=ORIGIN)

    # Other origins (all allowed by the demo's ALLOWED_HOSTS) and none at all are refused.
    for other in ("http://localhost:8000", "http://testserver:8080", "https://testserver"):
        assert_401(await denial(with_ticket("/ws/private/", await bound()), origin(other)), INVALID_TICKET, invalid_token(INVALID_TICKET))
    assert_401(await denial(with_ticket("/ws/private/", await bound())), INVALID_TICKET, invalid_token(INVALID_TICKET))
    two_origins = origin(ORIGIN) + origin(ORIGIN)
    result = await denial(with_ticket("/ws/private/", await bound()), two_origins)
    assert result.status_code in (401, 403)
    assert await greeting(with_ticket("/ws/private/", await bound()), origin(ORIGIN)) == {"user": "alice"}


async def test_a_ticket_asked_for_without_origin_is_not_bound_to_one(users):
    assert await greeting(with_ticket("/ws/private/", await aticket_for("alice")), origin("http://localhost:8000")) == {"user": "alice"}
    assert await greeting(with_ticket("/ws/private/", await aticket_for("alice"))) == {"user": "alice"}


async def test_a_ticket_bound_to_a_path(users):
    def bound(path: str) -> Any:
        return aticket_for("carol", data={"path": path})

    assert await greeting(with_ticket("/ws/staff/", await bound("/ws/staff/"))) == {"user": "carol"}
    for other in ("/ws/private/", "/ws//staff/"):
        assert_401(await denial(with_ticket(other, await bound("/ws/staff/"))), INVALID_TICKET, invalid_token(INVALID_TICKET))
    result = await denial(with_ticket("/ws/browser/staff/", await bound("/ws/staff/")), close_code=True)
    assert (result.denial_mode, result.close_code, result.reason) == ("close_code", 4401, INVALID_TICKET)
    # An unbound ticket opens any endpoint its user may open.
    assert await greeting(with_ticket("/ws/private/", await aticket_for("carol"))) == {"user": "carol"}


async def test_a_ticket_never_yields_another_user(users):
    names = ["alice", "bob", "carol"] * 4
    tickets = [await aticket_for(name) for name in names]
    greetings = await asyncio.wait_for(asyncio.gather(*(greeting(with_ticket("/ws/private/", t)) for t in tickets)), 60)
    assert greetings == [{"user": name} for name in names]


async def test_a_ticket_wins_over_other_credentials_in_the_same_handshake(users):
    """The ticket is the first authenticator: the handshake is its user's, not the header's."""
    bob = [(b"authorization", f"Token {await sync_to_async(drf_key)('bob')}".encode())]
    assert await greeting(with_ticket("/ws/private/", await aticket_for("alice")), bob) == {"user": "alice"}
    # A used ticket refuses; the valid token beside it does not rescue the handshake.
    ticket = await aticket_for("alice")
    await greeting(with_ticket("/ws/private/", ticket))
    assert_401(await denial(with_ticket("/ws/private/", ticket), bob), INVALID_TICKET, invalid_token(INVALID_TICKET))


async def test_a_ticket_of_a_user_deactivated_or_deleted_since(users):
    @sync_to_async
    def deactivate(username: str) -> None:
        user = get_user(username)
        user.is_active = False
        user.save()

    ticket = await aticket_for("alice")
    await greeting(with_ticket("/ws/private/", await aticket_for("alice")))  # alice is in the user cache now
    await deactivate("alice")
    assert_401(await denial(with_ticket("/ws/private/", ticket)), "Invalid credentials", invalid_token("Invalid credentials"))

    ticket = await aticket_for("bob")
    await sync_to_async(lambda: get_user("bob").delete())()
    assert_401(await denial(with_ticket("/ws/private/", ticket)), INVALID_TICKET, invalid_token(INVALID_TICKET))


async def test_tickets_never_reach_the_logs(users, caplog):
    caplog.set_level(logging.DEBUG)
    denial_log.clear()
    used = await aticket_for("alice")
    await greeting(with_ticket("/ws/private/", used))
    await denial(with_ticket("/ws/private/", used))  # used again
    bound = await aticket_for("alice", Origin=ORIGIN)
    await denial(with_ticket("/ws/private/", bound), origin("http://localhost:8000"))  # wrong origin
    await denial(with_ticket("/ws/rooms/lobby/", await aticket_for("bob")))  # 403
    await denial(with_ticket("/ws/does-not-exist/", await aticket_for("bob")))  # 404
    made_up = "wst_" + "Z" * 43
    await denial(with_ticket("/ws/private/", made_up))

    lines = [record.getMessage() for record in caplog.records if record.name.startswith("wsreject")]
    assert len([line for line in lines if line.startswith("WebSocket denied:")]) == 5, lines
    everything = caplog.text + "\n".join(lines) + repr(denial_log.snapshot())
    for ticket in (used, bound, made_up):
        assert ticket not in everything
        assert ticket[4:20] not in everything
    assert "ticket=" not in everything


@pytest.mark.parametrize(
    "query",
    ["token={wsr}", "access_token={jwt}", "token={jwt}", "token={drf}", "jwt={jwt}", "authorization=Bearer%20{wsr}", "ticket={wsr}", "ticket={jwt}"],
)
async def test_other_credentials_in_the_query_string_stay_refused(users, query):
    values = {"wsr": users["alice"], "jwt": await sync_to_async(jwt_for)("alice"), "drf": await sync_to_async(drf_key)("alice")}
    assert_401(await denial("/ws/private/?" + query.format(**values)), "Not authenticated", "Bearer")


# --- the plain Django view: session + CSRF ----------------------------------------------------------

SESSION_VIEW = "/session/ws-ticket/"


@pytest.fixture
def session_view(settings):
    settings.ROOT_URLCONF = "tests.auth.urls"


def test_session_view_is_post_only(users, session_view):
    client = csrf_client("alice")
    assert client.get(SESSION_VIEW).status_code == 405


def test_session_view_refuses_anonymous_users(users, session_view):
    client = csrf_client()
    response = client.post(SESSION_VIEW, headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_session_view_ignores_bearer_credentials(users, session_view):
    client = csrf_client()
    response = client.post(SESSION_VIEW, headers={"X-CSRFToken": csrf_token(client), "Authorization": f"Bearer {jwt_for('alice')}"})
    assert response.status_code == 401


def test_session_view_needs_the_csrf_token(users, session_view):
    client = csrf_client("alice")
    assert client.post(SESSION_VIEW).status_code == 403
    assert client.post(SESSION_VIEW, headers={"X-CSRFToken": "x" * 32}).status_code == 403


def session_ticket(client: Client, **kwargs: Any) -> Any:
    return client.post(SESSION_VIEW, headers={"X-CSRFToken": csrf_token(client), **kwargs.pop("headers", {})}, **kwargs)


async def test_session_view_ticket_opens_private_once(users, session_view):
    client = await sync_to_async(csrf_client)("alice")
    response = await sync_to_async(session_ticket)(client)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert set(body) == {"ticket", "expires_in"} and TICKET.match(body["ticket"]) and body["expires_in"] == 30
    assert await greeting(with_ticket("/ws/private/", body["ticket"])) == {"user": "alice"}
    assert_401(await denial(with_ticket("/ws/private/", body["ticket"])), INVALID_TICKET, invalid_token(INVALID_TICKET))


async def test_session_view_binds_origin_and_path(users, session_view):
    client = await sync_to_async(csrf_client)("alice")

    async def issue(**kwargs: Any) -> str:
        response = await sync_to_async(session_ticket)(client, **kwargs)
        assert response.status_code == 200, response.content
        return response.json()["ticket"]

    as_json = {"data": json.dumps({"path": "/ws/private/"}), "content_type": "application/json"}
    as_form = {"data": {"path": "/ws/private/"}}
    for body in (as_json, as_form):
        assert await greeting(with_ticket("/ws/private/", await issue(**body))) == {"user": "alice"}
        result = await denial(with_ticket("/ws/rooms/lobby/", await issue(**body)))
        assert_401(result, INVALID_TICKET, invalid_token(INVALID_TICKET))
    bound = await issue(headers={"Origin": ORIGIN})
    assert_401(await denial(with_ticket("/ws/private/", bound), origin("http://localhost:8000")), INVALID_TICKET, invalid_token(INVALID_TICKET))
    assert await greeting(with_ticket("/ws/private/", await issue(headers={"Origin": ORIGIN})), origin(ORIGIN)) == {"user": "alice"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "{not json", "content_type": "application/json"},
        {"data": json.dumps({"path": "relative/"}), "content_type": "application/json"},
        {"data": {"path": "x"}},
    ],
    ids=["bad-json", "relative-json", "relative-form"],
)
def test_session_view_rejects_bad_bodies(users, session_view, kwargs):
    response = session_ticket(csrf_client("alice"), **kwargs)
    assert response.status_code == 400 and "ticket" not in response.json()


# --- two processes sharing Redis race for one ticket ---------------------------------------------


@contextlib.contextmanager
def two_demo_servers(tmp_path) -> Iterator[tuple[Any, Any]]:
    """The demo twice on uvicorn, one SQLite database, Django's cache on Redis: the run's own
    database (``WSREJECT_TEST_REDIS_URL``; a fixed one would be shared with concurrent runs and
    with other tests), emptied first so nothing cached by an earlier test is read."""
    import redis

    redis.Redis.from_url(REDIS_URL, socket_timeout=5).flushdb()
    demo = prepare_demo(tmp_path, {"REDIS_URL": REDIS_URL, "WSREJECT_LOG_LEVEL": "INFO"})
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(running_server("uvicorn-websockets", DEMO_APP, env=demo.env))
        two = stack.enter_context(running_server("uvicorn-websockets", DEMO_APP, env=demo.env))
        yield one, two


def http_post(url: str, data: dict[str, Any], authorization: str | None = None) -> tuple[int, Any]:
    request = Request(url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"})
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with build_opener(ProxyHandler({})).open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.mark.server
def test_two_processes_on_redis_race_for_one_ticket(tmp_path):
    require(redis_unreachable())
    with two_demo_servers(tmp_path) as (one, two):
        status, tokens = http_post(one.http_url("/api/token/"), {"username": "alice", "password": DEMO_PASSWORD})
        assert status == 200, tokens
        authorization = f"Bearer {tokens['access']}"

        async def race(ticket: str) -> list[Accepted | Denied]:
            results = await asyncio.gather(*(ws_connect(server.url(with_ticket("/ws/private/", ticket))) for server in (one, two)))
            for result in results:
                if isinstance(result, Accepted):
                    assert await result.recv_json(timeout=10) == {"user": "alice"}
                    await result.close()
            return list(results)

        issued = []
        for round_ in range(20):
            issuer = (one, two)[round_ % 2]
            status, body = http_post(issuer.http_url("/api/ws-ticket/"), {}, authorization)
            assert status == 200, body
            issued.append(body["ticket"])
            results = asyncio.run(race(body["ticket"]))
            accepted = [result for result in results if isinstance(result, Accepted)]
            denied = [result for result in results if isinstance(result, Denied)]
            assert len(accepted) == 1 and len(denied) == 1, (round_, results)
            assert (denied[0].status_code, denied[0].json()) == (401, {"detail": INVALID_TICKET})

        # One denial line per round in all, and no ticket in any line of wsreject's.
        deadline = time.monotonic() + 10
        while True:
            lines = [line for server in (one, two) for line in server.log().splitlines() if " wsreject: " in line]
            denials = [line for line in lines if "WebSocket denied: path=/ws/private/ status=401" in line]
            if len(denials) >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(denials) == 20, lines
        assert not any(ticket in line for ticket in issued for line in lines)
