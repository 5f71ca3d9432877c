"""The conformance scenario (shared/conformance/scenario.md), cases 1-17, in process against the demo's
``project.asgi.application``: exact status, header list, body bytes; first message when accepted.
Then the same endpoints under ``/ws/browser/`` (close-code mode) and on a server without the extension."""

from __future__ import annotations

import json

import pytest

from project.asgi import application
from tests.helpers import bearer
from wsreject.testing import HandshakeCommunicator

from .util import disconnect

JSON = (b"content-type", b"application/json")
BEARER_CHALLENGE = (b"www-authenticate", b"Bearer")


def token_headers(tokens, who):
    if who is None:
        return []
    if who == "unknown":
        return bearer("this-token-was-never-issued")
    return bearer(tokens[who])


async def handshake(path, headers=(), **kwargs):
    communicator = HandshakeCommunicator(application, path, headers=list(headers), **kwargs)
    return communicator, await communicator.handshake(timeout=2)


def expected_denial(body: bytes, *before):
    return list(before) + [(b"content-length", str(len(body)).encode()), JSON]


async def assert_denied(path, headers, status, body, *before, **kwargs):
    communicator, result = await handshake(path, headers, **kwargs)
    assert not result.accepted, f"{path} was accepted"
    assert result.denial_mode == "http"
    assert result.status_code == status
    assert result.body == body
    assert result.headers == expected_denial(body, *before)
    await communicator.wait(timeout=1)  # nothing escaped the application
    return result


async def assert_accepted(path, headers, first_message=None, **kwargs):
    communicator, result = await handshake(path, headers, **kwargs)
    assert result.accepted, (result.status_code, result.body)
    if first_message is not None:
        assert json.loads(await communicator.receive_from()) == first_message
    return communicator


# --- cases 1-17 --------------------------------------------------------------------------------------


async def test_case_01_echo_anonymous(transactional_db):
    communicator = await assert_accepted("/ws/echo/", [])
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_from() == "ping"
    await disconnect(communicator)


async def test_case_02_private_without_credential(transactional_db):
    await assert_denied("/ws/private/", [], 401, b'{"detail":"Not authenticated"}', BEARER_CHALLENGE)


async def test_case_03_private_with_unknown_token(demo_tokens):
    await assert_denied("/ws/private/", token_headers(demo_tokens, "unknown"), 401, b'{"detail":"Invalid credentials"}', (b"www-authenticate", b'Bearer error="invalid_token", error_description="Invalid credentials"'))


@pytest.mark.parametrize(
    "value",
    [b"Basic abc", b"Bearer", b"Bearer  ", "Bearer tökén".encode(), b"Bearer \xff\xfe"],
    ids=["basic", "bearer-alone", "bearer-spaces", "non-ascii-utf8", "non-ascii-bytes"],
)
async def test_case_04_private_with_malformed_header(transactional_db, value):
    await assert_denied("/ws/private/", [(b"authorization", value)], 401, b'{"detail":"Not authenticated"}', BEARER_CHALLENGE)


async def test_case_05_private_alice(demo_tokens):
    communicator = await assert_accepted("/ws/private/", token_headers(demo_tokens, "alice"), {"user": "alice"})
    await disconnect(communicator)


@pytest.mark.parametrize("room", ["lobby", "nowhere"], ids=["case-06-lobby", "case-09-nowhere"])
async def test_case_06_and_09_rooms_bob(demo_tokens, room):
    await assert_denied(f"/ws/rooms/{room}/", token_headers(demo_tokens, "bob"), 403, b'{"detail":"Not allowed to join this room"}')


async def test_case_07_rooms_lobby_alice(demo_tokens):
    communicator = await assert_accepted("/ws/rooms/lobby/", token_headers(demo_tokens, "alice"), {"room": "lobby", "user": "alice"})
    await disconnect(communicator)


async def test_case_08_rooms_nowhere_alice(demo_tokens):
    await assert_denied("/ws/rooms/nowhere/", token_headers(demo_tokens, "alice"), 404, b'{"detail":"Room not found"}')


async def test_case_10_staff_alice(demo_tokens):
    await assert_denied("/ws/staff/", token_headers(demo_tokens, "alice"), 403, b'{"detail":"Staff only"}')


async def test_case_10b_staff_anonymous(transactional_db):
    await assert_denied("/ws/staff/", [], 401, b'{"detail":"Not authenticated"}', BEARER_CHALLENGE)


async def test_case_11_staff_carol(demo_tokens):
    communicator = await assert_accepted("/ws/staff/", token_headers(demo_tokens, "carol"), {"user": "carol"})
    await disconnect(communicator)


@pytest.mark.parametrize("who", [None, "alice", "carol"], ids=["anonymous", "alice", "carol"])
async def test_case_12_maintenance(demo_tokens, who):
    await assert_denied("/ws/maintenance/", token_headers(demo_tokens, who), 503, b'{"detail":"Down for maintenance"}', (b"retry-after", b"120"))


async def test_case_13_limited(transactional_db):
    for _ in range(3):
        communicator = await assert_accepted("/ws/limited/", [], {"ok": True})
        await disconnect(communicator)
    communicator, result = await handshake("/ws/limited/")
    assert result.status_code == 429
    assert result.body == b'{"detail":"Too many connection attempts"}'
    names = [name for name, _ in result.headers]
    assert names == [b"retry-after", b"content-length", b"content-type"]
    retry_after = result.header("retry-after")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    assert result.headers[1:] == expected_denial(result.body)
    # another client is not affected
    communicator = await assert_accepted("/ws/limited/", [], {"ok": True}, client=("10.9.9.9", 1))
    await disconnect(communicator)


@pytest.mark.parametrize("path", ["/ws/does-not-exist/", "/ws/", "/does-not-exist/", "/ws/rooms/", "/ws/echo/x/"], ids=str)
async def test_case_14_unknown_path(transactional_db, path):
    await assert_denied(path, [], 404, b'{"detail":"Not Found"}')


async def test_case_15_origin_not_allowed(demo_tokens):
    headers = token_headers(demo_tokens, "alice") + [(b"origin", b"https://evil.example")]
    await assert_denied("/ws/private/", headers, 403, b'{"detail":"Origin not allowed"}')


async def test_case_15b_allowed_origin_passes(demo_tokens):
    headers = token_headers(demo_tokens, "alice") + [(b"origin", b"http://localhost:8000")]
    communicator = await assert_accepted("/ws/private/", headers, {"user": "alice"})
    await disconnect(communicator)


async def test_case_16_broken_hides_the_error(transactional_db, caplog):
    result = await assert_denied("/ws/broken/", [], 500, b'{"detail":"Internal Server Error"}')
    wire = result.body + b"".join(name + value for name, value in result.headers)
    for leak in (b"hunter2", b"secret", b"RuntimeError", b"Traceback", b"password"):
        assert leak not in wire
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records), "the error is logged server-side"


async def test_case_17_teapot(transactional_db):
    communicator, result = await handshake("/ws/teapot/")
    assert result.status_code == 418
    assert result.headers == [  # Starlette's order: the app's headers, content-length, content-type
        (b"x-teapot", b"short-and-stout"),
        (b"content-length", b"12"),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]
    assert result.body == b"I'm a teapot"
    await communicator.wait(timeout=1)


# --- conformance helpers of the demo ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,status,body,headers",
    [
        ("/ws/deny/451/?detail=Gone%20for%20legal%20reasons&h=Link:%3Chttps://e.example%3E", 451, b'{"detail":"Gone for legal reasons"}', [(b"link", b"<https://e.example>")]),
        ("/ws/deny/403/", 403, b'{"detail":"Forbidden"}', []),
        ("/ws/deny/403/?detail=", 403, b'{"detail":""}', []),
    ],
    ids=["451-with-header", "403-default", "403-empty-detail"],
)
async def test_deny_endpoint(transactional_db, path, status, body, headers):
    await assert_denied(path, [], status, body, *headers)


@pytest.mark.parametrize("status", [101, 200, 204, 302, 399])
async def test_a_denial_that_is_not_an_error_is_a_500(transactional_db, status):
    """FastAPI would send these; wsreject refuses to build them (a bug in the app, never a handshake answer)."""
    communicator, result = await handshake(f"/ws/deny/{status}/")
    assert (result.status_code, result.body) == (500, b'{"detail":"Internal Server Error"}')


@pytest.mark.parametrize(
    "offered,chosen", [(["chat.v2", "chat.v1"], "chat.v2"), ([], None), (["x", "chat.v1"], "chat.v1")], ids=["v2-first", "none-offered", "skip-unknown"]
)
async def test_subprotocol_accepted(transactional_db, offered, chosen):
    communicator, result = await handshake("/ws/subprotocol/", subprotocols=offered)
    assert result.accepted and result.subprotocol == chosen
    assert json.loads(await communicator.receive_from()) == {"subprotocol": chosen}
    await disconnect(communicator)


async def test_subprotocol_unsupported(transactional_db):
    communicator, result = await handshake("/ws/subprotocol/", subprotocols=["x"])
    assert (result.status_code, result.body) == (400, b'{"detail":"Unsupported subprotocol"}')


# --- close-code mode under /ws/browser/ ----------------------------------------------------------------

BROWSER_DENIALS = [
    ("private-anonymous", "/ws/browser/private/", None, 4401, "Not authenticated"),
    ("private-unknown-token", "/ws/browser/private/", "unknown", 4401, "Invalid credentials"),
    ("rooms-lobby-bob", "/ws/browser/rooms/lobby/", "bob", 4403, "Not allowed to join this room"),
    ("rooms-nowhere-bob", "/ws/browser/rooms/nowhere/", "bob", 4403, "Not allowed to join this room"),
    ("rooms-nowhere-alice", "/ws/browser/rooms/nowhere/", "alice", 4404, "Room not found"),
    ("staff-alice", "/ws/browser/staff/", "alice", 4403, "Staff only"),
    ("maintenance", "/ws/browser/maintenance/", None, 4503, "Down for maintenance"),
    ("unknown-path", "/ws/browser/does-not-exist/", None, 4404, "Not Found"),
    ("broken", "/ws/browser/broken/", None, 4500, "Internal Server Error"),
    ("teapot", "/ws/browser/teapot/", None, 4418, "I'm a Teapot"),
    ("deny-451", "/ws/browser/deny/451/?detail=Legal", None, 4451, "Legal"),
]


@pytest.mark.parametrize(
    "path,who,code,reason", [case[1:] for case in BROWSER_DENIALS], ids=[case[0] for case in BROWSER_DENIALS]
)
@pytest.mark.parametrize("extension", [True, False], ids=["with-extension", "without-extension"])
async def test_browser_close_code_denials(demo_tokens, path, who, code, reason, extension):
    communicator = HandshakeCommunicator(application, path, headers=token_headers(demo_tokens, who), denial_response=extension)
    result = await communicator.handshake(timeout=2, close_code=True)
    assert result.denial_mode == "close_code", result
    assert (result.status_code, result.close_code, result.reason) == (code - 4000, code, reason)
    assert result.json() == {"detail": reason}
    await communicator.wait(timeout=1)


async def test_browser_limited_fourth_attempt_is_4429(transactional_db):
    for _ in range(3):
        communicator = HandshakeCommunicator(application, "/ws/browser/limited/")
        assert (await communicator.handshake(close_code=True)).accepted
        await disconnect(communicator)
    communicator = HandshakeCommunicator(application, "/ws/browser/limited/")
    result = await communicator.handshake(close_code=True)
    assert (result.close_code, result.reason) == (4429, "Too many connection attempts")


async def test_browser_reason_is_cut_to_123_bytes_without_splitting(transactional_db):
    detail = "Zugriff verweigert 😀 " * 10
    from urllib.parse import quote

    communicator = HandshakeCommunicator(application, f"/ws/browser/deny/403/?detail={quote(detail)}")
    result = await communicator.handshake(close_code=True)
    assert result.close_code == 4403
    assert len(result.reason.encode("utf-8")) <= 123
    assert detail.startswith(result.reason) and len(result.reason) > 0
    assert result.json() == {"detail": detail}


@pytest.mark.parametrize(
    "path,who,first",
    [
        ("/ws/browser/private/", "alice", {"user": "alice"}),
        ("/ws/browser/rooms/lobby/", "alice", {"room": "lobby", "user": "alice"}),
        ("/ws/browser/staff/", "carol", {"user": "carol"}),
    ],
    ids=["private-alice", "rooms-alice", "staff-carol"],
)
async def test_browser_accepted(demo_tokens, path, who, first):
    communicator = HandshakeCommunicator(application, path, headers=token_headers(demo_tokens, who))
    result = await communicator.handshake(close_code=True)
    assert result.accepted
    assert json.loads(await communicator.receive_from()) == first
    await disconnect(communicator)


async def test_browser_echo(transactional_db):
    communicator = HandshakeCommunicator(application, "/ws/browser/echo/")
    assert (await communicator.handshake(close_code=True)).accepted
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_from() == "ping"
    await disconnect(communicator)


async def test_browser_origin_denial_is_decided_by_the_outer_stack(demo_tokens):
    """The origin check runs before routing, in the outer stack's HTTP mode (not 4403)."""
    headers = token_headers(demo_tokens, "alice") + [(b"origin", b"https://evil.example")]
    communicator, result = await handshake("/ws/browser/private/", headers)
    assert (result.denial_mode, result.status_code, result.body) == ("http", 403, b'{"detail":"Origin not allowed"}')


# --- a server without the extension (stock Daphne), fallback "close" ------------------------------------

NO_EXTENSION = [
    ("case-02", "/ws/private/", None),
    ("case-03", "/ws/private/", "unknown"),
    ("case-06", "/ws/rooms/lobby/", "bob"),
    ("case-08", "/ws/rooms/nowhere/", "alice"),
    ("case-10", "/ws/staff/", "alice"),
    ("case-12", "/ws/maintenance/", None),
    ("case-14", "/ws/does-not-exist/", None),
    ("case-16", "/ws/broken/", None),
    ("case-17", "/ws/teapot/", None),
]


@pytest.mark.parametrize("path,who", [case[1:] for case in NO_EXTENSION], ids=[case[0] for case in NO_EXTENSION])
async def test_without_extension_every_denial_is_the_servers_403(demo_tokens, path, who):
    communicator, result = await handshake(path, token_headers(demo_tokens, who), denial_response=False)
    assert (result.denial_mode, result.status_code, result.body) == ("close", 403, b"")
    await communicator.wait(timeout=1)


async def test_without_extension_accepted_cases_are_unchanged(demo_tokens):
    communicator = await assert_accepted("/ws/rooms/lobby/", token_headers(demo_tokens, "alice"), {"room": "lobby", "user": "alice"}, denial_response=False)
    await disconnect(communicator)
