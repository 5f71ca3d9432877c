"""A rule covers every spelling of a path that reaches its consumer (in process).

The ground truth is the demo's real routing: its ``RouteNotFoundMiddleware`` and
Channels' ``URLRouter``s, run on a scope with the consumers replaced by recorders,
say which route each ``scope["path"]`` reaches. ``Router.resolve`` must agree on
every spelling (the access side resolves exactly as the routing will), and with
access rules in the database, the demo's full stack must refuse every spelling that
reaches a covered consumer and answer every other spelling exactly as without the
rule. Scope paths are what servers deliver (see :mod:`tests.security.spellings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.http import Http404
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from project.asgi import application
from project.routing import endpoints as demo_endpoints
from tests.helpers import bearer
from wsreject import DenyHandshake
from wsreject.endpoints import Router
from wsreject.handshake import Handshake
from wsreject.middleware import RouteNotFoundMiddleware
from wsreject.models import AccessRule
from wsreject.scope import HANDSHAKE_KEY
from wsreject.testing import Accepted, HandshakeCommunicator

from .spellings import scope_paths


@dataclass(frozen=True)
class Reached:
    """A route the routing called: its name, the denial mode around it, its URL kwargs."""

    name: str | None
    denial_mode: str | None
    kwargs: tuple[tuple[str, Any], ...]


def _route_not_found_middleware() -> RouteNotFoundMiddleware:
    app = application.application_mapping["websocket"]
    while not isinstance(app, RouteNotFoundMiddleware):
        app = app.inner
    return app


@pytest.fixture
def real_routing():
    """``reached(path, root_path)``: where the demo's real routing sends a handshake (None: 404).

    The consumers are replaced by recorders only while it runs, so the full stack can be
    driven in between."""
    calls: list[Reached] = []

    def recorder(name: str | None):
        async def app(scope, receive, send):
            handshake = scope.get(HANDSHAKE_KEY)
            kwargs = tuple(sorted(scope["url_route"]["kwargs"].items()))
            calls.append(Reached(name, handshake.denial_mode if handshake else None, kwargs))

        return app

    recorders = [(pattern, recorder(pattern.name)) for pattern in demo_endpoints]
    outer = _route_not_found_middleware()

    async def nothing_to_receive():
        return {"type": "websocket.connect"}

    async def discard(message):
        pass

    def reached(path: str, root_path: str = "") -> Reached | None:
        calls.clear()
        handshake = Handshake(nothing_to_receive, discard)
        scope = {"type": "websocket", "path": path, "root_path": root_path, "headers": [], HANDSHAKE_KEY: handshake}
        with pytest.MonkeyPatch.context() as patch:
            for pattern, app in recorders:  # both mounts share these URLPattern objects
                patch.setattr(pattern, "callback", app)
            try:
                async_to_sync(outer)(scope, nothing_to_receive, discard)
            except (ValueError, Http404, DenyHandshake):
                return None  # the outermost router's "no route" (404 in the stack)
        assert len(calls) <= 1
        return calls[0] if calls else None

    return reached


ROUTER = Router(application)  # built before any test patches the routes


def resolved(path: str, root_path: str = "") -> Reached | None:
    """Where ``Router.resolve`` says the handshake goes, in the terms of :class:`Reached`."""
    routed = ROUTER.resolve({"type": "websocket", "path": path, "root_path": root_path})
    if routed is None:
        return None
    remaining, kwargs = routed.path, {}
    for pattern in routed.endpoint.patterns:
        match = pattern.match(remaining.lstrip("/"))
        assert match, f"the routed path {routed.path!r} does not match its own endpoint"
        remaining, kwargs = match[0], {**kwargs, **match[2]}
    return Reached(routed.endpoint.name, routed.endpoint.denial_mode, tuple(sorted(kwargs.items())))


ROOT_PATHS = ("", "/prefix", "/prefix/")


@pytest.mark.parametrize("root_path", ROOT_PATHS)
def test_router_resolves_every_spelling_as_the_routing_does(real_routing, root_path):
    paths = [root_path + path for path in scope_paths()] + ["/ws/rooms/lobby/", "/other/ws/rooms/lobby/"]
    reached_rooms = 0
    for path in paths:
        truth = real_routing(path, root_path)
        assert resolved(path, root_path) == truth, f"root_path={root_path!r} path={path!r}"
        reached_rooms += truth is not None and truth.name == "rooms"
    assert reached_rooms >= 15, "the spellings must exercise the room route"


# The brief's spellings, explicitly: (scope path, route name reached or None, routed path, mode)
EXPLICIT = [
    ("/ws/rooms/lobby/", "rooms", "/ws/rooms/lobby/", None),
    ("/ws//rooms/lobby/", "rooms", "/ws/rooms/lobby/", None),
    ("//ws/rooms/lobby/", "rooms", "/ws/rooms/lobby/", None),
    ("/ws///rooms/lobby/", "rooms", "/ws/rooms/lobby/", None),
    ("///ws///rooms/lobby/", "rooms", "/ws/rooms/lobby/", None),
    ("/ws/rooms/LOBBY/", "rooms", "/ws/rooms/LOBBY/", None),  # the slug is any case: the room lookup decides
    ("/ws/browser//rooms/lobby/", "rooms", "/ws/browser/rooms/lobby/", "close_code"),
    ("/ws/browser/rooms/lobby/", "rooms", "/ws/browser/rooms/lobby/", "close_code"),
    ("/ws/rooms/lobby", None, None, None),
    ("/ws/rooms/lobby//", None, None, None),
    ("/ws/rooms//lobby/", None, None, None),  # a slash inside a route: only leading ones are stripped
    ("/WS/rooms/lobby/", None, None, None),
    ("/ws/Rooms/lobby/", None, None, None),
    ("/ws/./rooms/lobby/", None, None, None),
    ("/ws/../ws/rooms/lobby/", None, None, None),
    ("/ws//browser/rooms/lobby/", None, None, None),
    ("/ws/rooms/lobby\x00/", None, None, None),
]


@pytest.mark.parametrize(("path", "name", "routed_path", "mode"), EXPLICIT)
def test_router_resolve_explicit_spellings(path, name, routed_path, mode):
    routed = ROUTER.resolve({"type": "websocket", "path": path})
    if name is None:
        assert routed is None
        return
    assert (routed.endpoint.name, routed.path, routed.endpoint.denial_mode) == (name, routed_path, mode)


@pytest.mark.parametrize(
    ("path", "root_path", "routed_path"),
    [
        ("/prefix/ws//rooms/lobby/", "/prefix", "/ws/rooms/lobby/"),
        ("/prefix//ws/rooms/lobby/", "/prefix", "/ws/rooms/lobby/"),
        ("/prefixws/rooms/lobby/", "/prefix", "/ws/rooms/lobby/"),  # Channels checks startswith only
        ("/prefix/ws/rooms/lobby/", "/prefix/", "/ws/rooms/lobby/"),
        ("/ws/rooms/lobby/", "/prefix", None),  # outside the root path: the routing refuses it
        ("/PREFIX/ws/rooms/lobby/", "/prefix", None),
    ],
)
def test_router_resolve_under_a_root_path(path, root_path, routed_path):
    routed = ROUTER.resolve({"type": "websocket", "path": path, "root_path": root_path})
    assert (routed.path if routed else None) == routed_path


_SEGMENT = st.sampled_from(["ws", "WS", "Ws", "browser", "rooms", "Rooms", "lobby", "LOBBY", "limited", "echo", ".", "..", ""])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    segments=st.lists(_SEGMENT, min_size=1, max_size=5),
    slashes=st.lists(st.integers(min_value=1, max_value=3), min_size=6, max_size=6),
    root_path=st.sampled_from(ROOT_PATHS),
)
def test_router_agrees_with_the_routing_on_generated_spellings(real_routing, segments, slashes, root_path):
    path = root_path + "".join("/" * count + segment for count, segment in zip(slashes, segments)) + "/" * slashes[-1]
    assert resolved(path, root_path) == real_routing(path, root_path)


# --- the rules, enforced by the demo's full stack ---------------------------------------------


def handshake(path: str, token: str | None, root_path: str = "") -> tuple[Any, ...]:
    """One in-process handshake on the demo with ``scope["path"]`` exactly ``path``: a digest."""

    async def run():
        communicator = HandshakeCommunicator(application, "/", headers=bearer(token) if token else [])
        communicator.scope.update(path=path, raw_path=path.encode("utf-8", "surrogateescape"), root_path=root_path)
        result = await communicator.handshake(close_code=True)
        if isinstance(result, Accepted):
            # Every consumer here greets but the echo: a greeting may be slow on a loaded machine,
            # so only where none is expected is its absence concluded quickly.
            quiet = path.rstrip("/").endswith("/echo")
            try:
                greeting = await communicator.receive_json_from(timeout=0.5 if quiet else 20)
            except TimeoutError:  # no greeting (echo): the communicator cancelled the consumer
                return (101, None)
            await communicator.disconnect()
            return (101, greeting)
        await communicator.wait(1)
        if result.denial_mode == "close_code":
            return ("close", result.close_code, result.json())
        return (result.status_code, result.json() if result.body else None, result.header("retry-after"))

    return async_to_sync(run)()


RULE_PATHS = [
    "/ws/rooms/lobby/",
    "/ws//rooms/lobby/",
    "//ws/rooms/lobby/",
    "/ws///rooms/lobby/",
    "///ws//rooms/lobby/",
    "/ws/rooms/LOBBY/",
    "/ws/rooms/dev/",
    "/ws/rooms/nope/",
    "/ws/rooms/lobby",
    "/ws/rooms/lobby//",
    "/ws/rooms//lobby/",
    "/WS/rooms/lobby/",
    "/ws/Rooms/lobby/",
    "/ws/./rooms/lobby/",
    "/ws/../ws/rooms/lobby/",
    "/rooms/lobby/",
    "/ws/browser/rooms/lobby/",
    "/ws/browser//rooms/lobby/",
    "//ws/browser///rooms/dev/",
    "/ws/browser/rooms/lobby",
    "/ws/private/",
    "/ws/echo/",
]
ROOT_CASES = [(path, "") for path in RULE_PATHS] + [
    ("/prefix/ws//rooms/lobby/", "/prefix"),
    ("/prefix//ws/rooms/dev/", "/prefix"),
    ("/prefix/ws/browser//rooms/lobby/", "/prefix"),
    ("/ws/rooms/lobby/", "/prefix"),
]


def answers(token: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {(path, root): handshake(path, token, root) for path, root in ROOT_CASES}


def test_rules_cover_every_spelling_that_reaches_the_consumer(demo_tokens, real_routing):
    alice = demo_tokens["alice"]
    truth = {(path, root): real_routing(path, root) for path, root in ROOT_CASES}
    without_rules = answers(alice)
    assert without_rules[("/ws//rooms/lobby/", "")] == (101, {"room": "lobby", "user": "alice"})
    assert without_rules[("/ws/rooms/lobby", "")] == (404, {"detail": "Not Found"}, None)
    assert without_rules[("/ws/rooms/LOBBY/", "")] == (404, {"detail": "Room not found"}, None)

    # A disabled prefix rule: every spelling that reaches RoomConsumer under /ws/ is 503.
    AccessRule.objects.create(endpoint="/ws/rooms/*", enabled=False, retry_after=77, disabled_detail="Rooms closed (prefix)")
    with_prefix_rule = answers(alice)
    for case, reached in truth.items():
        if reached is not None and reached.name == "rooms" and reached.denial_mode is None:
            assert with_prefix_rule[case] == (503, {"detail": "Rooms closed (prefix)"}, "77"), case
        else:
            assert with_prefix_rule[case] == without_rules[case], case

    # A disabled route-name rule: both mounts, the browser one in close-code mode.
    AccessRule.objects.all().delete()
    AccessRule.objects.create(endpoint="rooms", enabled=False, retry_after=78, disabled_detail="Rooms closed (name)")
    with_name_rule = answers(alice)
    covered = 0
    for case, reached in truth.items():
        if reached is not None and reached.name == "rooms":
            expected = (
                ("close", 4503, {"detail": "Rooms closed (name)"})
                if reached.denial_mode == "close_code"
                else (503, {"detail": "Rooms closed (name)"}, "78")
            )
            assert with_name_rule[case] == expected, case
            covered += 1
        else:
            assert with_name_rule[case] == without_rules[case], case
    assert covered >= 10


def test_group_rule_covers_every_spelling_and_keeps_members_in(demo_tokens, real_routing):
    """A rule restricting rooms to a group: bob is refused with the rule's answer on every
    spelling reaching RoomConsumer; alice (a member) gets exactly what she got without it."""
    alice_before = answers(demo_tokens["alice"])
    rule = AccessRule.objects.create(endpoint="rooms", deny_status=404, deny_detail="No such place")
    rule.groups.add(Group.objects.get(name="members"))
    assert answers(demo_tokens["alice"]) == alice_before
    refused = 0
    for path, root in ROOT_CASES:
        reached = real_routing(path, root)
        if reached is None or reached.name != "rooms":
            continue
        bob = handshake(path, demo_tokens["bob"], root)
        if reached.denial_mode == "close_code":
            assert bob == ("close", 4404, {"detail": "No such place"}), path
        else:
            assert bob == (404, {"detail": "No such place"}, None), path
        refused += 1
    assert refused >= 10
