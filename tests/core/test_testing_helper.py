"""HandshakeCommunicator (wsreject/testing.py) against raw ASGI apps that answer in every possible way."""

from __future__ import annotations

import json

import pytest

from wsreject import DenyHandshake
from wsreject.http import DENIAL_EXTENSION as EXTENSION
from wsreject.middleware import DenialMiddleware
from wsreject.testing import Accepted, Denied, HandshakeCommunicator


def answering(*messages, then_wait=True):
    """An app that receives websocket.connect, sends ``messages``, then waits for disconnect."""

    async def app(scope, receive, send):
        await receive()
        for message in messages:
            await send(message)
        if then_wait:
            while (await receive())["type"] != "websocket.disconnect":
                pass

    return app


async def run(app, *, close_code=False, **kwargs):
    communicator = HandshakeCommunicator(app, "/ws/x/", **kwargs)
    return communicator, await communicator.handshake(close_code=close_code)


def test_scope_looks_like_a_real_server():
    communicator = HandshakeCommunicator(answering(), "/ws/x/?a=1", headers=[(b"x", b"y")], subprotocols=["p"], client=("10.1.2.3", 4))
    scope = communicator.scope
    assert scope["extensions"] == {EXTENSION: {}}
    assert scope["client"] == ["10.1.2.3", 4]
    assert scope["server"] == ["127.0.0.1", 8000]
    assert (scope["path"], scope["query_string"], scope["headers"], scope["subprotocols"]) == ("/ws/x/", b"a=1", [(b"x", b"y")], ["p"])
    assert HandshakeCommunicator(answering(), "/", denial_response=False).scope["extensions"] == {}


async def test_accepted_with_subprotocol_and_headers():
    _, result = await run(answering({"type": "websocket.accept", "subprotocol": "chat.v1", "headers": [(b"x-a", b"1")]}))
    assert isinstance(result, Accepted)
    assert result.accepted is True
    assert (result.subprotocol, result.headers) == ("chat.v1", [(b"x-a", b"1")])


async def test_accepted_plain():
    communicator, result = await run(answering({"type": "websocket.accept"}, {"type": "websocket.send", "text": "hi"}))
    assert result == Accepted(None, [])
    assert await communicator.receive_from() == "hi"


async def test_http_denial():
    start = {
        "type": "websocket.http.response.start",
        "status": 401,
        "headers": [(b"www-authenticate", b"Bearer"), (b"vary", b"a"), (b"vary", b"b"), (b"content-type", b"application/json")],
    }
    _, result = await run(answering(start, {"type": "websocket.http.response.body", "body": b'{"detail":"x"}'}, then_wait=False))
    assert isinstance(result, Denied)
    assert result.accepted is False
    assert (result.status_code, result.denial_mode, result.close_code) == (401, "http", None)
    assert result.json() == {"detail": "x"}
    assert result.header("WWW-Authenticate") == "Bearer"
    assert result.header("www-authenticate") == "Bearer"
    assert result.header("vary") == "a"  # the first one
    assert result.header_list("Vary") == ["a", "b"]
    assert result.header("x-missing") is None
    assert result.header_list("x-missing") == []


async def test_latin_1_header_values_are_decoded_as_latin_1():
    start = {"type": "websocket.http.response.start", "status": 403, "headers": [(b"x-name", "café".encode("latin-1"))]}
    _, result = await run(answering(start, {"type": "websocket.http.response.body", "body": b""}, then_wait=False))
    assert result.header("x-name") == "café"


@pytest.mark.parametrize(
    "chunks,expected",
    [
        ([(b"ab", True), (b"", True), (b"cd", False)], b"abcd"),
        ([(b"", True), (b"", False)], b""),
        ([(b"x" * 70000, True), (b"y", False)], b"x" * 70000 + b"y"),
    ],
    ids=["three-chunks", "empty-chunks", "large"],
)
async def test_multi_chunk_bodies_are_joined(chunks, expected):
    messages = [{"type": "websocket.http.response.start", "status": 503, "headers": []}]
    messages += [{"type": "websocket.http.response.body", "body": body, "more_body": more} for body, more in chunks]
    _, result = await run(answering(*messages, then_wait=False))
    assert (result.status_code, result.body) == (503, expected)


async def test_body_message_without_body_key_is_empty():
    messages = [{"type": "websocket.http.response.start", "status": 404, "headers": []}, {"type": "websocket.http.response.body"}]
    _, result = await run(answering(*messages, then_wait=False))
    assert result.body == b""


async def test_wrong_message_after_start_is_an_assertion_error():
    messages = [{"type": "websocket.http.response.start", "status": 404, "headers": []}, {"type": "websocket.accept"}]
    with pytest.raises(AssertionError, match="websocket.http.response.body"):
        await run(answering(*messages))


async def test_unexpected_first_message_is_an_assertion_error():
    with pytest.raises(AssertionError, match="unexpected first message"):
        await run(answering({"type": "websocket.send", "text": "too early"}))


@pytest.mark.parametrize(
    "close,code,reason",
    [({"type": "websocket.close"}, 1000, ""), ({"type": "websocket.close", "code": 4001, "reason": "no"}, 4001, "no"), ({"type": "websocket.close", "code": 1008, "reason": None}, 1008, "")],
    ids=["bare", "code-and-reason", "none-reason"],
)
async def test_close_before_accept_is_the_servers_403(close, code, reason):
    _, result = await run(answering(close, then_wait=False))
    assert isinstance(result, Denied)
    assert (result.status_code, result.denial_mode, result.close_code, result.reason, result.body) == (403, "close", code, reason, b"")


async def test_denial_response_false_makes_the_middleware_close():
    communicator, result = await run(DenialMiddleware(_deny(401)), denial_response=False)
    assert (result.status_code, result.denial_mode) == (403, "close")
    assert result.headers == []


async def test_denial_response_false_with_close_code_fallback(settings):
    settings.WSREJECT = {"FALLBACK": "close_code"}
    _, result = await run(DenialMiddleware(_deny(401)), denial_response=False, close_code=True)
    assert (result.status_code, result.denial_mode, result.close_code, result.reason) == (401, "close_code", 4401, "Unauthorized")


def _deny(status, detail=None):
    async def app(scope, receive, send):
        raise DenyHandshake(status, detail)

    return app


# --- close-code detection ------------------------------------------------------------------------


def close_code_denial(code, detail):
    return (
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": json.dumps({"detail": detail})},
        {"type": "websocket.close", "code": code, "reason": detail},
    )


@pytest.mark.parametrize("code", [4100, 4401, 4599], ids=str)
async def test_close_code_denial_is_detected(code):
    _, result = await run(answering(*close_code_denial(code, "Nope ✓"), then_wait=False), close_code=True)
    assert isinstance(result, Denied)
    assert (result.status_code, result.denial_mode, result.close_code, result.reason) == (code - 4000, "close_code", code, "Nope ✓")
    assert result.json() == {"detail": "Nope ✓"}
    assert result.body == json.dumps({"detail": "Nope ✓"}).encode()


async def test_close_code_denial_without_detection_is_an_accept():
    communicator, result = await run(answering(*close_code_denial(4403, "No"), then_wait=False))
    assert isinstance(result, Accepted)
    assert json.loads(await communicator.receive_from()) == {"detail": "No"}
    assert (await communicator.receive_output())["code"] == 4403


@pytest.mark.parametrize(
    "after_accept",
    [
        [],
        [{"type": "websocket.send", "text": '{"user":"alice"}'}],
        [{"type": "websocket.send", "text": '{"detail":"x"}'}, {"type": "websocket.close", "code": 1000}],
        [{"type": "websocket.send", "text": '{"detail":"x"}'}, {"type": "websocket.close", "code": 4999}],
        [{"type": "websocket.send", "text": '{"detail":"x"}'}, {"type": "websocket.close", "code": 4099}],
        [{"type": "websocket.send", "text": "a"}, {"type": "websocket.send", "text": "b"}],
        [{"type": "websocket.close", "code": 4403}],
    ],
    ids=["nothing", "one-frame", "normal-close", "code-above-range", "code-below-range", "two-frames", "close-without-frame"],
)
async def test_close_code_detection_leaves_real_accepts_alone(after_accept):
    communicator, result = await run(answering({"type": "websocket.accept"}, *after_accept), close_code=True)
    assert isinstance(result, Accepted)
    for message in after_accept:  # every message stays readable, in order
        assert await communicator.receive_output() == message
    assert await communicator.receive_nothing()
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})


async def test_close_code_detection_through_the_middleware():
    communicator, result = await run(DenialMiddleware(_deny(404, "Room not found"), denial_mode="close_code"), close_code=True)
    assert (result.status_code, result.close_code, result.reason, result.json()) == (404, 4404, "Room not found", {"detail": "Room not found"})
