"""Behind real nginx and Caddy whose backend is the demo app itself: the app takes the edge's vouch.

The demo runs on Daphne + wsreject and trusts ``127.0.0.1`` only (the proxies' address);
the edge decides each handshake once — the consumer sees the vouched user, and the
demo's ``3/60s`` throttle lets exactly three handshakes through, not one and a half.
A client that sends a vouch to the app itself from another address (``127.0.0.2``) is
decided as if it had none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.security.conftest import demo_template  # noqa: F401 - the session's demo database template
from tests.security.deployment import demo_copy, django_shell
from tests.support.processes import Server
from tests.support.servers import running_server
from tests.support.wsclient import Accepted, build_request, raw_handshake, ws_connect
from wsreject.edge.signing import VOUCH_HEADER, vouch

from .proxies import PROXIES, running_edge

pytestmark = pytest.mark.server

OUTSIDE = "127.0.0.2"  # a loopback address the demo does not trust


@dataclass(frozen=True)
class Stack:
    proxy: str
    app: Server
    edge: Server
    tokens: dict[str, str]
    alice: int


@pytest.fixture(scope="module", params=PROXIES)
def stack(request, demo_template, tmp_path_factory) -> Iterator[Stack]:  # noqa: F811
    with demo_copy(demo_template, tmp_path_factory.mktemp(f"vouch-{request.param}")) as deployment:
        env = {**deployment.env, "WSREJECT_EDGE_TRUSTED_PROXIES": "127.0.0.1"}
        alice = django_shell(env, "from django.contrib.auth.models import User\nresult(User.objects.get(username='alice').pk)")
        with (
            running_server("daphne-wsreject", "project.asgi:application", env=env) as app,
            running_edge(request.param, env, app=app.address) as edge,  # the backend is the app itself
        ):
            yield Stack(request.param, app, edge, dict(deployment.tokens), int(alice))


async def status_from(address: tuple[str, int], local_host: str, path: str, headers: list[tuple[str, str]]) -> int:
    """The status a handshake sent from ``local_host`` gets."""
    request, _ = build_request(*address, path, headers)
    reader, writer = await asyncio.open_connection(*address, local_addr=(local_host, 0))
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1])
    finally:
        writer.close()


async def test_the_backend_app_sees_the_user_the_edge_admitted(stack: Stack) -> None:
    result = await ws_connect(stack.edge.url("/ws/private/"), headers=[("Authorization", f"Bearer {stack.tokens['alice']}")])
    assert isinstance(result, Accepted), str(result)
    async with result:
        assert await result.recv_json() == {"user": "alice"}


async def test_a_throttled_endpoint_counts_each_handshake_through_the_edge_once(stack: Stack) -> None:
    for attempt in range(3):  # 3/60s: decided twice, the second would be refused already
        result = await ws_connect(stack.edge.url("/ws/limited/"))
        assert isinstance(result, Accepted), f"attempt {attempt + 1} through {stack.proxy}: {result}"
        async with result:
            assert await result.recv_json() == {"ok": True}
    through = await raw_handshake(*stack.edge.address, "/ws/limited/")
    assert through.status == 429 and through.header_values("retry-after")
    direct = await raw_handshake(*stack.app.address, "/ws/limited/")  # the same budget, spent exactly
    assert direct.status == 429


async def test_a_vouch_sent_to_the_app_by_anyone_but_the_proxy_is_ignored(stack: Stack) -> None:
    headers = [(VOUCH_HEADER, vouch(b"/ws/private/", b"", stack.alice))]
    assert await status_from(stack.app.address, OUTSIDE, "/ws/private/", headers) == 401
    assert await status_from(stack.app.address, OUTSIDE, "/ws/private/", []) == 401
    # The very same vouch from the configured proxy's address is taken: only the peer differed.
    assert await status_from(stack.app.address, "127.0.0.1", "/ws/private/", headers) == 101
