"""Behind real nginx and Caddy, with the configurations ``wsreject_edge_config`` prints.

For each proxy: a fresh demo database, the demo on Daphne + wsreject (it serves the
forward-auth view), a WebSocket backend that is not Django (:mod:`tests.edge.echo_backend`)
and the proxy in front. Every denial of the scenario must reach the client as wsreject
answers it directly — status, ``WWW-Authenticate``/``Retry-After``, content headers and
body — including 429 and 503, which nginx's ``auth_request`` alone cannot pass; admitted
handshakes reach the backend with the user's name, and only the edge can set it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.conformance.cases import CASES, Case, denial
from tests.security.conftest import demo_template  # noqa: F401 - the session's demo database template
from tests.security.deployment import demo_copy, django_shell
from tests.support.processes import HOST, Server, free_port, running_process
from tests.support.servers import running_server
from tests.support.wsclient import Accepted, raw_handshake, ws_connect

from .proxies import PROXIES, running_edge

pytestmark = pytest.mark.server

#: The scenario's denials decided before the consumer connects (12 raises in connect(): not at the edge).
DENIAL_SCENARIOS = (2, 3, 6, 8, 14, 15)
DISABLED_PATH = "/ws/staff/"
DISABLED = denial(503, "Down for maintenance", [("retry-after", "9")])
COMPARED = ("www-authenticate", "retry-after", "content-type", "content-length")


@dataclass(frozen=True)
class Stack:
    proxy: str
    app: Server
    backend: Server
    edge: Server
    tokens: dict[str, str]
    env: dict[str, str]


@pytest.fixture(scope="module", params=PROXIES)
def stack(request, demo_template, tmp_path_factory) -> Iterator[Stack]:  # noqa: F811
    with demo_copy(demo_template, tmp_path_factory.mktemp(f"edge-{request.param}")) as deployment:
        django_shell(
            deployment.env,
            f"from wsreject.models import AccessRule\nAccessRule.objects.create(endpoint={DISABLED_PATH!r}, enabled=False, retry_after=9)",
        )
        with (
            running_server("daphne-wsreject", "project.asgi:application", env=deployment.env) as app,
            running_process(
                lambda port: [sys.executable, "-m", "tests.edge.echo_backend", str(port)], label="echo-backend"
            ) as backend,
            running_edge(request.param, deployment.env, app=app.address, backend=backend.address) as edge,
        ):
            yield Stack(request.param, app, backend, edge, dict(deployment.tokens), dict(deployment.env))


def request_of(case: Case, tokens: dict[str, str]) -> tuple[str, list[tuple[str, str]]]:
    resolved = case.resolve(tokens)
    headers = list(resolved.headers)
    if resolved.origin is not None:
        headers.append(("Origin", resolved.origin))
    return resolved.path, headers


def wire(response: Any) -> tuple[Any, ...]:
    return (response.status, *(tuple(response.header_values(name)) for name in COMPARED), response.body)


def edge_problems(proxy: str, expect: Any, response: Any) -> list[str]:
    """What differs from the direct answer's expectation. Caddy keeps the client's connection
    open after a denial (complete, with its content-length); nginx closes it as wsreject does."""
    return (replace(expect, closed=None) if proxy == "caddy" else expect).check_raw(response)


@pytest.mark.parametrize("scenario", DENIAL_SCENARIOS)
async def test_a_denial_through_the_edge_is_the_direct_one(stack: Stack, scenario: int) -> None:
    for case in [c for c in CASES if c.scenario == scenario]:
        path, headers = request_of(case, stack.tokens)
        direct = await raw_handshake(*stack.app.address, path, headers)
        edged = await raw_handshake(*stack.edge.address, path, headers)
        assert case.expect.check_raw(direct) == [], f"{case.id} direct"
        assert edge_problems(stack.proxy, case.expect, edged) == [], f"{case.id} through {stack.proxy}: {edged}"
        assert wire(edged) == wire(direct), case.id


async def test_a_disabled_rule_is_503_with_retry_after_through_the_edge(stack: Stack) -> None:
    headers = [("Authorization", f"Bearer {stack.tokens['carol']}")]
    direct = await raw_handshake(*stack.app.address, DISABLED_PATH, headers)
    edged = await raw_handshake(*stack.edge.address, DISABLED_PATH, headers)
    assert DISABLED.check_raw(direct) == []
    assert edge_problems(stack.proxy, DISABLED, edged) == [], str(edged)
    assert wire(edged) == wire(direct)


async def test_the_edge_counts_handshakes_and_passes_429_with_retry_after(stack: Stack) -> None:
    case = next(c for c in CASES if c.scenario == 13)
    path, headers = request_of(case, stack.tokens)
    for attempt in range(case.repeat - 1):
        result = await ws_connect(stack.edge.url(path), headers=headers)
        assert isinstance(result, Accepted), f"attempt {attempt + 1}: {result}"
        async with result:
            assert (await result.recv_json())["backend"] == "echo"
    edged = await raw_handshake(*stack.edge.address, path, headers)
    assert edge_problems(stack.proxy, case.expect, edged) == [], str(edged)
    # The edge's attempts counted as live handshakes: the app itself refuses the next one.
    direct = await raw_handshake(*stack.app.address, path, headers)
    assert direct.status == 429 and direct.body == edged.body


async def test_an_admitted_handshake_reaches_the_backend_with_the_users_name(stack: Stack) -> None:
    result = await ws_connect(stack.edge.url("/ws/private/"), headers=[("Authorization", f"Bearer {stack.tokens['alice']}")])
    assert isinstance(result, Accepted), str(result)
    async with result:
        report = await result.recv_json()
        assert report["backend"] == "echo" and report["path"] == "/ws/private/"
        assert report["x-auth-request-user"] == ["alice"]
        assert len(report["x-wsreject-vouch"]) == 1
        await result.send("ping")
        assert await result.recv() == "ping"


async def test_a_client_cannot_set_the_identity_headers_itself(stack: Stack) -> None:
    forged = [("X-Auth-Request-User", "mallory"), ("X-Auth-Request-Email", "m@evil.example"), ("X-Wsreject-Vouch", "forged")]
    result = await ws_connect(stack.edge.url("/ws/echo/"), headers=forged)
    assert isinstance(result, Accepted), str(result)
    async with result:
        report = await result.recv_json()
    # Anonymous: no value (nginx leaves an empty header out; Caddy sends it empty).
    assert report["x-auth-request-user"] in ([], [""]) and report["x-auth-request-email"] in ([], [""])
    assert report["x-wsreject-vouch"] != ["forged"] and len(report["x-wsreject-vouch"]) == 1


async def test_the_endpoints_cannot_be_called_through_the_edge(stack: Stack) -> None:
    for path in ("/wsreject/edge/auth/", "/wsreject/edge/auth/nginx/", "/wsreject/edge/denial/"):
        response = await raw_handshake(*stack.edge.address, path, [("X-Original-URI", "/ws/echo/")])
        assert response.status == 404, f"{path} through {stack.proxy}: {response.status}"


async def test_an_unreachable_wsreject_is_503_never_an_admission(stack: Stack) -> None:
    with running_edge(stack.proxy, stack.env, app=(HOST, free_port()), backend=stack.backend.address) as edge:
        response = await raw_handshake(*edge.address, "/ws/echo/")
    assert response.status == 503, str(response)
    assert response.header_values("retry-after") == ["5"]
    assert response.json() == {"detail": "Service Unavailable"}
