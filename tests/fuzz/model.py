"""An independent model of the demo: where a path is routed, who a request signs in as, and
what the demo must answer.

Nothing here imports wsreject. The routing model restates Channels' ``URLRouter`` for the
demo's two mounts (``/ws/browser/`` then ``/ws/``: strip ``root_path``, then at every level
strip leading ``/`` and take the first route that matches, falling through to the next
route when a nested router finds nothing). The credential model restates
``WSREJECT["AUTHENTICATORS"]`` of ``project/settings.py`` from the documentation (tickets,
wsreject tokens, DRF tokens, SimpleJWT, the session cookie; the first that recognises a
credential decides, a refused one is never rescued by the cookie). The outcome model
restates the demo's consumers and the access rules the fuzz tests install.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from django.http.cookie import parse_cookie

#: Rooms ``seed_demo`` creates.
ROOMS = frozenset({"lobby", "dev"})
#: The group the fuzz tests create (alice is its only member).
OPS_GROUP = "ops"


@dataclass(frozen=True)
class DemoUser:
    name: str
    active: bool = True
    exists: bool = True
    staff: bool = False
    joins_rooms: bool = False  # member of "members", which holds chat.join_room
    ops: bool = False


USERS = {
    "alice": DemoUser("alice", joins_rooms=True, ops=True),
    "bob": DemoUser("bob"),
    "carol": DemoUser("carol", staff=True),
    "dave": DemoUser("dave", active=False, joins_rooms=True),
    "erin": DemoUser("erin", exists=False),
}


# --- routing ---------------------------------------------------------------------------------

_SLUG = r"[-a-zA-Z0-9_]+"
ENDPOINTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(regex))
    for name, regex in (
        ("echo", r"echo/"),
        ("private", r"private/"),
        ("rooms", rf"rooms/(?P<name>{_SLUG})/"),
        ("staff", r"staff/"),
        ("maintenance", r"maintenance/"),
        ("limited", r"limited/"),
        ("broken", r"broken/"),
        ("teapot", r"teapot/"),
        ("deny", r"deny/(?P<status>[0-9]+)/"),
        ("subprotocol", r"subprotocol/"),
    )
)
# (mount, prefix) in routing order: the browser mount is tried first.
MOUNTS = (("browser", "ws/browser/"), ("", "ws/"))


@dataclass(frozen=True)
class Route:
    mount: str  # "" or "browser"
    endpoint: str  # the route name: "rooms"
    kwargs: tuple[tuple[str, object], ...]
    routed_path: str  # the path as the routing consumed it: "/ws/rooms/lobby/"

    def kwarg(self, name: str) -> object:
        return dict(self.kwargs)[name]


def route(path: str, root_path: str = "") -> Route | None:
    """Where the demo's ``URLRouter`` sends ``path`` (a decoded ASGI path), or None (404)."""
    if root_path:
        if not path.startswith(root_path):
            return None
        path = path[len(root_path) :]
    rest = path.lstrip("/")
    for mount, prefix in MOUNTS:
        if not rest.startswith(prefix):
            continue
        inner = rest[len(prefix) :].lstrip("/")
        for name, regex in ENDPOINTS:
            match = regex.fullmatch(inner)
            if match is None:
                continue
            kwargs: dict[str, object] = dict(match.groupdict())
            if "status" in kwargs:
                try:
                    kwargs["status"] = int(str(kwargs["status"]))
                except ValueError:  # more digits than int() converts: the converter refuses
                    continue
            return Route(mount, name, tuple(sorted(kwargs.items())), "/" + prefix + inner)
    return None


#: Endpoints only a signed-in user can ever be accepted on.
LOGIN_REQUIRED = frozenset({"private", "rooms", "staff"})


# --- the access rules the tests install -------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    endpoint: str  # as AccessRule.endpoint
    enabled: bool = True
    ops_only: bool = False
    deny_status: int = 403
    deny_detail: str = "Forbidden"
    retry_after: int = 30
    disabled_detail: str = "Temporarily disabled"

    def covers(self, r: Route) -> bool:
        if not self.endpoint.startswith("/"):
            return self.endpoint == r.endpoint
        if self.endpoint.endswith("*"):
            return r.routed_path.startswith(self.endpoint[:-1])
        return r.routed_path == self.endpoint


RULES = (
    RuleSpec("/ws/rooms/*", enabled=False, disabled_detail="Rooms are closed for the fuzz test"),
    RuleSpec("/ws/staff/", ops_only=True, deny_status=404, deny_detail="Not Found"),
    RuleSpec("private", ops_only=True, deny_status=403, deny_detail="Operators only"),  # a route name: both mounts
)


def covering_rules(r: Route) -> list[RuleSpec]:
    return [rule for rule in RULES if rule.covers(r)]


def disabled_by_rule(r: Route) -> bool:
    return any(not rule.enabled for rule in covering_rules(r))


# --- credentials -----------------------------------------------------------------------------


@dataclass
class Secrets:
    """Every valid credential of the demo data, by user."""

    tokens: dict[str, str] = field(default_factory=dict)  # wsreject bearer tokens (dave, erin: refused)
    drf: dict[str, str] = field(default_factory=dict)  # DRF Token keys
    jwt: dict[str, str] = field(default_factory=dict)  # SimpleJWT access tokens
    sessions: dict[str, str] = field(default_factory=dict)  # session keys
    session_cookie: str = "sessionid"

    def all_valid(self) -> dict[str, str]:
        """secret -> user for every credential of an active, existing user."""
        found: dict[str, str] = {}
        for mapping in (self.tokens, self.drf, self.jwt, self.sessions):
            for user, secret in mapping.items():
                if USERS[user].active and USERS[user].exists:
                    found[secret] = user
        return found


ANONYMOUS = "anonymous"
REFUSED = "refused"  # a credential was presented and refused: 401 "Invalid credentials"

# RFC 9110 §11.4 ``credentials = auth-scheme [ 1*SP token68 ]`` (the form wsreject reads).
_CREDENTIALS = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([A-Za-z0-9\-._~+/]+=*)")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def authorization(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    values = header_values(headers, b"authorization")
    if len(values) != 1 or not values[0].isascii():
        return None
    match = _CREDENTIALS.fullmatch(values[0].decode("ascii"))
    return (match[1], match[2]) if match else None


def ticket_param(query: bytes) -> str | None:
    if not query or len(query) > 4096:
        return None
    values = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "ticket"]
    if len(values) != 1 or not values[0].startswith("wst_") or len(values[0]) > 100:
        return None
    return values[0]


@dataclass(frozen=True)
class Ticket:
    user: str
    origin: str | None  # the Origin it is bound to


def user_of(
    headers: Sequence[tuple[bytes, bytes]],
    query: bytes,
    secrets: Secrets,
    tickets: dict[str, Ticket] | None = None,
) -> str:
    """Who the request signs in as: a user name, ANONYMOUS or REFUSED."""

    def active(user: str) -> str:
        return user if USERS[user].active and USERS[user].exists else REFUSED

    ticket = ticket_param(query)
    if ticket is not None:
        data = (tickets or {}).get(ticket)
        origins = [v.decode("latin-1") for v in header_values(headers, b"origin")]
        if data is None or (data.origin is not None and origins != [data.origin]):
            return REFUSED
        return active(data.user)
    explicit = authorization(headers)
    if explicit is not None:
        scheme, token = explicit
        if scheme.lower() == "bearer" and token.startswith("wsr_"):
            owner = next((u for u, t in secrets.tokens.items() if t == token), None)
            return active(owner) if owner else REFUSED
        if scheme.lower() == "token":
            owner = next((u for u, t in secrets.drf.items() if t == token), None)
            return active(owner) if owner else REFUSED
        if scheme == "Bearer" and _JWT_SHAPE.fullmatch(token):
            owner = next((u for u, t in secrets.jwt.items() if t == token), None)
            return active(owner) if owner else REFUSED
    if explicit is None or explicit[0].lower() not in ("bearer", "token"):
        cookies = header_values(headers, b"cookie")
        if cookies:
            key = parse_cookie("; ".join(v.decode("latin-1") for v in cookies)).get(secrets.session_cookie)
            owner = next((u for u, k in secrets.sessions.items() if k and k == key), None)
            if owner is not None:
                return active(owner)
    if explicit is not None and explicit[0].lower() == "bearer":
        return REFUSED  # a bearer token nobody recognises
    return ANONYMOUS


def signed_in(user: str) -> bool:
    return user not in (ANONYMOUS, REFUSED)


# --- outcomes --------------------------------------------------------------------------------

ACCEPT = 101


@dataclass(frozen=True)
class Expected:
    """What the demo must answer: one of ``statuses`` (101 = accepted)."""

    statuses: frozenset[int]
    why: str

    def allows(self, status: int) -> bool:
        return status in self.statuses


def expect(statuses: int | set[int], why: str) -> Expected:
    return Expected(frozenset({statuses} if isinstance(statuses, int) else statuses), why)


def subprotocol_outcome(offered: Sequence[str]) -> Expected:
    if not offered or any(p in ("chat.v1", "chat.v2") for p in offered):
        return expect(ACCEPT, "subprotocol: none offered, or chat.v1/chat.v2 among them")
    return expect(400, "subprotocol: offered, none supported")


def expected_outcome(r: Route | None, user: str, origin: str, subprotocols: Sequence[str] | None) -> Expected | None:
    """The demo's answer, or None when the model cannot tell (an origin it does not classify).

    ``origin`` is "none", "ok", "bad" or "unknown"; ``subprotocols`` None means unknown
    (a real server parses the header itself).
    """
    if origin == "bad":
        return expect(403, "origin not allowed")
    if origin == "unknown":
        return None
    if r is None:
        return expect(404, "no route")
    rules = covering_rules(r)
    if any(not rule.enabled for rule in rules):
        return expect(503, "disabled by an access rule")
    restricting = [rule for rule in rules if rule.ops_only]
    if restricting:
        if not signed_in(user):
            return expect(401, "access rule: not signed in")
        if not USERS[user].ops:
            return expect(restricting[0].deny_status, "access rule: not in ops")
    name = r.endpoint
    if name == "echo":
        return expect(ACCEPT, "echo: anyone")
    if name in ("private", "rooms", "staff") and not signed_in(user):
        return expect(401, f"{name}: not signed in")
    if name == "private":
        return expect(ACCEPT, "private: signed in")
    if name == "rooms":
        if not USERS[user].joins_rooms:
            return expect(403, "rooms: no chat.join_room")
        if r.kwarg("name") not in ROOMS:
            return expect(404, "rooms: no such room")
        return expect(ACCEPT, "rooms: member, room exists")
    if name == "staff":
        return expect(ACCEPT if USERS[user].staff else 403, "staff: is_staff")
    if name == "maintenance":
        return expect(503, "maintenance")
    if name == "limited":
        return expect({ACCEPT, 429}, "limited: throttled after 3 a minute")
    if name == "broken":
        return expect(500, "broken: the demo's deliberate 500")
    if name == "teapot":
        return expect(418, "teapot")
    if name == "deny":
        status = r.kwarg("status")
        assert isinstance(status, int)
        return expect({status, 500} if 400 <= status <= 599 else 500, "deny: the status it is told")
    if name == "subprotocol":
        if subprotocols is None:
            return expect({ACCEPT, 400}, "subprotocol: as the server parsed the offer")
        return subprotocol_outcome(subprotocols)
    raise AssertionError(f"unknown endpoint {name}")


def allowed_server_error(r: Route | None, status: int) -> bool:
    """Whether a 5xx is one of the demo's deliberate ones for this route."""
    if r is None:
        return False
    if r.endpoint == "deny":
        return True
    if r.endpoint == "broken":
        return status == 500
    if r.endpoint == "maintenance":
        return status == 503
    return status == 503 and disabled_by_rule(r)


#: Accepted consumers greet (or echo) with JSON that names who they see.
def greeting_user(greeting: object) -> str | None:
    if isinstance(greeting, dict) and isinstance(greeting.get("user"), str):
        return greeting["user"]
    return None
