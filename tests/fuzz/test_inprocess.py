"""The four properties in process: ``project.asgi.application`` through ``HandshakeCommunicator``.

Each example is rendered as a server would hand it to the application (path
percent-decoded, names lower-cased, values trimmed, subprotocols split), handed to the
demo, and checked:

1. the answer is one the model allows (``tests/fuzz/model.py``: routing, credentials,
   the demo's consumers and the access rules installed here), an accept only where the
   request carries exactly a valid credential on login-required endpoints, and the
   *canonical* request — the path as the router consumed it, same headers and query —
   gets the same status; ``wsreject.endpoints.Router`` agrees with the model's routing;
2. no 5xx but the demo's deliberate ones;
3. every JSON denial is valid;
4. nothing of an exception on the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from project.asgi import application
from wsreject.authentication.tickets import issue_ticket
from wsreject.endpoints import Router
from wsreject.testing import Accepted, HandshakeCommunicator

from . import model
from .checks import Outcome, accept_problems, response_problems, server_error_problem
from .demo_setup import install
from .harness import FIGURES, PHASES, run_property
from .requests import AsgiView, FuzzRequest, Renderer, asgi_view
from .strategies import FAMILIES

TARGET = "in-process"
TIMEOUT = 10.0
ROUTER = Router(application)


@pytest.fixture
def secrets(demo_tokens: dict[str, str]) -> model.Secrets:
    return model.Secrets(**install(demo_tokens))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def handshake(view: AsgiView) -> Outcome:
    communicator = HandshakeCommunicator(application, "/", headers=view.headers, subprotocols=view.subprotocols)
    communicator.scope.update(path=view.path, raw_path=view.raw_path, query_string=view.query_string)
    try:
        result = await communicator.handshake(timeout=TIMEOUT)
        if not isinstance(result, Accepted):
            wire = b"".join(k + b": " + v + b"\r\n" for k, v in result.headers) + result.body
            return Outcome(result.status_code, "http", list(result.headers), result.body, wire=wire)
        await communicator.send_input({"type": "websocket.receive", "text": "{}"})
        first = await communicator.receive_output(TIMEOUT)
        if first["type"] == "websocket.close":
            return Outcome(101, "accepted", note=f"closed at once: {first}")
        text = first.get("text") or ""
        greeting: Any = json.loads(text) if text else first.get("bytes")
        if isinstance(greeting, dict) and set(greeting) == {"detail"}:
            close = await communicator.receive_output(TIMEOUT)
            code = close.get("code") or 0
            if close["type"] == "websocket.close" and 4000 <= code <= 4999:
                reason = close.get("reason") or ""
                return Outcome(code - 4000, "close_code", body=text.encode(), wire=text.encode() + reason.encode(), reason=reason)
        return Outcome(101, "accepted", greeting=greeting, wire=text.encode())
    finally:
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        try:
            await communicator.wait(TIMEOUT)
        except TimeoutError:
            communicator.future.cancel()


def router_problem(view: AsgiView, route: model.Route | None) -> str | None:
    routed = ROUTER.resolve({"type": "websocket", "path": view.path})
    mine = None if route is None else (route.endpoint, route.routed_path, route.mount == "browser")
    theirs = None if routed is None else (routed.endpoint.name, routed.path, routed.endpoint.denial_mode == "close_code")
    return None if mine == theirs else f"Router resolves {view.path!r} to {theirs}, the model to {mine}"


def make_check(secrets: model.Secrets, loop: asyncio.AbstractEventLoop):
    issued: dict[str, model.Ticket] = {}

    def new_ticket(user: str, origin: str | None) -> str:
        from django.contrib.auth import get_user_model

        ticket, _ = issue_ticket(get_user_model().objects.get(username=user), origin=origin)
        issued[ticket] = model.Ticket(user, origin)
        return ticket

    renderer = Renderer(secrets, issue_ticket=new_ticket)

    def run(request: FuzzRequest) -> tuple[AsgiView, bytes, Outcome, str]:
        target, headers = renderer.target(request), renderer.headers(request)
        view = asgi_view(target, headers)
        outcome = loop.run_until_complete(handshake(view))
        user = model.user_of(view.headers, view.query_string, secrets, issued)
        wire_request = target + b"".join(b"\r\n" + k + b": " + v for k, v in headers)
        return view, wire_request, outcome, user

    def check(request: FuzzRequest) -> int:
        caches["throttle"].clear()  # /ws/limited/ allows 3 a minute: each example starts afresh
        view, sent, outcome, user = run(request)
        route = model.route(view.path)
        FIGURES.outcomes[TARGET][outcome.label()] += 1
        problems = []
        # 1: the model, the canonical request, the Router
        expected = model.expected_outcome(route, user, request.origin, view.subprotocols)
        if expected is not None and not expected.allows(outcome.status or 0):
            problems.append(f"status {outcome.label()}, the model expects {sorted(expected.statuses)} ({expected.why})")
        problems += accept_problems(outcome, route, user)
        problem = router_problem(view, route)
        if problem:
            problems.append(problem)
        handshakes = 1
        if route is not None and route.routed_path != view.path:
            canonical_view, _, canonical, _ = run(request.with_path(route.routed_path))
            handshakes += 1
            if canonical.status != outcome.status or canonical.mode != outcome.mode:
                problems.append(
                    f"{outcome.label()} ({outcome.mode}), but the canonical {canonical_view.path!r} gets {canonical.label()} ({canonical.mode})"
                )
        FIGURES.checks[("1-no-accept-beyond-canonical", TARGET)] += 1
        # 2
        problem = server_error_problem(outcome, route)
        if problem:
            problems.append(problem)
        FIGURES.checks[("2-no-5xx-from-input", TARGET)] += 1
        # 3 and 4
        problems += response_problems(outcome, sent, app_answer=True)
        if outcome.mode == "http" and not outcome.is_json and (route is None or route.endpoint != "teapot"):
            problems.append(f"a denial that is not JSON: {outcome.headers!r} {outcome.body[:100]!r}")
        FIGURES.checks[("3-valid-denials", TARGET)] += outcome.mode in ("http", "close_code")
        FIGURES.checks[("4-no-exception-text", TARGET)] += 1
        assert not problems, "\n".join([request.describe(), f"path {view.path!r}, user {user}", *problems])
        return handshakes

    return check


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_properties_in_process(family: str, phase: str, secrets: model.Secrets, loop: asyncio.AbstractEventLoop) -> None:
    run_property(family, TARGET, phase, FAMILIES[family](), make_check(secrets, loop))
