"""The scenarios, and the request each peer gets for each of them.

A scenario is one kind of handshake (a credential-less 401, a valid token denied
403, ...). Peers differ in what they can express: the FastAPI reference has bearer
tokens of its own and no sessions, stock Channels knows sessions only and can only
refuse with a bare 403, stock Daphne turns every wsreject denial into its own 403.
:func:`request_for` maps a scenario to the equivalent request on a peer, or to None
when the peer cannot express it (shown as "—").
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

ROOM = "/ws/rooms/lobby/"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    accepted: bool  # a 101: measured with the handshake client instead of wrk


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("no_credential", "no credential → 401", False),
    Scenario("token_denied", "valid token, no permission → 403", False),
    Scenario("forged_token", "forged token → 401", False),
    Scenario("session_accepted", "session, room accepted → 101", True),
    Scenario("echo_accepted", "unguarded echo → 101", True),
    Scenario("unknown_path", "unknown path → 404", False),
)
SCENARIOS_BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass(frozen=True)
class Request:
    """One handshake as a peer gets it, and what a correct answer is."""

    path: str
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 101
    first_message: str | None = None  # a substring of the first text frame after a 101
    note: str = ""  # how this differs from the scenario's wording, for the report
    # The same headers with secrets replaced, for results.json.
    shown_headers: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Credentials:
    """Secrets of one run: the demo's tokens and sessions, the reference's tokens."""

    tokens: dict[str, str]  # wsreject tokens from seed_demo
    sessions: dict[str, str]  # Django session keys (cookie values) from the demo's database
    reference_tokens: dict[str, str]  # the FastAPI reference's {user: token}
    forged_token: str = field(default_factory=lambda: forged_wsreject_token())
    forged_session: str = field(default_factory=lambda: secrets.token_hex(16))


def forged_wsreject_token() -> str:
    """Shaped like a wsreject token (``wsr_`` + 40 + 22 letters and digits), MAC wrong."""
    alphabet = string.ascii_letters + string.digits
    return "wsr_" + "".join(secrets.choice(alphabet) for _ in range(62))


Headers = tuple[tuple[str, str], ...]


def _bearer(token: str, who: str) -> tuple[Headers, Headers]:
    """(the headers sent, the same as shown in results.json)."""
    return (("Authorization", f"Bearer {token}"),), (("Authorization", f"Bearer <{who}>"),)


def _cookie(key: str, who: str) -> tuple[Headers, Headers]:
    return (("Cookie", f"sessionid={key}"),), (("Cookie", f"sessionid=<{who}>"),)


def request_for(family: str, scenario: str, creds: Credentials) -> Request | None:
    """The request for ``scenario`` on a peer of ``family``; None: not expressible there.

    Families: ``raw`` (the limit), ``fastapi``, ``channels`` (stock Channels),
    ``wsreject`` (the demo on a server with the denial extension), ``wsreject-close``
    (the demo on stock Daphne: every denial becomes the server's bare 403).
    """
    denied = {"wsreject-close": 403, "channels": 403}
    greeting = '"user":"alice"'
    if scenario == "no_credential":
        return Request("/ws/private/", status=denied.get(family, 401))
    if scenario == "token_denied":
        if family == "channels":
            sent, shown = _cookie(creds.sessions["bob"], "bob's session")
            return Request(ROOM, sent, 403, note="bob's session cookie", shown_headers=shown)
        tokens = creds.reference_tokens if family == "fastapi" else creds.tokens
        sent, shown = _bearer(tokens["bob"], "bob's token")
        return Request(ROOM, sent, denied.get(family, 403), shown_headers=shown)
    if scenario == "forged_token":
        if family == "channels":
            sent, shown = _cookie(creds.forged_session, "random session key")
            return Request("/ws/private/", sent, 403, note="a random session cookie", shown_headers=shown)
        sent, shown = _bearer(creds.forged_token, "forged wsr_ token")
        return Request("/ws/private/", sent, denied.get(family, 401), shown_headers=shown)
    if scenario == "session_accepted":
        if family == "fastapi":
            sent, shown = _bearer(creds.reference_tokens["alice"], "alice's token")
            note = "alice's bearer token (no sessions)"
            return Request(ROOM, sent, first_message=greeting, note=note, shown_headers=shown)
        sent, shown = _cookie(creds.sessions["alice"], "alice's session")
        return Request(ROOM, sent, first_message=greeting, shown_headers=shown)
    if scenario == "echo_accepted":
        return Request("/ws/echo/")
    if scenario == "unknown_path":
        if family == "channels":
            return None  # URLRouter raises: a 500 and a traceback, no denial
        return Request("/ws/does-not-exist/", status=denied.get(family, 404))
    raise ValueError(f"unknown scenario {scenario!r}")
