"""What a client sees of one case on one real server, recorded as an :class:`Observation`.

``run_server`` serves one app on one server kind, plays every case against it
concurrently (``wsclient.play_cases``: the raw client for the exact bytes, then the
``websockets`` client) and records what came back: status, reason phrase, every header
line, body, whether the server closed the connection, messages after accept. Each
answer is also checked against the case's expectation on that server
(``quirks.applied_quirks``: the case table plus the server's measured quirks); the
mismatches are the observation's ``problems``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conformance.cases import DELETED_USERS, Case, Expect
from tests.conformance.http2 import accepted as h2_accepted
from tests.conformance.http2 import attempt_summaries, is_extended_connect, is_h2, play_cases_h2, server_kind
from tests.conformance.http3 import H3_TARGET, play_cases_h3, prepare
from tests.conformance.targets import APP_IMPORTS
from tests.support.quirks import NO_EXTENSION_KINDS, Evidence, Quirk, applied_quirks
from tests.support.servers import Server, running_server
from tests.support.wsclient import Accepted, Denied, Played, expected_accept, play_cases

CLOSE_TIMEOUT = 3.0  # how long a denial's connection is watched for the server's close
IO_TIMEOUT = 5.0
NO_EXTENSION_TIMEOUT = 10.0  # see _play_on
CONCURRENCY = 16  # cases in flight per server


def observed_headers(headers: Iterable[tuple[str, str]], request_key: str | None = None) -> list[tuple[str, str]]:
    """Header lines as recorded: names lower-cased (as the raw client parses them), and a
    ``sec-websocket-accept`` replaced by ``<valid>``/``<invalid>`` for the request's key,
    which is random per request (the only value that cannot be kept for later)."""
    result = []
    for name, value in headers:
        name = name.lower()
        if name == "sec-websocket-accept" and request_key is not None:
            value = "<valid>" if value == expected_accept(request_key) else "<invalid>"
        result.append((name, value))
    return result


@dataclass
class Observation:
    """One app's answer to one case on one target, normalised for comparison.

    ``outcome``: ``accepted`` (101), ``denied`` (another HTTP status), ``no-response``
    (the connection ended without an HTTP answer), and in process also
    ``closed-before-accept`` (``websocket.close`` instead of accept or a response),
    ``app-raised`` / ``app-returned`` (the application ended without answering) or
    ``timeout``. ``attempts`` summarises every attempt of the case (``repeat``) as the
    client saw it; ``messages`` are the texts received after each accept.
    """

    outcome: str
    status: int | None = None
    reason: str | None = None  # None in process (no status line there)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    closed: bool | None = None  # the server closed TCP after a denial (None: not measured)
    extra: bytes = b""  # bytes after the response
    after: str = ""  # in process: how the app ended after answering, when not normally
    messages: list[list[str]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    error: str = ""  # the exception type, for app-raised
    # not compared: the check against the case's expectation, and the raw answer for reports
    problems: list[str] = field(default_factory=list)
    quirks: list[str] = field(default_factory=list)
    raw: str = ""

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def summary(self, width: int = 44) -> str:
        """A one-line answer for tables: status and body, or the messages after accept."""
        if self.outcome == "accepted":
            text = f"{self.status or 101} " + json.dumps([m for attempt in self.messages for m in attempt], ensure_ascii=False)
            if self.header_values("sec-websocket-protocol"):
                text += f" ({self.header_values('sec-websocket-protocol')[0]})"
        elif self.outcome == "denied":
            body = self.body.decode("utf-8", errors="replace")
            text = f"{self.status} {body}" if body else f"{self.status} (no body)"
        elif self.outcome == "app-raised":
            text = f"app raised {self.error}"
        else:
            text = self.outcome
        if len(self.attempts) > 1:
            text = "+".join(a.split()[0] for a in self.attempts[:-1]) + "+" + text
        return text if len(text) <= width else text[: width - 1] + "…"

    def to_json(self) -> dict[str, Any]:
        data = dict(vars(self))
        data["body"] = self.body.decode("latin-1")
        data["extra"] = self.extra.decode("latin-1")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observation:
        data = dict(data)
        data["body"] = data["body"].encode("latin-1")
        data["extra"] = data["extra"].encode("latin-1")
        data["headers"] = [tuple(pair) for pair in data["headers"]]
        return cls(**data)


def _attempt_summary(result: Accepted | Denied | BaseException) -> str:
    if isinstance(result, Accepted):
        return f"101 accepted subprotocol={result.subprotocol}"
    if isinstance(result, Denied):
        return f"{result.status_code} denied"
    return f"error {type(result).__name__}"


def observe_played(played: Played, repeat: int = 1, *, h2: bool = False) -> Observation:
    """The observation of a case played on a real server (``wsclient.play_case``).

    ``attempts`` has one entry per attempt of the case: the ``websockets`` client's view,
    or the raw client's where only that one ran (the last of a repeated case, or a case
    after which the server is expected to die)."""
    raw = played.last_raw
    attempts = [_attempt_summary(result) for result in played.ws]
    if len(attempts) < repeat:
        attempts.append("no-response" if raw is None else f"{raw.status} {'accepted' if raw.status == 101 else 'denied'} (raw)")
    if h2:  # every attempt over HTTP/2 (tests/conformance/http2.py): a 2xx stream left open is an accept
        attempts = attempt_summaries(played)
        outcome = "accepted" if raw is not None and h2_accepted(raw) else "denied"
    else:
        outcome = "accepted" if raw is not None and raw.status == 101 else "denied"
    if raw is None:
        obs = Observation("no-response", attempts=attempts, messages=list(played.messages))
    else:
        obs = Observation(
            outcome,
            status=raw.status,
            reason=raw.reason,
            headers=observed_headers(raw.headers, raw.request_key),
            body=raw.body,
            closed=raw.closed_by_server,
            extra=raw.extra,
            messages=[[m if isinstance(m, str) else repr(m) for m in attempt] for attempt in played.messages],
            attempts=attempts,
            raw=raw.describe(),
        )
    obs.problems = list(played.problems)
    return obs


@dataclass
class Provision:
    """What both apps need: the demo database (env) and the same bearer tokens for both."""

    tokens: dict[str, str]
    demo_env: dict[str, str]
    reference_env: dict[str, str]
    directory: Path

    def env(self, app: str) -> dict[str, str]:
        return self.demo_env if app == "demo" else self.reference_env


def provision(directory: Path) -> Provision:
    from tests.support.demo import prepare_demo

    demo = prepare_demo(directory)
    # The reference knows the tokens of existing users only: erin's (deleted) is unknown to it.
    known = {user: token for user, token in demo.tokens.items() if user not in DELETED_USERS}
    return Provision(demo.tokens, dict(demo.env), {"WSREJECT_REF_TOKENS": json.dumps(known)}, directory)


# --- on a real server ---------------------------------------------------------------------------


@dataclass
class ServerRun:
    """One app on one server kind: what each case produced and how the server fared."""

    kind: str
    app: str
    cases: list[Case] = field(default_factory=list)
    played: dict[str, Played] = field(default_factory=dict)
    observations: dict[str, Observation] = field(default_factory=dict)
    alive_after: bool = True
    dead_after: dict[str, bool] = field(default_factory=dict)  # dying case -> the server exited
    log: str = ""
    seconds: float = 0.0

    def evidence(self) -> Evidence:
        """What this run shows beyond the cases' expectations (``quirks.EVIDENCE``)."""
        responses = {case_id: played.last_raw for case_id, played in self.played.items()}
        return Evidence(cases=[case.for_app(self.app) for case in self.cases], log=self.log, responses=responses, app=self.app)


# What each app does instead of a denial on a server without the denial extension: the
# reference (FastAPI) sends the extension's messages anyway; the demo uses wsreject's default.
APP_FALLBACKS: dict[str, str | None] = {"reference": None, "demo": "close"}




def app_raises(kind: str, case: Case, app: str) -> bool:
    """Whether an exception escapes ``app`` before accept on ``kind``: the reference on case
    16; and on a server without the extension, the reference wherever it sends a denial
    response of its own (``websocket.send_denial_response``: Starlette raises RuntimeError
    there), which reference_fastapi.py does for the teapot and for repeated headers."""
    if app != "reference":
        return False
    if case.reference_raises:
        return True
    own_response = case.id == "s17-teapot" or "repeated-header" in case.tags
    return kind in NO_EXTENSION_KINDS and own_response


def expectation(
    kind: str, case: Case, app: str, active: Sequence[Quirk] | None = None
) -> tuple[Expect, list[str], str | None]:
    """(what a client should see of ``case`` from ``app`` on ``kind`` with the ``active``
    quirks (default: the installed versions'), the quirks applied, a problem when no quirk
    says what the server does)."""
    case = case.for_app(app)
    raises = app_raises(kind, case, app)
    try:
        expect, used = applied_quirks(kind, case, app_raises=raises, fallback=APP_FALLBACKS[app], active=active)
    except ValueError as exc:
        return case.expect, [], str(exc)
    return expect, used, None


def _play_on(target: str, server: Server, cases: Sequence[Case], expectations: dict[str, Expect], tokens: dict[str, str], h3=None):
    if h3 is not None:
        return play_cases_h3(
            cases, h3, tokens, expectations, concurrency=CONCURRENCY, timeout=IO_TIMEOUT, close_timeout=CLOSE_TIMEOUT
        )
    if is_h2(target):
        return play_cases_h2(
            cases, server.host, server.port, tokens, expectations,
            concurrency=CONCURRENCY, timeout=IO_TIMEOUT, close_timeout=CLOSE_TIMEOUT,
        )  # fmt: skip
    # Without the extension an ignored denial is answered by nothing until the server's own
    # handshake timeout (Daphne: 5 s): wait longer than that.
    timeout = NO_EXTENSION_TIMEOUT if server.kind in NO_EXTENSION_KINDS else IO_TIMEOUT
    return play_cases(
        cases, server.host, server.port, tokens, expectations,
        concurrency=CONCURRENCY, timeout=timeout, close_timeout=CLOSE_TIMEOUT,
    )  # fmt: skip


def run_server(kind: str, app: str, cases: Sequence[Case], prov: Provision) -> ServerRun:
    """Serve ``app`` on ``kind`` once for all cases (concurrently); a case after which the
    server is expected to die (``Expect.server_dies``) gets a fresh server of its own."""
    started = time.monotonic()
    run = ServerRun(kind, app, cases=list(cases))
    expectations: dict[str, Expect] = {}
    notes: dict[str, tuple[list[str], str | None]] = {}
    for case in cases:
        expect, used, problem = expectation(kind, case, app)
        expectations[case.id] = expect
        notes[case.id] = (used, problem)
    survivors = [case for case in cases if not expectations[case.id].server_dies]
    dying = [case for case in cases if expectations[case.id].server_dies]
    env = prov.env(app)

    @contextlib.contextmanager
    def served():
        if kind != H3_TARGET:
            with running_server(server_kind(kind), APP_IMPORTS[app], env=env) as server:
                yield server, None
            return
        # HTTP/3 (http3.py): QUIC on a UDP port of its own with a certificate made for the run;
        # TCP (HTTP/1.1 and HTTP/2 over TLS) answers too, which is what readiness waits for.
        h3 = prepare(Path(tempfile.mkdtemp(prefix=f"h3-{app}-", dir=prov.directory)))
        with running_server(server_kind(kind), APP_IMPORTS[app], env=env, extra_args=h3.server_args(), ready="tcp") as server:
            yield server, h3

    if survivors:
        with served() as (server, h3):
            run.played.update(asyncio.run(_play_on(kind, server, survivors, expectations, prov.tokens, h3)))
            run.alive_after = server.alive()
            run.log = server.log()
    for case in dying:
        with served() as (server, h3):
            run.played.update(asyncio.run(_play_on(kind, server, [case], expectations, prov.tokens, h3)))
            run.dead_after[case.id] = server.wait_exit(10.0)
    for case in cases:
        obs = observe_played(run.played[case.id], case.repeat, h2=is_extended_connect(kind))
        used, problem = notes[case.id]
        obs.quirks = used
        if problem:
            obs.problems.append(problem)
        if case.id in run.dead_after and not run.dead_after[case.id]:
            obs.problems.append(f"{kind} was expected to die after this case (SERVER_QUIRKS), it is still up")
        if case.id not in run.dead_after and not run.alive_after:
            obs.problems.append(f"{kind} died during the cases")
        run.observations[case.id] = obs
    run.seconds = time.monotonic() - started
    return run
