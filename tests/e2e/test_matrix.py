"""Issue 3's real-server matrix: the demo over the wire, in the modes the conformance suite
does not cover.

The demo on every server *with* the denial extension (Daphne + wsreject, uvicorn with
websockets, websockets-sansio and wsproto, hypercorn, granian), every case including the
scenario's 1–17, with the raw client and a real ``websockets`` client, is
``tests/conformance/test_conformance.py`` (it compares with the FastAPI reference too).
Here:

* **stock Daphne, fallback ``close``** (wsreject's default): every denial is Daphne's own
  ``403 Access denied`` — no headers, no body, connection closed; accepted cases unchanged;
* **stock Daphne, fallback ``close_code``** (``tests/e2e/settings_close_code.py``): every
  denial is accepted, then one ``{"detail": ...}`` frame and a close with ``4000 + status``,
  read with the ``websockets`` client; Daphne drops the close reason (``close.reason-dropped``);
* **close-code mode on Daphne + wsreject** (the demo's ``/ws/browser/`` endpoints): the
  reason arrives, cut to 123 bytes without splitting a UTF-8 character;
* **``python manage.py runserver``** on the demo: scenario case 2 to a plain ``websockets``
  client is ``401``, ``www-authenticate: Bearer``, ``{"detail":"Not authenticated"}``, and
  the server closes the TCP connection.

Every server starts as a subprocess on a free port and is awaited by readiness (an HTTP
answer), never by a sleep. Cases are played concurrently against one server per mode.
Messages after accept are compared as JSON here (their exact bytes are the conformance
suite's business); everything about the handshake and the close is compared exactly.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conformance.cases import (
    CASES,
    CASES_BY_ID,
    LONG_DETAIL,
    Case,
    Expect,
    case_ids,
    deny_path,
)
from tests.support.demo import DEMO_APP, DemoData, prepare_demo
from tests.support.quirks import (
    YES,
    Evidence,
    applied_quirks,
    denial_detail,
    evidence_state,
    has_quirk,
    server_version,
)
from tests.support.servers import HOST, Server, running_process, running_server
from tests.support.wsclient import (
    Accepted,
    Denied,
    NoResponse,
    RawResponse,
    raw_handshake,
    ws_connect,
)

pytestmark = [pytest.mark.server]

CLOSE_CODE_SETTINGS = "tests.e2e.settings_close_code"
CONCURRENCY = 16
TIMEOUT = 5.0
CLOSE_TIMEOUT = 2.0

@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("e2e-demo"))


# --- playing a case on stock Daphne -----------------------------------------------------------


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    raw: RawResponse | None = None
    close: tuple[int | None, str | None] | None = None  # (code, reason) seen by websockets
    frames: list[str] = field(default_factory=list)


def _same_json(got: str | bytes, want: str) -> bool:
    try:
        return json.loads(got) == json.loads(want)
    except (TypeError, ValueError):
        return got == want


async def _ws_attempt(url: str, request, want: Expect, outcome: Outcome, label: str, close_code: int | None) -> None:
    """One ``websockets`` handshake checked against ``want``; ``close_code``: the denial
    arrives as accept + frame + close with this code (close-code mode)."""
    try:
        result = await ws_connect(url, headers=request.all_headers(), subprotocols=request.subprotocols or None, timeout=TIMEOUT)
    except Exception as exc:
        outcome.problems.append(f"{label}: websockets failed: {exc!r}")
        return
    if isinstance(result, Denied):
        if not want.denied:
            outcome.problems.append(f"{label}: denied with {result.status_code}, expected {want.status}")
        else:
            outcome.problems += [f"{label}: {p}" for p in want.check_denied(result)]
        return
    async with result:
        if not want.accepted:
            outcome.problems.append(f"{label}: accepted, expected {want.status}")
            return
        if result.subprotocol != want.subprotocol:
            outcome.problems.append(f"{label}: subprotocol {result.subprotocol!r}, expected {want.subprotocol!r}")
        if want.first_message is not None:
            try:
                first = await result.recv()
            except Exception as exc:
                outcome.problems.append(f"{label}: no first message: {exc!r}")
                return
            outcome.frames.append(first)
            # The close-code frame is wsreject's own rendering: exact. App messages: as JSON.
            ok = first == want.first_message if close_code is not None else _same_json(first, want.first_message)
            if not ok:
                outcome.problems.append(f"{label}: first message {first!r}, expected {want.first_message!r}")
        for outgoing, reply in want.exchanges:
            await result.send(outgoing)
            got = await result.recv()
            if got != reply:
                outcome.problems.append(f"{label}: reply to {outgoing!r} is {got!r}, expected {reply!r}")
        if close_code is not None:
            try:
                extra = await result.recv(TIMEOUT)
                outcome.problems.append(f"{label}: a frame after the detail: {extra!r}")
            except ConnectionClosed:
                pass
            except TimeoutError:
                outcome.problems.append(f"{label}: the server did not close after the detail frame")
            outcome.close = (result.close_code, result.close_reason)


async def play_on_stock(server: Server, case: Case, tokens: dict[str, str], fallback: str) -> Outcome:
    """Every attempt of ``case`` as ``expected_on_server("daphne-stock", fallback=...)`` says.
    In ``close`` mode the last attempt goes through the raw client first (exact bytes),
    then through ``websockets``; in ``close_code`` mode every attempt is a ``websockets``
    connection (the answer is a 101: what matters comes after it)."""
    case = case.for_app("demo")
    expect, _ = applied_quirks("daphne-stock", case, fallback=fallback)
    request = case.resolve(tokens)
    url = server.url(request.path)
    outcome = Outcome()
    for attempt in range(1, case.repeat):
        await _ws_attempt(url, request, case.before, outcome, f"attempt {attempt}", None)
    close_code = 4000 + case.expect.status if case.expect.denied and expect.accepted else None
    if fallback == "close":
        try:
            outcome.raw = await raw_handshake(
                server.host, server.port, request.path, request.all_headers(), subprotocols=request.subprotocols,
                timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT,
            )  # fmt: skip
        except NoResponse as exc:
            outcome.problems.append(f"raw: no response: {exc}")
        else:
            outcome.problems += [f"raw: {p}" for p in expect.check_raw(outcome.raw)]
        if case.repeat > 1:
            return outcome
    await _ws_attempt(url, request, expect, outcome, "ws", close_code)
    return outcome


async def _play_all(server: Server, tokens: dict[str, str], fallback: str) -> dict[str, Outcome]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(case: Case) -> tuple[str, Outcome]:
        async with semaphore:
            return case.id, await play_on_stock(server, case, tokens, fallback)

    return dict(await asyncio.gather(*(one(case) for case in CASES)))


@pytest.fixture(scope="module")
def fallback_close(demo) -> dict[str, Outcome]:
    with running_server("daphne-stock", DEMO_APP, env=demo.env) as server:
        outcomes = asyncio.run(_play_all(server, demo.tokens, "close"))
        assert server.alive(), server.log()[-3000:]
    return outcomes


@pytest.fixture(scope="module")
def fallback_close_code(demo) -> dict[str, Outcome]:
    env = {**demo.env, "DJANGO_SETTINGS_MODULE": CLOSE_CODE_SETTINGS}
    with running_server("daphne-stock", DEMO_APP, env=env) as server:
        outcomes = asyncio.run(_play_all(server, demo.tokens, "close_code"))
        assert server.alive(), server.log()[-3000:]
    return outcomes


# --- stock Daphne, fallback "close" ------------------------------------------------------------


@pytest.mark.parametrize("case_id", case_ids())
def test_stock_daphne_fallback_close(fallback_close, case_id: str) -> None:
    case = CASES_BY_ID[case_id].for_app("demo")
    outcome = fallback_close[case_id]
    assert not outcome.problems, f"{case_id}:\n" + "\n".join(outcome.problems) + (
        f"\n--- raw ---\n{outcome.raw.describe()}" if outcome.raw else ""
    )
    raw = outcome.raw
    assert raw is not None
    if case.expect.accepted:
        assert raw.status == 101
        return
    # Daphne's own answers: a bare status line, nothing else, then the connection closes.
    assert raw.headers == [] and raw.body == b"" and raw.closed_by_server is True and not raw.reset
    if case_id == "origin-two-headers":
        assert has_quirk("daphne-stock", "handshake.repeated-origin-400-bare")
        assert (raw.status, raw.reason.split(":")[0]) == (400, "HTTP Origin header invalid")
    else:
        assert has_quirk("daphne-stock", "close-before-accept.403-access-denied")
        assert (raw.status, raw.reason) == (403, "Access denied")


# --- stock Daphne, fallback "close_code" -------------------------------------------------------


@pytest.mark.parametrize("case_id", case_ids())
def test_stock_daphne_fallback_close_code(fallback_close_code, case_id: str) -> None:
    case = CASES_BY_ID[case_id].for_app("demo")
    outcome = fallback_close_code[case_id]
    assert not outcome.problems, f"{case_id}:\n" + "\n".join(outcome.problems)
    expect, _ = applied_quirks("daphne-stock", case, fallback="close_code")
    if case.expect.denied and expect.accepted:
        # 4000 + status; stock Daphne drops the reason (SERVER_QUIRKS: close.reason-dropped).
        reason = "" if has_quirk("daphne-stock", "close.reason-dropped") else _truncated(denial_detail(case.expect))
        assert outcome.close == (4000 + case.expect.status, reason), f"daphne-stock ({server_version('daphne-stock')})"
    else:
        assert outcome.close is None


def test_stock_daphne_close_reason_quirk(fallback_close_code) -> None:
    """``close.reason-dropped`` is in the table exactly when this run shows it."""
    state = evidence_state("close.reason-dropped", [Evidence(closes={k: o.close for k, o in fallback_close_code.items() if o.close})])
    assert (state == YES) == has_quirk("daphne-stock", "close.reason-dropped"), state


# --- close-code mode on Daphne + wsreject (/ws/browser/) ---------------------------------------

LONG_UNICODE_DETAIL = "ü" * 100  # 200 bytes of UTF-8: the 123-byte cut falls inside a character


def _browser(path: str) -> str:
    """The same endpoint under /ws/browser/, where the demo denies in close-code mode."""
    assert path.startswith("/ws/")
    return "/ws/browser/" + path[len("/ws/"):]


@pytest.fixture(scope="module")
def daphne_wsreject(demo) -> Iterator[Server]:
    with running_server("daphne-wsreject", DEMO_APP, env=demo.env) as server:
        yield server


def _truncated(text: str, limit: int = 123) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        pytest.param("/ws/browser/private/", 401, "Not authenticated", id="case-2"),
        pytest.param("/ws/browser/maintenance/", 503, "Down for maintenance", id="case-12"),
        pytest.param("/ws/browser/broken/", 500, "Internal Server Error", id="case-16"),
        pytest.param(_browser(deny_path(413, detail=LONG_DETAIL)), 413, LONG_DETAIL, id="long-ascii-detail"),
        pytest.param(_browser(deny_path(400, detail=LONG_UNICODE_DETAIL)), 400, LONG_UNICODE_DETAIL, id="long-utf8-detail"),
    ],
)
async def test_close_code_mode_on_daphne_wsreject(daphne_wsreject: Server, path: str, status: int, detail: str) -> None:
    """wsreject's Daphne passes the close reason on: 4000 + status, the detail cut to 123
    bytes on a character boundary, after the full detail in a frame."""
    result = await ws_connect(daphne_wsreject.url(path))
    assert isinstance(result, Accepted), result
    async with result:
        assert json.loads(await result.recv()) == {"detail": detail}
        with pytest.raises(ConnectionClosed):
            await result.recv()
        assert result.close_code == 4000 + status
        assert result.close_reason == _truncated(detail)
        assert len(result.close_reason.encode("utf-8")) <= 123


# --- manage.py runserver ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runserver(demo) -> Iterator[tuple[str, int]]:
    """``python manage.py runserver 127.0.0.1:PORT --noreload`` on the demo (wsreject's
    runserver: ``wsreject`` is listed before ``daphne``), ready when it answers HTTP."""
    with running_process(
        lambda port: [sys.executable, "manage.py", "runserver", f"{HOST}:{port}", "--noreload"],
        label="runserver",
        env=demo.env,
        startup_timeout=30.0,
    ) as server:
        yield server.address


CASE_2_BODY = b'{"detail":"Not authenticated"}'


async def test_runserver_case_2_with_websockets(runserver) -> None:
    host, port = runserver
    result = await ws_connect(f"ws://{host}:{port}/ws/private/")
    assert isinstance(result, Denied), f"expected a refused handshake, got {result!r}"
    assert result.status_code == 401
    assert result.header("www-authenticate") == "Bearer"
    assert result.header("content-type") == "application/json"
    assert result.body == CASE_2_BODY
    assert result.json() == {"detail": "Not authenticated"}


async def test_runserver_case_2_closes_the_connection(runserver) -> None:
    host, port = runserver
    raw = await raw_handshake(host, port, "/ws/private/", close_timeout=CLOSE_TIMEOUT)
    assert (raw.status, raw.reason) == (401, "Unauthorized")
    assert raw.header_values("www-authenticate") == ["Bearer"]
    assert raw.header("content-length") == str(len(CASE_2_BODY))
    assert raw.header("connection") == "close"
    assert raw.body == CASE_2_BODY
    # The server closed the TCP connection (EOF, not a reset), with nothing after the body.
    assert raw.closed_by_server is True and not raw.reset and raw.extra == b""
