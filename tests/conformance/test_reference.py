"""The FastAPI reference app, on every real server with the denial extension, against every case.

Each server kind is started once per module; all cases are played against it concurrently
(``raw_handshake`` for the exact bytes, then ``ws_connect`` as a real client would), and each
case is then a test of its own. Expectations come from ``cases.py`` through
``quirks.applied_quirks``, i.e. with the quirks of the installed server versions applied —
and every such quirk in ``SERVER_QUIRKS`` must actually be observed, so none can linger
after a server changes. Cases after which the server is expected to die run on a fresh
server each.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conformance.cases import CASES, CASES_BY_ID, DELETED_USERS, USERS, case_ids
from tests.support.quirks import (
    EVIDENCE,
    MODIFICATIONS,
    NO,
    REPLACEMENTS,
    YES,
    Evidence,
    applied_quirks,
    evidence_state,
    has_quirk,
    quirk_keys,
    quirks,
    server_version,
    unmeasured_message,
)
from tests.support.servers import Server, running_server
from tests.support.wsclient import (
    NoResponse,
    Played,
    play_case,
    play_cases,
    raw_handshake,
    ws_connect,
)

pytestmark = [pytest.mark.server, pytest.mark.one_leg]

REFERENCE_APP = "tests.conformance.reference_fastapi:app"
REFERENCE_KINDS = ("uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto", "hypercorn", "granian")
CLOSE_TIMEOUT = 3.0  # how long a denial's connection is watched for the server's close
CONCURRENCY = 16


@dataclass
class Run:
    kind: str
    played: dict[str, Played] = field(default_factory=dict)
    used_quirks: dict[str, list[str]] = field(default_factory=dict)  # case id -> quirk keys applied
    log: str = ""
    alive_after: bool = True
    dead_after: dict[str, bool] = field(default_factory=dict)  # case id -> server exited (dying cases)
    dying_logs: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    """Fresh random tokens for every user, erin (deleted) included."""
    return {user: secrets.token_urlsafe(24) for user in USERS}


@pytest.fixture(scope="module")
def reference_env(tokens) -> dict[str, str]:
    # The reference app only knows tokens of users that exist: erin's is unknown to it.
    known = {user: token for user, token in tokens.items() if user not in DELETED_USERS}
    return {"WSREJECT_REF_TOKENS": json.dumps(known)}


@pytest.fixture(scope="module", params=REFERENCE_KINDS)
def run(request, tokens, reference_env) -> Run:
    kind = request.param
    result = Run(kind)
    expectations = {}
    for case in CASES:
        expect, used = applied_quirks(kind, case, app_raises=case.reference_raises)
        expectations[case.id] = expect
        result.used_quirks[case.id] = used
    survivors = [c for c in CASES if not expectations[c.id].server_dies]
    dying = [c for c in CASES if expectations[c.id].server_dies]

    with running_server(kind, REFERENCE_APP, env=reference_env) as server:
        played = play_cases(
            survivors, server.host, server.port, tokens, expectations, concurrency=CONCURRENCY, close_timeout=CLOSE_TIMEOUT
        )
        result.played.update(asyncio.run(played))
        result.alive_after = server.alive()
        result.log = server.log()
    for case in dying:
        with running_server(kind, REFERENCE_APP, env=reference_env) as server:
            result.played[case.id] = asyncio.run(
                play_case(case, server.host, server.port, tokens, expect=expectations[case.id], close_timeout=CLOSE_TIMEOUT)
            )
            result.dead_after[case.id] = server.wait_exit(10.0)
            result.dying_logs[case.id] = server.log()
    return result


@pytest.mark.parametrize("case_id", case_ids())
def test_case(run: Run, case_id: str) -> None:
    played = run.played[case_id]
    raw = played.last_raw
    detail = raw.describe() if raw is not None else "(no HTTP response)"
    unmeasured = unmeasured_message(run.kind)
    assert not played.problems, (
        f"{case_id} on {run.kind} ({server_version(run.kind)}), quirks applied: {run.used_quirks[case_id]}\n"
        + (f"{unmeasured}\n" if unmeasured else "")
        + "\n".join(played.problems)
        + f"\n--- last raw response ---\n{detail}"
    )


def test_server_survived_the_cases(run: Run) -> None:
    assert run.alive_after, f"{run.kind} died during the cases:\n{run.log[-4000:]}"
    for case_id, dead in run.dead_after.items():
        assert dead, f"{run.kind}: {case_id} was expected to kill the server (SERVER_QUIRKS), it is still up"


def test_every_quirk_is_observed(run: Run) -> None:
    """Each quirk of this kind either changed some case's expectation (and that case passed,
    see test_case) or is seen in the run's evidence. A quirk that nothing exercises is stale
    and must go (or be keyed to the versions that still have it)."""
    used = {key for keys in run.used_quirks.values() for key in keys}
    for quirk in quirks(run.kind):
        if quirk.what in REPLACEMENTS or quirk.what in MODIFICATIONS:
            assert quirk.what in used, f"{run.kind}: quirk {quirk.what!r} applies to no case"
        else:
            assert quirk.what in EVIDENCE, f"{run.kind}: {quirk.what!r} is asserted nowhere"


def _evidence(run: Run) -> Evidence:
    return Evidence(cases=CASES, log=run.log, app="reference", responses={case_id: p.last_raw for case_id, p in run.played.items()})


@pytest.mark.parametrize("what", [what for what in EVIDENCE if what != "close.reason-dropped"])
def test_evidence(run: Run, what: str) -> None:
    """The log, the status lines and the header order show each evidence quirk of this
    server, and none of the others (close reasons: tests/e2e/test_matrix.py)."""
    state = evidence_state(what, [_evidence(run)])
    if what in quirk_keys(run.kind):
        assert state == YES, f"{run.kind} ({server_version(run.kind)}): {what} is {state}, the table says {YES}"
    else:  # None: nothing in this run can show it (e.g. granian 2.8.7 dies on repeated headers)
        assert state in (NO, None), f"{run.kind} ({server_version(run.kind)}): {what} is {state}, not in the table"


def test_unexpected_error_leaks_nothing(run: Run) -> None:
    raw = run.played["s16-broken"].last_raw
    assert raw is not None
    wire = raw.raw_head + raw.body
    for secret in (b"hunter2", b"database exploded", b"RuntimeError", b"Traceback"):
        assert secret not in wire, f"{run.kind} leaked {secret!r}"


def test_rate_limit_attempts(run: Run) -> None:
    played = run.played["s13-limited"]
    case = CASES_BY_ID["s13-limited"]
    assert [m for m in played.messages] == [['{"ok":true}']] * (case.repeat - 1)
    raw = played.last_raw
    assert raw is not None and raw.status == 429
    assert 1 <= int(raw.header("retry-after")) <= 60


# --- reference-app behaviour outside the case table ----------------------------------------------


@pytest.fixture(scope="module")
def uvicorn_reference(reference_env):
    with running_server("uvicorn-wsproto", REFERENCE_APP, env=reference_env) as server:
        yield server


@pytest.mark.asyncio
async def test_echo_closes_on_binary_frame(uvicorn_reference: Server) -> None:
    """The reference's ``WebSocketException`` after accept: 1003 with a reason."""
    result = await ws_connect(uvicorn_reference.url("/ws/echo/"))
    async with result:
        await result.send("hi")
        assert await result.recv() == "hi"
        await result.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed):
            await result.recv()
        assert result.close_code == 1003
        assert result.close_reason == "Text frames only"


@pytest.mark.asyncio
async def test_retry_after_is_truthful(uvicorn_reference: Server) -> None:
    """Denied attempts do not count: the limiter stays at 3 admitted and Retry-After
    shrinks with time (whole seconds, >= 1)."""
    host, port = uvicorn_reference.address
    seen = []
    started = time.monotonic()
    for _ in range(5):
        response = await raw_handshake(host, port, "/ws/limited/", close_timeout=1.0)
        seen.append(response.status)
    elapsed = time.monotonic() - started  # at least the server's time since the first admission
    assert seen[:3] == [101, 101, 101]
    assert seen[3:] == [429, 429]
    assert 60 - elapsed <= int(response.header("retry-after")) <= 60


# --- stock Daphne: no extension -----------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne_reference(reference_env):
    with running_server("daphne-stock", REFERENCE_APP, env=reference_env) as server:
        yield server


@pytest.mark.asyncio
async def test_daphne_stock_quirks(daphne_reference: Server, tokens) -> None:
    """What stock Daphne does with the FastAPI reference (SERVER_QUIRKS["daphne-stock"]).
    The path parameter case is not in the case table: it is the reference closing before
    accept, which only this test plays."""
    host, port = daphne_reference.address
    assert has_quirk("daphne-stock", "denial.unsupported-reset")
    start = time.monotonic()
    with pytest.raises(NoResponse):
        await raw_handshake(host, port, "/ws/private/", timeout=10.0)
    assert time.monotonic() - start < 9.0  # the handshake timeout (5 s), not ours

    assert has_quirk("daphne-stock", "close-before-accept.403-access-denied")
    # A path parameter that fails validation: FastAPI closes (1008) before accept.
    response = await raw_handshake(host, port, "/ws/deny/not-a-number/", close_timeout=2.0)
    assert (response.status, response.reason, response.headers, response.body) == (403, "Access denied", [], b"")
    assert response.closed_by_server is True

    assert has_quirk("daphne-stock", "app-error.500-bare")
    response = await raw_handshake(host, port, "/ws/broken/", close_timeout=2.0)
    assert (response.status, response.reason, response.headers, response.body) == (500, "Internal server error", [], b"")
    assert b"hunter2" not in response.raw_head

    assert has_quirk("daphne-stock", "handshake.repeated-origin-400-bare")
    response = await raw_handshake(
        host, port, "/ws/echo/", [("Origin", "http://localhost:8000"), ("Origin", "http://localhost:8000")], close_timeout=2.0
    )
    assert response.status == 400
    assert response.reason.startswith("HTTP Origin header invalid")

    accepted = await ws_connect(daphne_reference.url("/ws/private/"), headers=[("Authorization", f"Bearer {tokens['alice']}")])
    async with accepted:
        assert await accepted.recv() == '{"user":"alice"}'
