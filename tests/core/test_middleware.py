"""ASGI middleware (wsreject/middleware.py) around tiny raw ASGI apps."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.routing import URLRouter
from django.core.exceptions import DisallowedHost, PermissionDenied, SuspiciousOperation
from django.http import Http404
from django.urls import path

from tests.helpers import bearer
from wsreject import DenialResponse, DenyHandshake, DenyWithResponse
from wsreject.authentication import CredentialsMiddleware
from wsreject.denial import denial_for_exception
from wsreject.middleware import (
    DenialMiddleware,
    DenialMiddlewareStack,
    LoginRequiredMiddleware,
    OriginMiddleware,
    PermissionMiddleware,
    PermissionRequiredMiddleware,
    RouteNotFoundMiddleware,
)
from wsreject.permissions import AllowAny, IsAuthenticated, IsStaff
from wsreject.testing import HandshakeCommunicator

from .asgi_apps import CountingConsumer, accept_app, sleeping_app
from .util import Recorder, challenge_for, denial_headers, disconnect, handshake, json_body, ws_scope

SECRET = "hunter2-secret-internal-state"

# The recommended stack reads the admin's access rules (cached; the database on a cold cache).
uses_stack = pytest.mark.django_db(transaction=True)


def raising(exc, *, receive_first=False):
    async def app(scope, receive, send):
        if receive_first:
            await receive()
        raise exc

    return app


# --- exceptions to denials ---------------------------------------------------------------------

EXCEPTION_CASES = {
    "DenyHandshake": (DenyHandshake(409, "Conflict here", headers={"X-Why": "because"}), 409, "Conflict here", [(b"x-why", b"because")]),
    "Http404": (Http404(SECRET), 404, "Not Found", []),
    "PermissionDenied": (PermissionDenied(SECRET), 403, "Forbidden", []),
    "SuspiciousOperation": (SuspiciousOperation(SECRET), 400, "Bad Request", []),
    "DisallowedHost": (DisallowedHost(SECRET), 400, "Bad Request", []),
    "RuntimeError": (RuntimeError(SECRET), 500, "Internal Server Error", []),
    "KeyError": (KeyError(SECRET), 500, "Internal Server Error", []),
    "TimeoutError-of-its-own": (TimeoutError(SECRET), 503, "Service Unavailable", [(b"retry-after", b"5")]),
}


@pytest.mark.parametrize("receive_first", [False, True], ids=["before-receive", "after-receive"])
@pytest.mark.parametrize("exc,status,detail,extra", EXCEPTION_CASES.values(), ids=EXCEPTION_CASES.keys())
async def test_exception_before_accept_becomes_its_denial(caplog, exc, status, detail, extra, receive_first):
    caplog.set_level(logging.INFO)
    _, result = await handshake(DenialMiddleware(raising(exc, receive_first=receive_first)))
    assert not result.accepted
    assert result.denial_mode == "http"
    assert result.status_code == status
    body = json_body(detail)
    assert result.body == body
    assert result.headers == denial_headers(body, *extra)
    if status != 409:  # the exception's own text never reaches the client
        assert SECRET.encode() not in result.body
        assert all(SECRET.encode() not in value for _, value in result.headers)


async def test_unexpected_error_is_logged_with_traceback_on_wsreject(caplog):
    caplog.set_level(logging.INFO)
    await handshake(DenialMiddleware(raising(RuntimeError(SECRET))))
    errors = [r for r in caplog.records if r.name == "wsreject" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[1].args == (SECRET,)


@pytest.mark.parametrize(
    "exc,logger_name",
    [(SuspiciousOperation(SECRET), "django.security.SuspiciousOperation"), (DisallowedHost(SECRET), "django.security.DisallowedHost")],
    ids=["SuspiciousOperation", "DisallowedHost"],
)
async def test_suspicious_operation_is_logged_on_django_security(caplog, exc, logger_name):
    caplog.set_level(logging.INFO)
    await handshake(DenialMiddleware(raising(exc)))
    security = [r for r in caplog.records if r.name == logger_name]
    assert len(security) == 1
    assert security[0].levelno == logging.ERROR
    assert SECRET in security[0].getMessage()


async def test_expected_denials_are_not_logged_as_errors(caplog):
    caplog.set_level(logging.INFO)
    await handshake(DenialMiddleware(raising(DenyHandshake(401))))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_deny_with_response_keeps_its_response():
    response = DenialResponse(418, body=b"teapot")
    assert denial_for_exception(DenyWithResponse(response), ws_scope()) is response


async def test_the_middleware_receives_connect_first_for_an_app_that_never_receives():
    recorder = Recorder()
    await DenialMiddleware(raising(DenyHandshake(403)))(ws_scope(), recorder.receive, recorder.send)
    assert recorder.receive_calls == 1
    assert recorder.types == ["websocket.http.response.start", "websocket.http.response.body"]


async def test_the_middleware_does_not_receive_connect_twice():
    recorder = Recorder()
    await DenialMiddleware(raising(DenyHandshake(403), receive_first=True))(ws_scope(), recorder.receive, recorder.send)
    assert recorder.receive_calls == 1
    assert recorder.types == ["websocket.http.response.start", "websocket.http.response.body"]


async def test_a_client_gone_before_connect_gets_nothing():
    recorder = Recorder(incoming=[{"type": "websocket.disconnect", "code": 1006}])
    await DenialMiddleware(raising(DenyHandshake(403)))(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent == []


async def test_error_after_accept_closes_with_1011(caplog):
    caplog.set_level(logging.INFO)

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError(SECRET)

    recorder = Recorder()
    await DenialMiddleware(app)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1011}]
    errors = [r for r in caplog.records if r.name == "wsreject" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "1011" in errors[0].getMessage()


async def test_deny_handshake_after_accept_also_closes_with_1011():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise DenyHandshake(403)

    recorder = Recorder()
    await DenialMiddleware(app)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1011}]


@pytest.mark.parametrize(
    "answer",
    [
        [{"type": "websocket.close", "code": 1000}],
        [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1000}],
        [
            {"type": "websocket.http.response.start", "status": 403, "headers": []},
            {"type": "websocket.http.response.body", "body": b""},
        ],
    ],
    ids=["closed-before-accept", "accepted-and-closed", "http-response"],
)
async def test_error_after_the_answer_is_only_logged(caplog, answer):
    caplog.set_level(logging.INFO)

    async def app(scope, receive, send):
        await receive()
        for message in answer:
            await send(message)
        raise RuntimeError(SECRET)

    recorder = Recorder()
    await DenialMiddleware(app)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent == answer
    errors = [r for r in caplog.records if r.name == "wsreject" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "after the handshake was answered" in errors[0].getMessage()


# --- non-websocket scopes pass through untouched -----------------------------------------------


def passthrough_recorder():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope)

    return seen, inner


HTTP_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "path": "/nowhere/",
    "raw_path": b"/nowhere/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"origin", b"https://evil.example"), (b"authorization", b"Bearer abc"), (b"cookie", b"sessionid=x")],
    "client": ["127.0.0.1", 1],
    "server": ["127.0.0.1", 80],
}
LIFESPAN_SCOPE = {"type": "lifespan", "asgi": {"version": "3.0"}}

WRAPPERS = {
    "DenialMiddleware": lambda inner: DenialMiddleware(inner, denial_mode="close_code", decision_timeout=0.01),
    "OriginMiddleware": lambda inner: OriginMiddleware(inner, allowed_origins=["https://ok.example"], allow_missing=False),
    "RouteNotFoundMiddleware": RouteNotFoundMiddleware,
    "LoginRequiredMiddleware": LoginRequiredMiddleware,
    "PermissionMiddleware": lambda inner: PermissionMiddleware(inner, IsStaff),
    "DenialMiddlewareStack": lambda inner: DenialMiddlewareStack(inner, allowed_origins=["https://ok.example"]),
}


@pytest.mark.parametrize("scope", [HTTP_SCOPE, LIFESPAN_SCOPE], ids=["http", "lifespan"])
@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
async def test_non_websocket_scopes_pass_through_untouched(wrap, scope):
    seen, inner = passthrough_recorder()
    original = json.loads(json.dumps(scope, default=lambda b: b.decode()))
    scope = dict(scope)
    recorder = Recorder(incoming=[])
    await wrap(inner)(scope, recorder.receive, recorder.send)
    assert len(seen) == 1
    assert set(seen[0]) == set(scope), "no keys added to a non-websocket scope"
    assert seen[0] == scope
    assert json.loads(json.dumps(scope, default=lambda b: b.decode())) == original
    assert recorder.sent == []


@pytest.mark.parametrize("wrap", [w for k, w in WRAPPERS.items() if k != "DenialMiddlewareStack"], ids=[k for k in WRAPPERS if k != "DenialMiddlewareStack"])
async def test_single_middleware_hands_on_the_same_http_scope_object(wrap):
    seen, inner = passthrough_recorder()
    scope = dict(HTTP_SCOPE)
    await wrap(inner)(scope, Recorder(incoming=[]).receive, Recorder().send)
    assert seen[0] is scope


# --- decision timeout --------------------------------------------------------------------------


async def test_undecided_handshake_gets_503_after_the_timeout():
    loop = asyncio.get_running_loop()
    started = loop.time()
    communicator = HandshakeCommunicator(DenialMiddleware(sleeping_app, decision_timeout=0.05), "/ws/x/")
    result = await communicator.handshake(timeout=2)
    assert loop.time() - started < 1
    assert result.status_code == 503
    assert result.body == b'{"detail":"Connection check timed out"}'
    assert result.headers == denial_headers(result.body)
    await communicator.wait(timeout=1)


async def test_decision_timeout_setting_is_read_lazily(settings, caplog):
    caplog.set_level(logging.INFO)
    settings.WSREJECT = {"DECISION_TIMEOUT": 0.05}
    app = DenialMiddleware(sleeping_app)
    _, result = await handshake(app)
    assert result.status_code == 503
    assert any(r.levelno == logging.WARNING and "not decided" in r.getMessage() for r in caplog.records)


async def test_undecided_app_that_already_received_connect_gets_503():
    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(30)

    recorder = Recorder()
    await DenialMiddleware(app, decision_timeout=0.05)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.receive_calls == 1
    assert recorder.sent[0]["status"] == 503


async def test_accepted_connection_is_not_interrupted_by_the_decision_timeout():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.3)
        await send({"type": "websocket.send", "text": "still here"})
        await send({"type": "websocket.close", "code": 1000})

    recorder = Recorder()
    await DenialMiddleware(app, decision_timeout=0.05)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": "still here"},
        {"type": "websocket.close", "code": 1000},
    ]


async def test_slow_but_in_time_denial_is_not_replaced():
    async def app(scope, receive, send):
        await asyncio.sleep(0.05)
        raise DenyHandshake(401)

    recorder = Recorder()
    await DenialMiddleware(app, decision_timeout=1)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent[0]["status"] == 401


async def test_no_decision_timeout_when_none(settings):
    settings.WSREJECT = {"DECISION_TIMEOUT": 0.01}

    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(0.1)
        await send({"type": "websocket.accept"})

    recorder = Recorder()
    await DenialMiddleware(app, decision_timeout=None)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent == [{"type": "websocket.accept"}]


async def test_decision_timeout_in_close_code_mode():
    recorder = Recorder()
    await DenialMiddleware(sleeping_app, denial_mode="close_code", decision_timeout=0.05)(ws_scope(), recorder.receive, recorder.send)
    assert recorder.sent[-1] == {"type": "websocket.close", "code": 4503, "reason": "Connection check timed out"}


# --- OriginMiddleware --------------------------------------------------------------------------

DEMO_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
EXPLICIT = ["https://app.example.com", "https://*.example.org", "http://localhost:3000"]

ORIGIN_CASES = [
    # (id, ALLOWED_HOSTS, ALLOWED_ORIGINS, origin header values, allowed)
    ("hosts-localhost-any-port", DEMO_HOSTS, None, [b"http://localhost:8000"], True),
    ("hosts-ipv4-https", DEMO_HOSTS, None, [b"https://127.0.0.1"], True),
    ("hosts-ipv6", DEMO_HOSTS, None, [b"http://[::1]:3000"], True),
    ("hosts-evil", DEMO_HOSTS, None, [b"https://evil.example"], False),
    ("hosts-suffix-trick", DEMO_HOSTS, None, [b"http://localhost.evil.com"], False),
    ("hosts-prefix-trick", DEMO_HOSTS, None, [b"http://evillocalhost"], False),
    ("hosts-dot-domain-apex", [".example.com"], None, [b"https://example.com"], True),
    ("hosts-dot-domain-sub", [".example.com"], None, [b"https://a.b.example.com"], True),
    ("hosts-dot-domain-lookalike", [".example.com"], None, [b"https://badexample.com"], False),
    ("hosts-star", ["*"], None, [b"https://anything.test"], True),
    ("explicit-exact", DEMO_HOSTS, EXPLICIT, [b"https://app.example.com"], True),
    ("explicit-default-port-written", DEMO_HOSTS, EXPLICIT, [b"https://app.example.com:443"], True),
    ("explicit-upper-case", DEMO_HOSTS, EXPLICIT, [b"HTTPS://APP.EXAMPLE.COM"], True),
    ("explicit-wrong-scheme", DEMO_HOSTS, EXPLICIT, [b"http://app.example.com"], False),
    ("explicit-wrong-port", DEMO_HOSTS, EXPLICIT, [b"https://app.example.com:8443"], False),
    ("explicit-not-listed-although-in-hosts", DEMO_HOSTS, EXPLICIT, [b"http://localhost:8000"], False),
    ("explicit-port", DEMO_HOSTS, EXPLICIT, [b"http://localhost:3000"], True),
    ("explicit-other-port", DEMO_HOSTS, EXPLICIT, [b"http://localhost:3001"], False),
    ("wildcard-sub", DEMO_HOSTS, EXPLICIT, [b"https://a.example.org"], True),
    ("wildcard-deep-sub", DEMO_HOSTS, EXPLICIT, [b"https://a.b.example.org"], True),
    ("wildcard-apex", DEMO_HOSTS, EXPLICIT, [b"https://example.org"], False),
    ("wildcard-lookalike", DEMO_HOSTS, EXPLICIT, [b"https://evilexample.org"], False),
    ("wildcard-wrong-scheme", DEMO_HOSTS, EXPLICIT, [b"http://a.example.org"], False),
    ("star-any", DEMO_HOSTS, ["*"], [b"https://evil.example"], True),
    ("star-null", DEMO_HOSTS, ["*"], [b"null"], False),
    ("null", DEMO_HOSTS, None, [b"null"], False),
    ("malformed-no-host", DEMO_HOSTS, ["*"], [b"https://"], False),
    ("malformed-no-scheme", DEMO_HOSTS, ["*"], [b"localhost"], False),
    ("malformed-path", DEMO_HOSTS, ["*"], [b"https://localhost/path"], False),
    ("malformed-query", DEMO_HOSTS, ["*"], [b"https://localhost?x=1"], False),
    ("malformed-userinfo", DEMO_HOSTS, ["*"], [b"https://user@localhost"], False),
    ("malformed-port", DEMO_HOSTS, ["*"], [b"https://localhost:abc"], False),
    ("malformed-port-range", DEMO_HOSTS, ["*"], [b"https://localhost:99999"], False),
    ("malformed-ftp", DEMO_HOSTS, ["*"], [b"ftp://localhost"], False),
    ("malformed-space", DEMO_HOSTS, ["*"], [b"https://local host"], False),
    ("malformed-leading-space", DEMO_HOSTS, ["*"], [b" https://localhost"], False),
    ("empty", DEMO_HOSTS, ["*"], [b""], False),
    ("two-origin-headers", DEMO_HOSTS, None, [b"http://localhost", b"http://localhost"], False),
    ("non-ascii-utf8", DEMO_HOSTS, ["*"], ["https://éxample.com".encode()], False),
    ("non-ascii-latin1", DEMO_HOSTS, ["*"], [b"https://ex\xffample.com"], False),
]


async def origin_handshake(origins, **kwargs):
    headers = [(b"origin", value) for value in origins]
    app = DenialMiddleware(OriginMiddleware(accept_app, **kwargs))
    communicator, result = await handshake(app, headers=headers)
    if result.accepted:
        await disconnect(communicator)
    return result


@pytest.mark.parametrize(
    "hosts,allowed_origins,origins,allowed",
    [case[1:] for case in ORIGIN_CASES],
    ids=[case[0] for case in ORIGIN_CASES],
)
async def test_origin_middleware(settings, hosts, allowed_origins, origins, allowed):
    settings.ALLOWED_HOSTS = hosts
    settings.WSREJECT = {"ALLOWED_ORIGINS": allowed_origins}
    result = await origin_handshake(origins)
    assert result.accepted is allowed
    if not allowed:
        assert result.status_code == 403
        assert result.body == b'{"detail":"Origin not allowed"}'
        assert result.headers == denial_headers(result.body)


@pytest.mark.parametrize(
    "setting,argument,allowed",
    [(True, None, True), (False, None, False), (None, None, True), (False, True, True), (True, False, False)],
    ids=["setting-true", "setting-false", "default", "argument-overrides-false", "argument-overrides-true"],
)
async def test_missing_origin(settings, setting, argument, allowed):
    settings.WSREJECT = {} if setting is None else {"ALLOW_MISSING_ORIGIN": setting}
    result = await origin_handshake([], allow_missing=argument)
    assert result.accepted is allowed
    if not allowed:
        assert result.status_code == 403


async def test_allowed_origins_argument_overrides_the_setting(settings):
    settings.WSREJECT = {"ALLOWED_ORIGINS": ["https://setting.example"]}
    assert (await origin_handshake([b"https://argument.example"], allowed_origins=["https://argument.example"])).accepted
    assert not (await origin_handshake([b"https://setting.example"], allowed_origins=["https://argument.example"])).accepted


async def test_origin_header_name_is_matched_case_insensitively():
    app = DenialMiddleware(OriginMiddleware(accept_app, allowed_origins=["https://ok.example"]))
    _, result = await handshake(app, headers=[(b"Origin", b"https://evil.example")])
    assert result.status_code == 403


# --- RouteNotFoundMiddleware -------------------------------------------------------------------


def routed(*routes, route_not_found=True, **denial_kwargs):
    inner = URLRouter(list(routes))
    if route_not_found:
        inner = RouteNotFoundMiddleware(inner)
    return DenialMiddleware(inner, **denial_kwargs)


ROUTES = [
    path("ws/echo/", accept_app),
    path("ws/rooms/<slug:name>/", accept_app),
    path("ws/nested/", URLRouter([path("inner/", accept_app), path("deeper/", URLRouter([path("x/<int:n>/", accept_app)]))])),
]


@pytest.mark.parametrize(
    "path_,root_path,expected_kwargs",
    [
        ("/ws/echo/", "", {}),
        ("/ws/rooms/lobby/", "", {"name": "lobby"}),
        ("/ws/nested/inner/", "", {}),
        ("/ws/nested/deeper/x/7/", "", {"n": 7}),
        ("/prefix/ws/echo/", "/prefix", {}),
        ("/prefix/ws/rooms/dev/", "/prefix", {"name": "dev"}),
    ],
    ids=["flat", "kwargs", "nested", "nested-twice", "root-path", "root-path-kwargs"],
)
async def test_known_routes_are_routed(path_, root_path, expected_kwargs):
    communicator = HandshakeCommunicator(routed(*ROUTES), path_)
    communicator.scope["root_path"] = root_path
    result = await communicator.handshake()
    assert result.accepted
    assert json.loads(await communicator.receive_from()) == {"path": path_, "kwargs": expected_kwargs}
    await disconnect(communicator)


@pytest.mark.parametrize(
    "path_,root_path",
    [
        ("/ws/does-not-exist/", ""),
        ("/", ""),
        ("/ws/echo/extra/", ""),
        ("/ws/rooms/not a slug/", ""),
        ("/ws/nested/nope/", ""),
        ("/ws/nested/deeper/x/notint/", ""),
        ("/ws/echo/", "/prefix"),
        ("/prefix/ws/nope/", "/prefix"),
        ("/prefixed/ws/echo/", "/prefix"),
    ],
    ids=["unknown", "root", "extra-segment", "bad-slug", "nested-unknown", "nested-twice-bad-int", "outside-root-path", "under-root-path-unknown", "root-path-lookalike"],
)
async def test_unknown_paths_are_404(path_, root_path):
    communicator = HandshakeCommunicator(routed(*ROUTES), path_)
    communicator.scope["root_path"] = root_path
    result = await communicator.handshake()
    assert result.status_code == 404
    assert result.body == b'{"detail":"Not Found"}'
    assert result.headers == denial_headers(result.body)
    await communicator.wait(timeout=1)


async def test_without_route_not_found_an_unknown_path_is_a_500(caplog):
    """Why RouteNotFoundMiddleware exists: the outermost URLRouter raises ValueError."""
    _, result = await handshake(routed(*ROUTES, route_not_found=False), "/ws/nope/")
    assert result.status_code == 500


async def test_route_not_found_leaves_an_already_routed_scope_alone():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope)
        raise DenyHandshake(418)

    scope = ws_scope("/ws/a/b/", path_remaining="b/")
    recorder = Recorder()
    await DenialMiddleware(RouteNotFoundMiddleware(inner))(scope, recorder.receive, recorder.send)
    assert seen[0]["path_remaining"] == "b/"


async def test_nested_denial_middleware_is_transparent_to_url_router():
    inner = DenialMiddleware(URLRouter([path("x/", accept_app)]), denial_mode="close_code")
    assert inner._path_routing is True
    assert DenialMiddleware(accept_app)._path_routing is False
    app = routed(path("ws/browser/", inner), path("ws/", URLRouter([path("x/", accept_app)])))
    communicator = HandshakeCommunicator(app, "/ws/browser/x/")
    assert (await communicator.handshake()).accepted
    await disconnect(communicator)
    communicator = HandshakeCommunicator(app, "/ws/browser/nope/")
    result = await communicator.handshake(close_code=True)
    assert (result.denial_mode, result.status_code, result.reason) == ("close_code", 404, "Not Found")
    _, result = await handshake(app, "/ws/nope/")
    assert (result.denial_mode, result.status_code) == ("http", 404)


# --- a denial in middleware never builds the consumer ------------------------------------------


@pytest.fixture
def counting():
    CountingConsumer.instances = 0
    return CountingConsumer


@pytest.mark.parametrize(
    "headers,path_,status",
    [
        ([(b"origin", b"https://evil.example")], "/ws/counted/", 403),
        ([], "/ws/private/counted/", 401),
        ([], "/ws/unknown/", 404),
    ],
    ids=["origin", "login", "route"],
)
@uses_stack
async def test_denial_in_middleware_never_instantiates_the_consumer(counting, headers, path_, status):
    app = DenialMiddlewareStack(
        URLRouter(
            [
                path("ws/counted/", counting.as_asgi()),
                path("ws/private/counted/", LoginRequiredMiddleware(counting.as_asgi())),
            ]
        )
    )
    _, result = await handshake(app, path_, headers=headers)
    assert result.status_code == status
    assert counting.instances == 0


@uses_stack
async def test_accepted_handshake_does_instantiate_the_consumer(counting):
    app = DenialMiddlewareStack(URLRouter([path("ws/counted/", counting.as_asgi())]))
    communicator, result = await handshake(app, "/ws/counted/")
    assert result.accepted
    assert counting.instances == 1
    await disconnect(communicator)


# --- login and permission middleware -----------------------------------------------------------


async def test_login_required_without_credential_costs_no_query_and_no_thread_hop(query_counter, thread_hop_counter):
    app = DenialMiddleware(CredentialsMiddleware(LoginRequiredMiddleware(accept_app)))
    _, result = await handshake(app, "/ws/private/")
    assert result.status_code == 401
    assert result.body == b'{"detail":"Not authenticated"}'
    assert result.headers == denial_headers(result.body, (b"www-authenticate", b"Bearer"))
    assert query_counter.count == 0
    assert thread_hop_counter.count == 0, thread_hop_counter.items


async def test_login_required_without_any_user_in_the_scope_is_401():
    _, result = await handshake(DenialMiddleware(LoginRequiredMiddleware(accept_app)))
    assert result.status_code == 401
    assert result.body == b'{"detail":"Not authenticated"}'


@pytest.mark.parametrize(
    "user,perms,status,detail",
    [
        ("alice", "chat.join_room", None, None),
        ("bob", "chat.join_room", 403, "Forbidden"),
        ("carol", "chat.join_room", 403, "Forbidden"),
        (None, "chat.join_room", 401, "Not authenticated"),
        ("unknown", "chat.join_room", 401, "Invalid credentials"),
        ("dave", "chat.join_room", 401, "Invalid credentials"),
        ("alice", ("chat.join_room", "chat.add_room"), 403, "Forbidden"),
    ],
    ids=["alice", "bob", "carol-staff-without-perm", "anonymous", "unknown-token", "inactive", "alice-missing-second-perm"],
)
async def test_permission_required_middleware(demo_tokens, user, perms, status, detail):
    token = {"unknown": "no-such-token"}.get(user) or demo_tokens.get(user)
    headers = bearer(token) if token else []
    app = DenialMiddleware(CredentialsMiddleware(PermissionRequiredMiddleware(accept_app, perms)))
    communicator, result = await handshake(app, "/ws/rooms/", headers=headers)
    if status is None:
        assert result.accepted
        await disconnect(communicator)
        return
    assert result.status_code == status
    assert result.json() == {"detail": detail}
    if status == 401:
        assert result.header("www-authenticate") == challenge_for(detail).decode()


async def test_permission_required_middleware_custom_detail(demo_tokens):
    app = DenialMiddleware(CredentialsMiddleware(PermissionRequiredMiddleware(accept_app, "chat.join_room", detail="Members only")))
    _, result = await handshake(app, headers=bearer(demo_tokens["bob"]))
    assert (result.status_code, result.json()) == (403, {"detail": "Members only"})


async def test_permission_decision_with_a_token_hops_only_while_cold(demo_tokens, thread_hop_counter):
    app = DenialMiddleware(CredentialsMiddleware(PermissionRequiredMiddleware(accept_app, "chat.join_room")))
    _, result = await handshake(app, headers=bearer(demo_tokens["bob"]))
    assert result.status_code == 403
    assert thread_hop_counter.count == 2, thread_hop_counter.items  # the user, then the permission set
    before = thread_hop_counter.count
    _, result = await handshake(app, headers=bearer(demo_tokens["bob"]))
    assert (result.status_code, thread_hop_counter.count - before) == (403, 0)


def test_permission_middleware_needs_a_permission():
    with pytest.raises(ValueError):
        PermissionMiddleware(accept_app)


def test_permission_middleware_combines_with_and():
    middleware = PermissionMiddleware(accept_app, IsAuthenticated, IsStaff, AllowAny())
    assert repr(middleware.permission) == "((IsAuthenticated() & IsStaff()) & AllowAny())"


# --- the whole stack in close-code mode ---------------------------------------------------------


@pytest.mark.parametrize(
    "path_,headers,code,reason",
    [
        ("/ws/nope/", [], 4404, "Not Found"),
        ("/ws/private/", [], 4401, "Not authenticated"),
        ("/ws/echo/", [(b"origin", b"https://evil.example")], 4403, "Origin not allowed"),
        ("/ws/broken/", [], 4500, "Internal Server Error"),
    ],
    ids=["route", "login", "origin", "unexpected-error"],
)
@pytest.mark.parametrize("extension", [True, False], ids=["with-extension", "without-extension"])
@uses_stack
async def test_denial_middleware_stack_in_close_code_mode(path_, headers, code, reason, extension):
    app = DenialMiddlewareStack(
        URLRouter(
            [
                path("ws/echo/", accept_app),
                path("ws/private/", LoginRequiredMiddleware(accept_app)),
                path("ws/broken/", raising(RuntimeError(SECRET))),
            ]
        ),
        denial_mode="close_code",
    )
    communicator = HandshakeCommunicator(app, path_, headers=headers, denial_response=extension)
    result = await communicator.handshake(close_code=True)
    assert result.denial_mode == "close_code"
    assert (result.close_code, result.reason) == (code, reason)
    assert result.json() == {"detail": reason}
    await communicator.wait(timeout=1)


@uses_stack
async def test_denial_middleware_stack_accepts_in_close_code_mode():
    app = DenialMiddlewareStack(URLRouter([path("ws/echo/", accept_app)]), denial_mode="close_code")
    communicator = HandshakeCommunicator(app, "/ws/echo/")
    result = await communicator.handshake(close_code=True)
    assert result.accepted
    assert json.loads(await communicator.receive_from()) == {"path": "/ws/echo/", "kwargs": {}}
    await disconnect(communicator)


@uses_stack
async def test_denial_middleware_stack_allowed_origins_argument():
    app = DenialMiddlewareStack(URLRouter([path("ws/echo/", accept_app)]), allowed_origins=["https://ok.example"])
    communicator, result = await handshake(app, "/ws/echo/", headers=[(b"origin", b"https://ok.example")])
    assert result.accepted
    await disconnect(communicator)
    _, result = await handshake(app, "/ws/echo/", headers=[(b"origin", b"http://localhost")])
    assert result.status_code == 403


@uses_stack
async def test_recommended_stack_denies_anonymous_without_query_or_hop_once_warm(query_counter, thread_hop_counter):
    app = DenialMiddlewareStack(URLRouter([path("ws/private/", LoginRequiredMiddleware(accept_app))]))
    _, first = await handshake(app, "/ws/private/")  # a cold cache may load the access rules
    assert first.status_code == 401
    for counter in (query_counter, thread_hop_counter):
        counter.count = 0
        counter.items.clear()
    _, second = await handshake(app, "/ws/private/")
    assert (second.status_code, second.json()) == (401, {"detail": "Not authenticated"})
    assert query_counter.count == 0, query_counter.items
    assert thread_hop_counter.count == 0, thread_hop_counter.items


@uses_stack
async def test_decision_timeout_of_a_close_code_endpoint_is_sent_in_close_code_mode(settings):
    """The demo's layout: /ws/browser/ is a nested DenialMiddleware(denial_mode="close_code").
    A handshake there that is never decided must time out as 4503, which a browser can read."""
    settings.WSREJECT = {"DECISION_TIMEOUT": 0.1}
    browser = DenialMiddleware(URLRouter([path("slow/", sleeping_app)]), denial_mode="close_code")
    app = DenialMiddlewareStack(URLRouter([path("ws/browser/", browser)]))
    communicator = HandshakeCommunicator(app, "/ws/browser/slow/")
    result = await communicator.handshake(timeout=2, close_code=True)
    assert (result.denial_mode, result.close_code, result.reason) == ("close_code", 4503, "Connection check timed out")


async def test_route_level_checks_can_wrap_a_nested_router(demo_tokens):
    """Like DenialMiddleware, the deciding middleware says it routes paths when what it wraps
    does, so URLRouter treats ``path("ws/", LoginRequiredMiddleware(URLRouter(...)))`` as a prefix."""
    app = DenialMiddlewareStack(URLRouter([path("ws/", LoginRequiredMiddleware(URLRouter([path("x/", accept_app)])))]))
    _, anonymous = await handshake(app, "/ws/x/")
    assert anonymous.status_code == 401
    communicator, alice = await handshake(app, "/ws/x/", headers=bearer(demo_tokens["alice"]))
    assert alice.accepted
    await disconnect(communicator)
    _, missing = await handshake(app, "/ws/nope/", headers=bearer(demo_tokens["alice"]))
    assert missing.status_code == 404
