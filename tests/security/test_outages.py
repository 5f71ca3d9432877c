"""Outages and clients that leave, in process: what wsreject answers and what it logs.

The real-server versions are in ``test_dependencies.py``; these pin each behaviour to
the piece of wsreject that owns it, with real exceptions (uvloop's, redis-py's,
uvicorn's) rather than look-alikes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest
import redis
import uvloop
from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import URLRouter
from django.urls import path
from uvicorn.protocols.utils import ClientDisconnected

from wsreject import DenialResponse, DenyHandshake
from wsreject.access.denial_log import DenialLog
from wsreject.consumers import AuthorizedConsumer
from wsreject.denial import closed_transport, default_exception_handler, is_unavailable
from wsreject.middleware import DenialMiddleware, DenialMiddlewareStack
from wsreject.testing import HandshakeCommunicator
from wsreject.transport import deny

SCOPE = {"type": "websocket", "path": "/ws/x/"}


def uvloop_closed_transport_error() -> RuntimeError:
    """What uvloop raises when writing to a connection the peer reset (a pooled Redis
    connection after an outage): produced for real, on a real socket."""

    async def provoke() -> RuntimeError:
        def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

        server = await asyncio.start_server(reset, "127.0.0.1", 0)
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            for _ in range(100):
                await asyncio.sleep(0.02)
                writer.writelines([b"PING\r\n"])
        except RuntimeError as exc:
            return exc
        finally:
            server.close()
        raise AssertionError("uvloop never refused the write")

    return uvloop.run(provoke())


def test_uvloops_closed_transport_error_is_an_outage_not_a_bug():
    exc = uvloop_closed_transport_error()
    assert closed_transport(exc) and is_unavailable(exc)
    response = default_exception_handler(exc, SCOPE)
    assert (response.status_code, response.header("retry-after"), response.body) == (
        503,
        "5",
        b'{"detail":"Service Unavailable"}',
    )
    # Another error raised while handling it (a library's cleanup) still counts as the outage.
    try:
        try:
            raise exc
        except RuntimeError:
            raise ValueError("while cleaning up")
    except ValueError as wrapped:
        assert is_unavailable(wrapped)


@pytest.mark.parametrize("message", ["unable to perform operation", "the handler is closed", "boom"])
def test_other_runtime_errors_stay_bugs(message):
    exc = RuntimeError(message)
    assert not is_unavailable(exc) and default_exception_handler(exc, SCOPE) is None


# --- an outage after the handshake was answered ------------------------------------------------


class AnswerThenFail:
    """Answers the handshake (accept, or a 403), then raises ``error``: what a consumer does
    when its channel layer's Redis goes away under it."""

    def __init__(self, error: Exception, accept: bool) -> None:
        self.error, self.accept = error, accept

    async def __call__(self, scope, receive, send):
        await receive()
        if self.accept:
            await send({"type": "websocket.accept"})
        else:
            await deny(scope, send, DenyHandshake(403).response())
        raise self.error


def redis_down() -> Exception:
    return redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def run(app, path: str = "/ws/x/"):
    async def go():
        communicator = HandshakeCommunicator(app, path)
        result = await communicator.handshake()
        after = await communicator.receive_output(1) if result.accepted else None
        await communicator.wait(1)
        return result, after

    return async_to_sync(go)()


@pytest.fixture
def fresh_warnings(monkeypatch, caplog):
    monkeypatch.setattr("wsreject.reporting._warned", {})
    caplog.set_level(logging.DEBUG, logger="wsreject")
    return caplog


def errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]


def test_an_outage_after_accept_closes_1011_and_is_said_once(fresh_warnings):
    for _ in range(3):
        result, after = run(DenialMiddleware(AnswerThenFail(redis_down(), accept=True)))
        assert result.accepted and after == {"type": "websocket.close", "code": 1011}
    warnings = [r.getMessage() for r in fresh_warnings.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "became unreachable after a WebSocket handshake was answered; closing with 1011" in warnings[0]
    assert "Connection refused" in warnings[0]
    assert not errors(fresh_warnings)


def test_an_outage_after_a_denial_is_said_once(fresh_warnings):
    for _ in range(3):
        result, _after = run(DenialMiddleware(AnswerThenFail(redis_down(), accept=False)))
        assert result.status_code == 403
    warnings = [r.getMessage() for r in fresh_warnings.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "after a WebSocket handshake was answered: ConnectionError" in warnings[0]
    assert not errors(fresh_warnings)


@pytest.mark.parametrize("accept", [True, False])
def test_a_bug_after_the_handshake_is_still_an_error_with_its_traceback(fresh_warnings, accept):
    _result, after = run(DenialMiddleware(AnswerThenFail(ValueError("a bug"), accept=accept)))
    if accept:
        assert after == {"type": "websocket.close", "code": 1011}
    [record] = [r for r in fresh_warnings.records if r.levelno >= logging.ERROR]
    assert record.exc_info and isinstance(record.exc_info[1], ValueError)


# --- a client that leaves while its handshake is being decided -------------------------------------


class Greeter(AuthorizedConsumer, AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()


class SyncGreeter(AuthorizedConsumer, WebsocketConsumer):
    def connect(self):
        self.accept()


class Private(AuthorizedConsumer, AsyncWebsocketConsumer):
    login_required = True


GONE_APP = DenialMiddlewareStack(
    URLRouter(
        [
            path("ws/greeter/", Greeter.as_asgi()),
            path("ws/sync-greeter/", SyncGreeter.as_asgi()),
            path("ws/private/", Private.as_asgi()),
        ]
    )
)


def drive_after_the_client_left(path: str) -> list[dict]:
    """Run one handshake whose client is gone: after ``websocket.connect``, every send raises
    uvicorn's ClientDisconnected and receive says ``websocket.disconnect``, as uvicorn does."""
    attempted: list[dict] = []
    inbox = [{"type": "websocket.connect"}]

    async def receive():
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1006}

    async def send(message):
        attempted.append(message)
        raise ClientDisconnected()

    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
        "client": ["127.0.0.1", 50000],
        "extensions": {"websocket.http.response": {}},
    }

    async def go():
        await asyncio.wait_for(GONE_APP(scope, receive, send), 10)

    async_to_sync(go)()
    return attempted


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "first"),
    [
        ("/ws/greeter/", "websocket.accept"),  # accept() raises: the consumer must not "deny" with a 500
        ("/ws/sync-greeter/", "websocket.accept"),
        ("/ws/private/", "websocket.http.response.start"),  # the 401 goes nowhere
    ],
)
def test_a_client_that_left_is_a_debug_line_not_a_500(fresh_warnings, path, first):
    attempted = drive_after_the_client_left(path)
    assert [message["type"] for message in attempted] == [first], "one attempt, then nothing more"
    assert not errors(fresh_warnings), errors(fresh_warnings)
    debug = [r.getMessage() for r in fresh_warnings.records if r.levelno == logging.DEBUG]
    assert any(path in line and "left" in line for line in debug), debug


# --- the recent-denials copy while the cache is down -----------------------------------------------


def test_copying_recent_denials_to_a_cache_that_is_down_is_said_once(fresh_warnings, settings):
    settings.CACHES = {
        **settings.CACHES,
        "down": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    settings.WSREJECT = {**settings.WSREJECT, "CACHE": "down"}
    log = DenialLog()
    log.record({"type": "websocket", "path": "/ws/x/"}, DenialResponse(403), "http")
    for _ in range(3):
        log.flush()
    assert not errors(fresh_warnings), errors(fresh_warnings)
    warnings = [r.getMessage() for r in fresh_warnings.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WebSocket access cache unavailable" in warnings[0]
