"""The conformance cases of the "rooms" scenario, as data.

Each :class:`Case` is one request (path, headers, subprotocols, origin, how many
times) and what **both** apps — the FastAPI reference and the Django demo — must
answer on a server with the ASGI WebSocket Denial Response extension. Nothing here
is specific to a server: what a given server does differently is in
``tests/support/quirks.py`` (``SERVER_QUIRKS``, keyed to versions, and ``applied_quirks``).

Credentials are symbolic: ``{token:alice}`` in a header value or in the path is
replaced by alice's token when the case is resolved (:meth:`Case.resolve`); the
suite provisions the tokens. ``erin`` is a user whose token was issued and who was
then deleted (the reference app simply does not know her token).

The scenario's cases 1–17 keep their numbers (``Case.scenario``); case 4 is split
into its three variants. The rest covers the extra endpoints and the edges.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

USERS = ("alice", "bob", "carol", "dave", "erin")
# erin's user was deleted after her token was issued: the apps must not know the token.
DELETED_USERS = ("erin",)
TOKEN_RE = re.compile(r"\{token:([a-z]+)\}")

Headers = tuple[tuple[str, str], ...]


def phrase(status: int) -> str:
    """The standard reason phrase, "" for an unregistered status (as FastAPI's default detail)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def body_allowed(status: int) -> bool:
    return not (status < 200 or status in (204, 304))


def compact_json(data: Any) -> str:
    """JSON as FastAPI/Starlette write it."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# A denial must never look like an upgrade.
UPGRADE_HEADERS = ("upgrade", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions")


@dataclass(frozen=True)
class Expect:
    """What goes over the wire.

    ``status`` 101 means accepted; ``None`` means no HTTP response at all (the
    connection closes first; only server quirks produce that).

    Headers: for every name in ``headers`` the response's values for that name must
    be exactly the listed ones, in order (so a repeated header is listed once per
    line). ``header_patterns``: the single value of that header must fully match
    the regex. ``absent_headers`` must not appear. Other headers (date, server …)
    are free.
    """

    status: int | None
    headers: Headers = ()
    header_patterns: Headers = ()
    absent_headers: tuple[str, ...] = ()
    body: bytes | None = None  # exact body of a denial
    closed: bool | None = None  # the server closes TCP after a denial
    # accepted only
    subprotocol: str | None = None  # None: no Sec-WebSocket-Protocol in the 101
    first_message: str | None = None  # exact text of the first message after accept
    exchanges: tuple[tuple[str, str], ...] = ()  # (send, exact reply) after the first message
    # server quirks only: the server process is gone afterwards
    server_dies: bool = False

    @property
    def accepted(self) -> bool:
        return self.status == 101

    @property
    def denied(self) -> bool:
        return self.status is not None and self.status != 101

    def values(self, name: str) -> list[str] | None:
        """The expected values of header ``name``, or None when it is not specified."""
        name = name.lower()
        found = [v for k, v in self.headers if k == name]
        return found or None

    # --- comparing with what came over the wire (pure: no I/O) -------------------------

    def check_headers(self, response: Any) -> list[str]:
        """Mismatches of ``response`` (anything with ``header_values(name)``) in headers."""
        problems = []
        for name in dict.fromkeys(k for k, _ in self.headers):
            want = self.values(name)
            got = response.header_values(name)
            if got != want:
                problems.append(f"header {name}: expected {want!r}, got {got!r}")
        for name, pattern in self.header_patterns:
            got = response.header_values(name)
            if len(got) != 1 or not re.fullmatch(pattern, got[0]):
                problems.append(f"header {name}: expected one value matching {pattern!r}, got {got!r}")
        for name in self.absent_headers:
            got = response.header_values(name)
            if got:
                problems.append(f"header {name}: expected absent, got {got!r}")
        return problems

    def check_raw(self, response: Any) -> list[str]:
        """Mismatches of a ``wsclient.RawResponse`` (None: no response at all)."""
        if self.status is None:
            return [] if response is None else [f"expected no HTTP response, got {response.status}"]
        if response is None:
            return [f"expected {self.status}, got no HTTP response (connection closed)"]
        problems = []
        if response.status != self.status:
            problems.append(f"status: expected {self.status}, got {response.status}")
        problems += self.check_headers(response)
        if self.accepted:
            if response.status == 101 and not response.accept_ok:
                problems.append("sec-websocket-accept does not match the key")
            return problems
        if self.body is not None and response.body != self.body:
            problems.append(f"body: expected {self.body[:200]!r}, got {response.body[:200]!r}")
        if response.extra:
            problems.append(f"bytes after the response: {response.extra[:200]!r}")
        if self.closed is not None and response.closed_by_server is not self.closed:
            problems.append(
                f"connection: expected {'closed' if self.closed else 'left open'} by the server, "
                f"got closed_by_server={response.closed_by_server}"
            )
        return problems

    def check_denied(self, denied: Any) -> list[str]:
        """Mismatches of a ``wsclient.Denied`` (what the ``websockets`` client saw)."""
        problems = []
        if denied.status_code != self.status:
            problems.append(f"status: expected {self.status}, got {denied.status_code}")
        problems += self.check_headers(denied)
        if self.body is not None and denied.body != self.body:
            problems.append(f"body: expected {self.body[:200]!r}, got {denied.body[:200]!r}")
        return problems

    def without_header(self, name: str) -> Expect:
        name = name.lower()
        return replace(
            self,
            headers=tuple((k, v) for k, v in self.headers if k != name),
            header_patterns=tuple((k, v) for k, v in self.header_patterns if k != name),
            absent_headers=tuple(k for k in self.absent_headers if k != name),
        )

    def with_header(self, name: str, *values: str) -> Expect:
        """Expect exactly ``values`` for header ``name`` (replacing whatever was said of it)."""
        base = self.without_header(name)
        return replace(base, headers=base.headers + tuple((name.lower(), v) for v in values))

    def with_pattern(self, name: str, pattern: str) -> Expect:
        base = self.without_header(name)
        return replace(base, header_patterns=base.header_patterns + ((name.lower(), pattern),))


def denial(status: int, detail: str | None = None, headers: Sequence[tuple[str, str]] = (), *, patterns: Sequence[tuple[str, str]] = ()) -> Expect:
    """An ``HTTPException(status, detail, headers)``: ``{"detail": ...}`` JSON, or no body
    where FastAPI writes none (1xx, 204, 205, 304; 205 keeps ``content-length: 0``)."""
    detail = phrase(status) if detail is None else detail
    headers = tuple((k.lower(), v) for k, v in headers)
    if status < 200 or status in (204, 304):
        return Expect(
            status,
            headers=headers,
            absent_headers=("content-type", "content-length", *UPGRADE_HEADERS),
            body=b"",
            closed=True,
        )
    if status == 205:
        return Expect(
            status,
            headers=headers + (("content-length", "0"),),
            absent_headers=("content-type", *UPGRADE_HEADERS),
            body=b"",
            closed=True,
        )
    body = compact_json({"detail": detail}).encode("utf-8")
    return Expect(
        status,
        headers=headers + (("content-length", str(len(body))), ("content-type", "application/json")),
        header_patterns=tuple((k.lower(), v) for k, v in patterns),
        absent_headers=UPGRADE_HEADERS,
        body=body,
        closed=True,
    )


def response(status: int, body: bytes, headers: Sequence[tuple[str, str]]) -> Expect:
    """An arbitrary denial response (``send_denial_response``)."""
    headers = tuple((k.lower(), v) for k, v in headers)
    if body_allowed(status):
        headers = headers + (("content-length", str(len(body))),)
    return Expect(status, headers=headers, absent_headers=UPGRADE_HEADERS, body=body, closed=True)


def accepted(first_message: Any = None, *, subprotocol: str | None = None, exchanges: Sequence[tuple[str, str]] = (), raw_first: str | None = None) -> Expect:
    first = raw_first if raw_first is not None else (None if first_message is None else compact_json(first_message))
    absent = () if subprotocol else ("sec-websocket-protocol",)
    headers = (("sec-websocket-protocol", subprotocol),) if subprotocol else ()
    return Expect(101, headers=headers, absent_headers=absent, subprotocol=subprotocol, first_message=first, exchanges=tuple(exchanges))


@dataclass(frozen=True)
class Request:
    """A case's request with the tokens filled in."""

    path: str
    headers: Headers
    subprotocols: tuple[str, ...]
    origin: str | None

    def all_headers(self) -> list[tuple[str, str]]:
        """Origin (if any) first, then the case's headers, in order."""
        return ([("Origin", self.origin)] if self.origin is not None else []) + list(self.headers)


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    expect: Expect
    headers: Headers = ()
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    repeat: int = 1
    # With repeat > 1: what every attempt before the last must get (``expect`` is the last).
    before: Expect | None = None
    scenario: int | None = None  # the scenario's case number
    # The scenario's "deliberate differences": the reference app answers otherwise, and why.
    reference_differs: str | None = None
    # The reference app lets an exception escape: the server answers with its own error.
    reference_raises: bool = False
    # What the demo answers when it deliberately answers otherwise than ``expect`` (FastAPI's).
    demo_expect: Expect | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    note: str = ""

    def resolve(self, tokens: Mapping[str, str]) -> Request:
        def sub(text: str) -> str:
            def one(match: re.Match[str]) -> str:
                user = match.group(1)
                if user not in tokens:
                    raise KeyError(f"case {self.id}: no token provisioned for {user!r}")
                return tokens[user]

            return TOKEN_RE.sub(one, text)

        return Request(
            path=sub(self.path),
            headers=tuple((k, sub(v)) for k, v in self.headers),
            subprotocols=self.subprotocols,
            origin=self.origin,
        )

    def for_app(self, app: str) -> Case:
        """This case as ``app`` ("reference" or "demo") must answer it."""
        if app == "demo" and self.demo_expect is not None:
            return replace(self, expect=self.demo_expect, demo_expect=None)
        return self

    def users(self) -> set[str]:
        found = set(TOKEN_RE.findall(self.path))
        for _, value in self.headers:
            found.update(TOKEN_RE.findall(value))
        return found


def bearer(user: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {{token:{user}}}")


def deny_path(status: int, *, detail: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> str:
    """``/ws/deny/<status>/`` with ``detail=`` and repeated ``h=name:value``, UTF-8 percent-encoded."""
    query: list[tuple[str, str]] = []
    if detail is not None:
        query.append(("detail", detail))
    query += [("h", f"{name}:{value}") for name, value in headers]
    path = f"/ws/deny/{status}/"
    if query:
        path += "?" + urlencode(query, quote_via=quote, safe="")
    return path


def deny_case(
    id: str,
    status: int,
    *,
    detail: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    tags: Sequence[str] = (),
    note: str = "",
) -> Case:
    return Case(
        id=id,
        path=deny_path(status, detail=detail, headers=headers),
        expect=denial(status, detail, headers),
        tags=frozenset({"deny", f"{status // 100}xx", *tags}),
        note=note,
    )


LONG_DETAIL = ("The quick brown fox jumps over the lazy dog; " * 50)[:2000]
UNICODE_DETAIL = "Zugriff verweigert – Raum “Küche” ist voll ✓ 🚫"
LOCAL_ORIGIN = "http://localhost:8000"
EVIL_ORIGIN = "https://evil.example"

NOT_AUTHENTICATED = denial(401, "Not authenticated", [("www-authenticate", "Bearer")])
INVALID_CREDENTIALS = denial(
    401, "Invalid credentials", [("www-authenticate", 'Bearer error="invalid_token", error_description="Invalid credentials"')]
)
#: What the demo answers for a denial that is not an error: wsreject refuses to build it.
NOT_AN_ERROR = denial(500, "Internal Server Error")
ROOM_FORBIDDEN = denial(403, "Not allowed to join this room")
ORIGIN_FORBIDDEN = denial(403, "Origin not allowed")

CASES: list[Case] = [
    # --- the scenario, cases 1-17 --------------------------------------------------------
    Case("s01-echo", "/ws/echo/", accepted(exchanges=[("ping", "ping")]), scenario=1),
    Case("s02-private-no-credential", "/ws/private/", NOT_AUTHENTICATED, scenario=2),
    Case(
        "s03-private-unknown-token",
        "/ws/private/",
        INVALID_CREDENTIALS,
        headers=(("Authorization", "Bearer nobody-ever-issued-this-token"),),
        scenario=3,
    ),
    Case("s04a-private-basic-scheme", "/ws/private/", NOT_AUTHENTICATED, headers=(("Authorization", "Basic abc"),), scenario=4),
    Case("s04b-private-bearer-alone", "/ws/private/", NOT_AUTHENTICATED, headers=(("Authorization", "Bearer"),), scenario=4),
    Case(
        "s04c-private-non-ascii",
        "/ws/private/",
        NOT_AUTHENTICATED,
        # Sent as latin-1 bytes (obs-text): b"Bearer t\xf6k\xe9n".
        headers=(("Authorization", "Bearer tökén"),),
        scenario=4,
        tags=frozenset({"non-ascii-request"}),
    ),
    Case("s05-private-alice", "/ws/private/", accepted({"user": "alice"}), headers=(bearer("alice"),), scenario=5, note="no Origin header: allowed"),
    Case("s06-room-bob", "/ws/rooms/lobby/", ROOM_FORBIDDEN, headers=(bearer("bob"),), scenario=6),
    Case("s07-room-alice", "/ws/rooms/lobby/", accepted({"room": "lobby", "user": "alice"}), headers=(bearer("alice"),), scenario=7),
    Case("s08-room-missing-alice", "/ws/rooms/nowhere/", denial(404, "Room not found"), headers=(bearer("alice"),), scenario=8),
    Case("s09-room-missing-bob", "/ws/rooms/nowhere/", ROOM_FORBIDDEN, headers=(bearer("bob"),), scenario=9, note="permission before existence"),
    Case("s10-staff-alice", "/ws/staff/", denial(403, "Staff only"), headers=(bearer("alice"),), scenario=10),
    Case("s11-staff-carol", "/ws/staff/", accepted({"user": "carol"}), headers=(bearer("carol"),), scenario=11),
    Case("s12-maintenance", "/ws/maintenance/", denial(503, "Down for maintenance", [("retry-after", "120")]), scenario=12),
    Case(
        "s13-limited",
        "/ws/limited/",
        denial(429, "Too many connection attempts", patterns=[("retry-after", r"[1-9][0-9]*")]),
        repeat=4,
        before=accepted({"ok": True}),
        scenario=13,
        tags=frozenset({"rate-limit"}),
        note="the only case on /ws/limited/: it needs a fresh window (3 per 60 s per client host)",
    ),
    Case("s14-unknown-path", "/ws/does-not-exist/", denial(404, "Not Found"), scenario=14, reference_differs="14: Starlette alone answers a bare 403; the reference adds a catch-all route raising 404"),
    Case("s15-origin-evil", "/ws/private/", ORIGIN_FORBIDDEN, headers=(bearer("alice"),), origin=EVIL_ORIGIN, scenario=15),
    Case(
        "s16-broken",
        "/ws/broken/",
        denial(500, "Internal Server Error"),
        scenario=16,
        reference_differs="16: FastAPI lets the error reach the server, which answers with its own 500 (or worse)",
        reference_raises=True,
        tags=frozenset({"app-error"}),
        note="no traceback or exception text anywhere in the answer",
    ),
    Case(
        "s17-teapot",
        "/ws/teapot/",
        response(418, b"I'm a teapot", [("x-teapot", "short-and-stout"), ("content-type", "text/plain; charset=utf-8")]),
        scenario=17,
    ),
    # --- authentication edges ------------------------------------------------------------
    Case("auth-query-token-refused", "/ws/private/?token={token:alice}", NOT_AUTHENTICATED, note="a token in the URL is not a credential"),
    Case("auth-inactive-user", "/ws/private/", INVALID_CREDENTIALS, headers=(bearer("dave"),)),
    Case("auth-deleted-user", "/ws/private/", INVALID_CREDENTIALS, headers=(bearer("erin"),)),
    Case(
        "auth-scheme-case-insensitive",
        "/ws/private/",
        accepted({"user": "alice"}),
        headers=(("Authorization", "bearer {token:alice}"),),
        note="RFC 9110 §11.1: the auth-scheme is case-insensitive",
    ),
    Case("auth-room-anonymous", "/ws/rooms/lobby/", NOT_AUTHENTICATED, note="authentication before permission"),
    Case("auth-staff-bob", "/ws/staff/", denial(403, "Staff only"), headers=(bearer("bob"),)),
    Case("room-dev-alice", "/ws/rooms/dev/", accepted({"room": "dev", "user": "alice"}), headers=(bearer("alice"),)),
    # --- origin ------------------------------------------------------------------------------
    Case("origin-localhost-allowed", "/ws/private/", accepted({"user": "alice"}), headers=(bearer("alice"),), origin=LOCAL_ORIGIN),
    Case("origin-loopback-ip-allowed", "/ws/private/", accepted({"user": "alice"}), headers=(bearer("alice"),), origin="https://127.0.0.1:9443"),
    Case(
        "origin-two-headers",
        "/ws/private/",
        ORIGIN_FORBIDDEN,
        headers=(("Origin", LOCAL_ORIGIN), ("Origin", LOCAL_ORIGIN), bearer("alice")),
        note="two Origin lines are refused even when each is allowed",
    ),
    Case("origin-null", "/ws/private/", ORIGIN_FORBIDDEN, headers=(bearer("alice"),), origin="null"),
    Case("origin-lookalike-host", "/ws/private/", ORIGIN_FORBIDDEN, headers=(bearer("alice"),), origin="http://localhost.evil.example"),
    Case("origin-before-authentication", "/ws/private/", ORIGIN_FORBIDDEN, origin=EVIL_ORIGIN, note="403 for the origin, not 401"),
    Case("origin-before-routing", "/ws/does-not-exist/", ORIGIN_FORBIDDEN, origin=EVIL_ORIGIN),
    # --- subprotocols ------------------------------------------------------------------------
    Case("subprotocol-none-offered", "/ws/subprotocol/", accepted({"subprotocol": None})),
    Case("subprotocol-v2-only", "/ws/subprotocol/", accepted({"subprotocol": "chat.v2"}, subprotocol="chat.v2"), subprotocols=("chat.v2",)),
    Case("subprotocol-v1-and-v2", "/ws/subprotocol/", accepted({"subprotocol": "chat.v1"}, subprotocol="chat.v1"), subprotocols=("chat.v1", "chat.v2")),
    Case("subprotocol-client-order", "/ws/subprotocol/", accepted({"subprotocol": "chat.v2"}, subprotocol="chat.v2"), subprotocols=("chat.v2", "chat.v1")),
    Case("subprotocol-unknown-then-v2", "/ws/subprotocol/", accepted({"subprotocol": "chat.v2"}, subprotocol="chat.v2"), subprotocols=("chat.v9", "chat.v2")),
    Case("subprotocol-unsupported", "/ws/subprotocol/", denial(400, "Unsupported subprotocol"), subprotocols=("chat.v3",)),
    # --- every status class, bodies, headers, details -------------------------------------------
    *(
        replace(case, demo_expect=NOT_AN_ERROR, tags=case.tags | {"not-an-error"})
        for case in (
            deny_case("deny-100-informational", 100, tags=["no-body"], note="not a final status: servers disagree wildly (see SERVER_QUIRKS)"),
            deny_case("deny-200", 200),
            deny_case("deny-204-no-body", 204, tags=["no-body"]),
            deny_case("deny-205-no-body", 205, tags=["no-body"], note="FastAPI writes no body but content-length: 0"),
            deny_case("deny-301-location", 301, headers=[("location", "/ws/elsewhere/")]),
            deny_case("deny-304-no-body", 304, headers=[("etag", '"v1"')], tags=["no-body"]),
        )
    ),
    deny_case("deny-400-detail", 400, detail="Room name must be lower-case"),
    deny_case(
        "deny-401-repeated-header",
        401,
        headers=[("www-authenticate", "Bearer"), ("www-authenticate", 'Basic realm="rooms"')],
        tags=["repeated-header"],
    ),
    deny_case(
        "deny-403-repeated-header-three",
        403,
        headers=[("x-reason", "a"), ("x-other", "b"), ("x-reason", "c"), ("x-reason", "d")],
        tags=["repeated-header"],
    ),
    deny_case("deny-409-latin1-header", 409, headers=[("x-note", "café crème")], tags=["non-ascii-header"]),
    deny_case("deny-413-long-detail", 413, detail=LONG_DETAIL),
    deny_case("deny-418-default-detail", 418),
    deny_case("deny-422-unicode-detail", 422, detail=UNICODE_DETAIL),
    deny_case("deny-423-empty-detail", 423, detail=""),
    deny_case("deny-429-retry-after", 429, headers=[("retry-after", "7")]),
    deny_case("deny-451", 451),
    deny_case("deny-500", 500),
    deny_case("deny-502", 502),
    deny_case("deny-599-unregistered", 599, tags=["unregistered-status"], note="no reason phrase: detail is \"\""),
]

CASES_BY_ID: dict[str, Case] = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "duplicate case ids"
SCENARIO_CASES = [case for case in CASES if case.scenario is not None]
assert sorted({case.scenario for case in SCENARIO_CASES}) == list(range(1, 18)), "a scenario case is missing"
assert sum(case.path.startswith("/ws/limited/") for case in CASES) == 1, "/ws/limited/ needs a fresh window"


def case_ids(cases: Sequence[Case] = CASES) -> list[str]:
    return [case.id for case in cases]
