"""``MetricsMiddleware`` in process, around the recommended stack: denials and accepts are counted
under the route Channels matched, without a routing probe once a route was reached; a path
no route takes is ``(unmatched)`` (no probe either); a denial before routing asks the routing
once; a close-code denial (an accept, then a close) is a denial only;
open connections go up and down. The real-server view of the same is tests/admin/test_metrics.py."""

from __future__ import annotations

import prometheus_client  # in both locks: the metrics extra is part of what the suite tests
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path

from wsreject.consumers import AuthorizedConsumer
from wsreject.endpoints import Router
from wsreject.middleware import DenialMiddleware, DenialMiddlewareStack
from wsreject.testing import Accepted, Denied, HandshakeCommunicator

pytestmark = pytest.mark.django_db


class Open(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()


class LoginOnly(AuthorizedConsumer, AsyncWebsocketConsumer):
    login_required = True

    async def connect(self):
        await self.accept()


endpoints = [
    path("open/<slug:room>/", Open.as_asgi(), name="metrics-open"),
    path("login/", LoginOnly.as_asgi(), name="metrics-login"),
]
routing = URLRouter([path("m/browser/", DenialMiddleware(URLRouter(endpoints), denial_mode="close_code")), path("m/", URLRouter(endpoints))])


class CountingRouter(Router):
    """The middleware's routing probe, counted."""

    probes = 0

    def resolve(self, scope):
        type(self).probes += 1
        return super().resolve(scope)


def sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def app():
    from wsreject.metrics import MetricsMiddleware

    middleware = MetricsMiddleware(DenialMiddlewareStack(routing))
    middleware.router = CountingRouter(middleware.inner)
    CountingRouter.probes = 0
    return middleware


async def test_a_denial_is_counted_under_the_route_without_a_probe(app):
    before = sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="denied", status="401")
    seconds = sample("wsreject_decision_seconds_count", endpoint="metrics-login", outcome="denied")
    result = await HandshakeCommunicator(app, "/m/login/").handshake()
    assert isinstance(result, Denied) and result.status_code == 401
    assert sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="denied", status="401") == before + 1
    assert sample("wsreject_decision_seconds_count", endpoint="metrics-login", outcome="denied") == seconds + 1
    assert CountingRouter.probes == 0


async def test_an_accept_is_counted_under_the_route_without_a_probe_and_opens_a_connection(app):
    before = sample("wsreject_handshakes_total", endpoint="metrics-open", outcome="accepted", status="101")
    opened = sample("wsreject_open_connections", endpoint="metrics-open")
    communicator = HandshakeCommunicator(app, "/m/open/lobby/")
    assert isinstance(await communicator.handshake(), Accepted)
    await communicator.send_to(text_data="hello")  # the application reads on: the accept stands
    await communicator.receive_nothing(0.05)
    assert sample("wsreject_handshakes_total", endpoint="metrics-open", outcome="accepted", status="101") == before + 1
    assert sample("wsreject_open_connections", endpoint="metrics-open") == opened + 1
    await communicator.disconnect()
    assert sample("wsreject_open_connections", endpoint="metrics-open") == opened
    assert CountingRouter.probes == 0


async def test_a_path_no_route_takes_is_unmatched_without_a_probe(app):
    before = sample("wsreject_handshakes_total", endpoint="(unmatched)", outcome="denied", status="404")
    result = await HandshakeCommunicator(app, "/m/nowhere/").handshake()
    assert isinstance(result, Denied) and result.status_code == 404
    assert sample("wsreject_handshakes_total", endpoint="(unmatched)", outcome="denied", status="404") == before + 1
    assert CountingRouter.probes == 0  # the routing's own miss said it


async def test_a_denial_before_routing_asks_the_routing_once(app):
    before = sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="denied", status="403")
    result = await HandshakeCommunicator(app, "/m/login/", headers=[(b"origin", b"https://evil.example")]).handshake()
    assert isinstance(result, Denied) and result.status_code == 403
    assert sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="denied", status="403") == before + 1
    assert CountingRouter.probes == 1


async def test_a_close_code_denial_is_a_denial_not_an_accept(app):
    accepted = sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="accepted", status="101")
    denied = sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="denied", status="401")
    opened = sample("wsreject_open_connections", endpoint="metrics-login")
    result = await HandshakeCommunicator(app, "/m/browser/login/").handshake(close_code=True)
    assert isinstance(result, Denied) and result.close_code == 4401
    assert sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="denied", status="401") == denied + 1
    assert sample("wsreject_handshakes_total", endpoint="metrics-login", outcome="accepted", status="101") == accepted
    assert sample("wsreject_open_connections", endpoint="metrics-login") == opened
