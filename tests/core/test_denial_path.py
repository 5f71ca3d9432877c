"""The one denial path (issue 16, item 3): exception → ``Handshake.refuse`` → one validated
response → ``transport.denial_messages``, with the denial mode fixed once per handshake.

Every way a handshake can be refused — a middleware, the route's decisions, an
``AuthorizedConsumer`` (sync or async, its checks or its ``connect()``), the decision deadline,
an unexpected error, a dependency that is down — must reach ``Handshake.refuse`` exactly once,
and the server must receive exactly the messages ``denial_messages`` makes of the response.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import URLRouter
from django.db import OperationalError
from django.urls import path

from wsreject import DenialResponse, DenyHandshake
from wsreject.consumers import AuthorizedConsumer
from wsreject.handshake import Handshake, current_handshake
from wsreject.middleware import DenialMiddleware
from wsreject.routes import instrument
from wsreject.transport import denial_messages

from .asgi_apps import sleeping_app
from .util import Recorder, ws_scope

# Channels' consumers close stale database connections on their thread hops: allowed here.
pytestmark = pytest.mark.django_db(transaction=True)

BASES = [WebsocketConsumer, AsyncWebsocketConsumer]
by_base = pytest.mark.parametrize("base", BASES, ids=[base.__name__ for base in BASES])


class RouteCheck:
    """Instruments the routing it wraps and registers ``check`` as a decision of the route (as
    ``AccessRuleMiddleware`` does with the access rules), run at the leaf before the consumer."""

    def __init__(self, inner, check=None) -> None:
        self.inner = inner
        self.check = check
        instrument(inner)

    async def __call__(self, scope, receive, send):
        handshake = current_handshake(scope)
        if handshake is not None and self.check is not None:
            handshake.route_checks.append(self.check)
        return await self.inner(scope, receive, send)


def consumer(base, *, denial_mode=None, raises=None, **attrs):
    """An AuthorizedConsumer on ``base`` whose ``connect()`` raises ``raises()`` (built in connect)."""
    if base._sync:

        def connect(self):
            raise raises()

    else:

        async def connect(self):
            raise raises()

    return type(f"Path{base.__name__}", (AuthorizedConsumer, base), {"connect": connect, "denial_mode": denial_mode, **attrs})


@pytest.fixture
def refusals(monkeypatch):
    """Every call of ``Handshake.refuse`` and every response ``Handshake.deny`` sent: (mode, response)."""
    calls: list[BaseException] = []
    sent: list[tuple[str | None, DenialResponse]] = []
    refuse, deny = Handshake.refuse, Handshake.deny

    async def counting_refuse(self, scope, exc):
        calls.append(exc)
        await refuse(self, scope, exc)

    async def recording_deny(self, scope, response):
        sent.append((self.denial_mode, response))
        await deny(self, scope, response)

    monkeypatch.setattr(Handshake, "refuse", counting_refuse)
    monkeypatch.setattr(Handshake, "deny", recording_deny)
    return calls, sent


async def run(app, scope) -> Recorder:
    recorder = Recorder()
    await asyncio.wait_for(app(scope, recorder.receive, recorder.send), 5)
    return recorder


# --- every refusal, one path ---------------------------------------------------------------------------


def raising_middleware(exc):
    async def app(scope, receive, send):
        raise exc

    return app


async def refusing_route(scope, hit):
    raise DenyHandshake(451, "Not here", headers={"X-Route": "checked"})


def routed(app, check=None):
    return RouteCheck(URLRouter([path("ws/x/", app)]), check)


CASES = {
    "middleware": (lambda: raising_middleware(DenyHandshake(401, "Who?", headers={"WWW-Authenticate": "Bearer"})), 401),
    "route decision": (lambda: routed(consumer(AsyncWebsocketConsumer, raises=RuntimeError).as_asgi(), refusing_route), 451),
    "async consumer connect()": (
        lambda: routed(consumer(AsyncWebsocketConsumer, raises=lambda: DenyHandshake(409)).as_asgi()),
        409,
    ),
    "sync consumer connect()": (lambda: routed(consumer(WebsocketConsumer, raises=lambda: DenyHandshake(409)).as_asgi()), 409),
    "sync consumer checks": (
        lambda: routed(consumer(WebsocketConsumer, raises=RuntimeError, login_required=True).as_asgi()),
        401,
    ),
    "async consumer checks": (
        lambda: routed(consumer(AsyncWebsocketConsumer, raises=RuntimeError, login_required=True).as_asgi()),
        401,
    ),
    "unexpected error": (lambda: routed(consumer(WebsocketConsumer, raises=lambda: RuntimeError("bug")).as_asgi()), 500),
    "dependency down": (lambda: raising_middleware(OperationalError("db down")), 503),
    "decision deadline": (lambda: sleeping_app, 503),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["http", "close_code"])
async def test_every_refusal_takes_the_one_path_once(case, mode, refusals, caplog):
    build, status = CASES[case]
    app = DenialMiddleware(build(), denial_mode=mode, decision_timeout=0.2)
    scope = ws_scope()
    recorder = await run(app, scope)
    calls, sent = refusals
    assert len(calls) == 1, calls
    assert len(sent) == 1
    _, response = sent[0]
    assert response.status_code == status
    assert recorder.sent == denial_messages(scope, response, mode)[1]


# --- the mode, fixed once -----------------------------------------------------------------------------

MODES = [  # (the consumer's denial_mode, the stack's, what leaves)
    ("close_code", "http", "close_code"),
    ("http", "close_code", "http"),
    (None, "close_code", "close_code"),
    (None, None, "http"),
]


def deny_with_headers():
    return DenyHandshake(423, "The vault is locked", headers={"Retry-After": "60", "X-Why": "locked"})


def layouts(cls, stack_mode):
    """The same consumer reached three ways: unrouted, through a recorded route, and with a stack
    of its own between the route and the consumer."""
    return {
        "unrouted": DenialMiddleware(cls.as_asgi(), denial_mode=stack_mode),
        "routed": DenialMiddleware(routed(cls.as_asgi()), denial_mode=stack_mode),
        "stack below the route": DenialMiddleware(routed(DenialMiddleware(cls.as_asgi(), denial_mode=stack_mode))),
    }


@by_base
@pytest.mark.parametrize(("consumer_mode", "stack_mode", "expected"), MODES)
@pytest.mark.parametrize("layout", ["unrouted", "routed", "stack below the route"])
async def test_the_consumer_attribute_wins_and_both_bases_send_the_one_functions_messages(
    base, consumer_mode, stack_mode, expected, layout, refusals
):
    cls = consumer(base, denial_mode=consumer_mode, raises=deny_with_headers)
    scope = ws_scope()
    recorder = await run(layouts(cls, stack_mode)[layout], scope)
    calls, sent = refusals
    assert len(calls) == 1
    assert recorder.sent == denial_messages(scope, deny_with_headers().response(), expected)[1]
    if expected == "http":
        start = recorder.sent[0]
        assert (start["status"], (b"retry-after", b"60") in start["headers"]) == (423, True)
    else:
        assert recorder.sent[-1] == {"type": "websocket.close", "code": 4423, "reason": "The vault is locked"}


@by_base
async def test_without_the_extension_the_fallback_of_the_one_function(base, refusals):
    cls = consumer(base, raises=deny_with_headers)
    scope = ws_scope(extension=False)
    recorder = await run(routed(cls.as_asgi()), scope)  # no wsreject stack at all: the consumer's own handshake
    assert len(refusals[0]) == 1
    assert recorder.sent == denial_messages(scope, deny_with_headers().response())[1] == [{"type": "websocket.close"}]


@by_base
async def test_a_consumer_without_a_stack_closes_1011_when_it_fails_after_accept(base, refusals):
    """Its own handshake saw the accept: no denial messages after it (ASGI forbids them)."""
    if base._sync:

        def connect(self):
            self.accept()
            raise RuntimeError("after accept")

    else:

        async def connect(self):
            await self.accept()
            raise RuntimeError("after accept")

    cls = type("AcceptThenFail", (AuthorizedConsumer, base), {"connect": connect})
    recorder = await run(cls.as_asgi(), ws_scope())
    assert recorder.types == ["websocket.accept", "websocket.close"]
    assert recorder.sent[-1]["code"] == 1011
    assert refusals[0] == []


# --- validated once -----------------------------------------------------------------------------------


@pytest.fixture
def validations(monkeypatch):
    """How many times DenialResponse's constructor — the one validator — ran."""
    count = [0]
    init = DenialResponse.__init__

    def counting_init(self, *args, **kwargs):
        count[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(DenialResponse, "__init__", counting_init)
    return count


@by_base
@pytest.mark.parametrize("stack", [True, False], ids=["stack", "no stack"])
async def test_a_consumers_denial_is_validated_once(base, stack, validations):
    cls = consumer(base, raises=deny_with_headers)
    app = DenialMiddleware(routed(cls.as_asgi())) if stack else routed(cls.as_asgi())
    recorder = await run(app, ws_scope())
    assert recorder.sent[0]["status"] == 423
    assert validations[0] == 1


async def test_the_deadlines_503_is_validated_once(validations):
    recorder = await run(DenialMiddleware(sleeping_app, decision_timeout=0.05), ws_scope())
    assert (recorder.sent[0]["status"], validations[0]) == (503, 1)


def test_a_denyhandshake_is_rendered_by_the_validator():
    """A bad header fails where the denial is written, with the validator's message."""
    with pytest.raises(ValueError, match="set by the server"):
        DenyHandshake(401, headers={"Content-Length": "3"})
    with pytest.raises(ValueError, match="400-599"):
        DenyHandshake(302)
    exc = DenyHandshake(404, {"why": ["gone"]})
    assert exc.response() is exc.response()
    assert (exc.response().body, exc.response().detail) == (b'{"detail":{"why":["gone"]}}', '{"why":["gone"]}')


# --- after accept: one traceback per kind ---------------------------------------------------------------


async def test_errors_after_accept_log_one_traceback_per_kind(caplog):
    async def accept_then_fail(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError("after accept")

    caplog.set_level(logging.ERROR, logger="wsreject")
    for _ in range(3):
        recorder = await run(DenialMiddleware(accept_then_fail), ws_scope())
        assert recorder.sent[-1] == {"type": "websocket.close", "code": 1011}
    tracebacks = [r for r in caplog.records if r.name == "wsreject" and r.exc_info]
    assert len(tracebacks) == 1
    assert "Unhandled error after accept" in tracebacks[0].getMessage()
