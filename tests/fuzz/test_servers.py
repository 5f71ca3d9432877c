"""The four properties over the wire: the demo on Daphne + wsreject and on uvicorn
(websockets-sansio, uvicorn's default), with ``DEBUG=False``, raw bytes on a socket.

The server may refuse a malformed request itself (a non-JSON ``4xx``: counted per server
in the figures); it may never answer ``5xx`` for client input, and whatever the
application answers must hold the same properties as in process. Tickets cannot be issued
into a server's process-local cache, so only forged tickets are sent here.

The model sees the request as each server passes it on: Daphne's path is autobahn's
``urlparse(target).path`` (``//ws/echo/`` is ``/echo/``, ``;params`` dropped), repeated
headers reach the application joined with ``, `` and ``Daphne-Root-Path`` sets ``root_path``;
uvicorn percent-decodes the target as is. Requests beyond websockets' limits are not sent
to uvicorn (it neither answers nor closes: see ``SANSIO_MAX_LINE``).

What the model predicts exactly is asserted only for *plain* requests (ASCII, no header
repeated, no ``Daphne-Root-Path``): servers differ in how they pass on the rest (Daphne
joins repeated headers with ``,``, uvicorn keeps them), which may turn a credential into
garbage — a denial the model did not foresee, never an accept (that is asserted always).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import pytest

from tests.support.demo import DEMO_APP, manage, prepare_demo
from tests.support.servers import Server, running_server

from . import model
from .checks import Outcome, accept_problems, response_problems, server_error_problem
from .harness import FIGURES, PHASES, run_property
from .requests import FuzzRequest, Renderer, asgi_view
from .strategies import FAMILIES
from .wire import handshake

pytestmark = [pytest.mark.server]

KINDS = ("daphne-wsreject", "uvicorn-websockets-sansio")
SECRET_KEY = "fuzz-secret-key-not-for-production-0123456789abcdef"


@dataclass
class Target:
    server: Server
    secrets: model.Secrets


@pytest.fixture(scope="module", params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    kind = request.param
    demo = prepare_demo(
        tmp_path_factory.mktemp(f"fuzz-{kind}"),
        {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": SECRET_KEY, "WSREJECT_LOG_LEVEL": "WARNING"},
    )
    out = manage(
        "shell", "-v", "0", "-c", "from tests.fuzz.demo_setup import main; main()",
        env={**demo.env, "WSREJECT_FUZZ_TOKENS": json.dumps(demo.tokens)},
    )  # fmt: skip
    secrets = model.Secrets(**json.loads(out.strip().splitlines()[-1]))
    with running_server(kind, DEMO_APP, env=demo.env) as server:
        yield Target(server, secrets)


def plain(headers: list[tuple[bytes, bytes]], target: bytes) -> bool:
    names = [name.lower() for name, _ in headers]
    return (
        target.isascii()
        and len(names) == len(set(names))
        and b"daphne-root-path" not in names
        and all(value.isascii() and value == value.strip(b" \t") and value.decode("ascii").isprintable() for _, value in headers)
    )


def root_path(kind: str, headers: list[tuple[bytes, bytes]]) -> str:
    """Daphne takes ``root_path`` from a ``Daphne-Root-Path`` request header (repeated ones
    joined with ``,``)."""
    if kind != "daphne-wsreject":
        return ""
    values = [v.decode("latin-1") for k, v in headers if k.lower() == b"daphne-root-path"]
    return unquote(",".join(values)) if values else ""


def scope_path(kind: str, raw_target: bytes, decoded: str) -> str:
    """The ASGI path a server makes of the request target. Daphne takes autobahn's
    ``urlparse(target).path``: a leading ``//x`` is a host (``//ws/echo/`` is ``/echo/``) and
    ``;params`` of the last segment are dropped; uvicorn percent-decodes the target as is."""
    if kind != "daphne-wsreject":
        return decoded
    try:
        return unquote(urlparse(raw_target.decode("utf-8", "replace")).path)
    except ValueError:  # autobahn cannot parse it either: it refuses the handshake
        return "\x00unparsable"


def scope_headers(kind: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers the application sees. Daphne (autobahn) keys them by the stripped,
    lower-cased name, joins repeated ones with ``, `` and drops names with ``_``; uvicorn
    passes them one by one (``asgi_view`` trims them)."""
    if kind != "daphne-wsreject":
        return asgi_view(b"/", headers).headers
    joined: dict[bytes, bytes] = {}
    for name, value in headers:
        key, value = name.strip().lower(), value.strip(b" \t")
        joined[key] = joined[key] + b", " + value if key in joined else value
    return [(key, value) for key, value in joined.items() if b"_" not in key]


#: websockets' request limits (uvicorn websockets-sansio): past them the server neither answers
#: nor closes — measured with uvicorn 0.54 / websockets 17.4 (a header line or request line
#: over 8192 bytes, more than 128 headers: the connection stays open, no response).
#: Such requests are not sent there (counted in the figures); Daphne gets them all.
SANSIO_MAX_LINE = 8192
SANSIO_MAX_HEADERS = 128


def over_sansio_limits(raw_target: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    if len(b"GET " + raw_target + b" HTTP/1.1") > SANSIO_MAX_LINE or len(headers) + 5 > SANSIO_MAX_HEADERS:
        return True
    return any(len(name) + 2 + len(value) > SANSIO_MAX_LINE for name, value in headers)


def server_answered(outcome: Outcome, route: model.Route | None) -> bool:
    """A refusal the server wrote itself: not the application's JSON (nor the teapot)."""
    if outcome.mode != "http" or outcome.is_json:
        return False
    return not (route is not None and route.endpoint == "teapot" and outcome.status == 418)


def make_check(target: Target):
    server = target.server
    kind = server.kind
    renderer = Renderer(target.secrets)

    def check(request: FuzzRequest) -> int:
        raw_target, headers = renderer.target(request), renderer.headers(request)
        if kind == "uvicorn-websockets-sansio" and over_sansio_limits(raw_target, headers):
            FIGURES.server_refusals[kind]["not sent: over websockets' line/header limits (the server hangs)"] += 1
            return 0
        path = scope_path(kind, raw_target, asgi_view(raw_target, headers).path)
        route = model.route(path, root_path(kind, headers))
        poke = route is not None and route.endpoint == "echo"
        outcome = handshake(server.host, server.port, raw_target, headers, poke=poke)
        sent = raw_target + b"".join(b"\r\n" + k + b": " + v for k, v in headers)
        view = asgi_view(raw_target, headers)
        user = model.user_of(scope_headers(kind, headers), view.query_string, target.secrets)
        by_server = server_answered(outcome, route)
        FIGURES.outcomes[kind][outcome.label()] += 1
        if by_server:
            FIGURES.server_refusals[kind][f"{outcome.status} {outcome.body[:70]!r}"] += 1
        problems = []
        if outcome.mode == "none":
            FIGURES.server_refusals[kind][f"no response ({outcome.note[:40]})"] += 1
        # 1
        problems += accept_problems(outcome, route, user)
        handshakes = 1
        if outcome.accepted and route is not None and route.routed_path != path:
            canonical = handshake(
                server.host, server.port, renderer.target(request.with_path(route.routed_path)), headers, poke=poke
            )
            handshakes += 1
            throttled = route.endpoint == "limited" and canonical.status == 429  # one budget for every spelling
            if not canonical.accepted and not throttled:
                problems.append(f"accepted, but the canonical {route.routed_path!r} gets {canonical.label()}")
        if not by_server and outcome.mode != "none" and plain(headers, raw_target):
            expected = model.expected_outcome(route, user, request.origin, None)
            if expected is not None and not expected.allows(outcome.status or 0):
                problems.append(f"status {outcome.label()}, the model expects {sorted(expected.statuses)} ({expected.why})")
        FIGURES.checks[("1-no-accept-beyond-canonical", kind)] += 1
        # 2
        problem = server_error_problem(outcome, route)
        if problem:
            problems.append(problem)
        if by_server and not 400 <= (outcome.status or 0) <= 499:
            problems.append(f"the server itself answered {outcome.status}")
        FIGURES.checks[("2-no-5xx-from-input", kind)] += 1
        # 3 and 4
        problems += response_problems(outcome, sent, app_answer=not by_server)
        FIGURES.checks[("3-valid-denials", kind)] += outcome.mode in ("http", "close_code")
        FIGURES.checks[("4-no-exception-text", kind)] += 1
        assert not problems, "\n".join(
            [f"{kind}: {request.describe()!r}", f"path {path!r}, user {user}, answer {outcome.label()} {outcome.note}",
             repr(outcome.wire[:500]), *problems]
        )  # fmt: skip
        return handshakes

    return check


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_properties_on_server(family: str, phase: str, target: Target) -> None:
    strategy = FAMILIES[family](valid_tickets=False)
    try:
        run_property(family, target.server.kind, phase, strategy, make_check(target))
    except BaseException:
        print(f"--- {target.server.kind} log (last 3000 characters) ---\n{target.server.log()[-3000:]}")
        raise
    assert target.server.alive(), f"{target.server.kind} died:\n{target.server.log()[-3000:]}"
