"""The conformance runner: every case against both apps, in process and on every real server.

One command prints the side-by-side table::

    python -m tests.conformance.runner                       # everything (in process + 6 servers)
    python -m tests.conformance.runner --servers in-process,granian --cases s02,s16
    python -m tests.conformance.runner --markdown docs/conformance.md   # also write the docs table

For every *target* (``in-process``: the ASGI application called directly, with the
``websocket.http.response`` extension advertised; or a real server kind from
``tests/support/servers.py``) and every case of ``cases.py`` it plays the same request
against the FastAPI reference (``reference_fastapi.py``) and the Django demo
(``project.asgi``), records what a client sees (status, reason phrase, every header line,
body, whether the server closed the connection, messages after accept, what the
``websockets`` client saw) and compares the two answers field by field.

Only what must differ is normalised: ``date`` and ``server`` headers are dropped, a
``retry-after`` of whole seconds >= 1 becomes ``<seconds>``, a ``sec-websocket-accept``
becomes ``<valid>`` / ``<invalid>`` (the key is random per request). Everything else is
compared exactly. Header *order* across different names is not semantically
significant in HTTP: it is reported (``~`` in the table) but never fails; the order of
the values of one repeated header is significant and compared.

Every difference is either listed in ``differences.py`` (a deliberate difference, with
its reason) or a failure. Independently, each app's answer is checked against the case's
expectation on that target (``servers.applied_quirks``: the case table plus the server's
measured quirks). The exit status is 1 when anything is undocumented or unexpected.

The demo needs a migrated, seeded database: the runner makes a fresh SQLite one
(``tests.support.demo.prepare_demo``) and gives both apps the same bearer tokens.
In-process runs happen in a worker subprocess (``--worker``), so that Django is set up
with that database and the reference reads its tokens at import, exactly as a server
process would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.conformance.cases import CASES, DELETED_USERS, Case, Expect
from tests.conformance.differences import DIFFERENCES, Difference
from tests.support.servers import REPO_ROOT, Server, applied_quirks, running_server, server_version
from tests.support.wsclient import Accepted, Denied, Played, expected_accept, play_cases

IN_PROCESS = "in-process"
SERVER_TARGETS = (
    "daphne-wsreject",
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
)
TARGETS = (IN_PROCESS, *SERVER_TARGETS)
APPS = ("reference", "demo")
APP_IMPORTS = {
    "reference": "tests.conformance.reference_fastapi:app",
    "demo": "project.asgi:application",
}
SHORT_TARGET = {
    IN_PROCESS: "in-proc",
    "daphne-wsreject": "daphne+wsr",
    "uvicorn-websockets": "uv-ws",
    "uvicorn-websockets-sansio": "uv-sansio",
    "uvicorn-wsproto": "uv-wsproto",
    "hypercorn": "hypercorn",
    "granian": "granian",
}
DOCS_COMMAND = "python -m tests.conformance.runner --markdown docs/conformance.md"

CLOSE_TIMEOUT = 3.0  # how long a denial's connection is watched for the server's close
IO_TIMEOUT = 5.0
CONCURRENCY = 16  # cases in flight per server
INPROCESS_TIMEOUT = 3.0

# --- what a client saw, normalised ----------------------------------------------------------

DROPPED_HEADERS = ("date", "server")
_SECONDS = re.compile(r"[1-9][0-9]*")


def normalise_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """For comparison: drop ``date``/``server``; a ``retry-after`` of whole seconds >= 1
    becomes ``<seconds>`` (the time left in a window differs between two runs)."""
    result = []
    for name, value in headers:
        if name in DROPPED_HEADERS:
            continue
        if name == "retry-after" and _SECONDS.fullmatch(value):
            value = "<seconds>"
        result.append((name, value))
    return result


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
            text = "101 " + json.dumps([m for attempt in self.messages for m in attempt], ensure_ascii=False)
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


def observe_played(played: Played, repeat: int = 1) -> Observation:
    """The observation of a case played on a real server (``wsclient.play_case``).

    ``attempts`` has one entry per attempt of the case: the ``websockets`` client's view,
    or the raw client's where only that one ran (the last of a repeated case, or a case
    after which the server is expected to die)."""
    raw = played.last_raw
    attempts = [_attempt_summary(result) for result in played.ws]
    if len(attempts) < repeat:
        attempts.append("no-response" if raw is None else f"{raw.status} {'accepted' if raw.status == 101 else 'denied'} (raw)")
    if raw is None:
        obs = Observation("no-response", attempts=attempts, messages=list(played.messages))
    else:
        obs = Observation(
            "accepted" if raw.status == 101 else "denied",
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


# --- comparing two observations ----------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """One field in which the two apps' answers differ (after normalisation)."""

    field: str  # outcome, status, reason, header:<name>, body, connection, extra, after, messages, attempts
    reference: str
    demo: str


def _show(value: Any, width: int = 120) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = repr(text) if isinstance(value, (bytes, str)) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _grouped(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    return grouped


def compare(reference: Observation, demo: Observation) -> tuple[list[Diff], bool]:
    """(the fields that differ, whether only the order of differently-named headers differs).

    When the outcomes differ (one app answered, the other raised) only ``outcome`` is
    reported: the rest would be noise.
    """
    if reference.outcome != demo.outcome:
        return [Diff("outcome", reference.summary(80), demo.summary(80))], False
    diffs: list[Diff] = []
    for name in ("status", "reason"):
        ref_value, demo_value = getattr(reference, name), getattr(demo, name)
        if ref_value != demo_value:
            diffs.append(Diff(name, _show(ref_value), _show(demo_value)))
    ref_lines, demo_lines = normalise_headers(reference.headers), normalise_headers(demo.headers)
    ref_headers, demo_headers = _grouped(ref_lines), _grouped(demo_lines)
    for name in dict.fromkeys([*ref_headers, *demo_headers]):
        ref_values, demo_values = ref_headers.get(name, []), demo_headers.get(name, [])
        if ref_values != demo_values:
            diffs.append(Diff(f"header:{name}", _show(ref_values or None), _show(demo_values or None)))
    order_differs = not diffs and [n for n, _ in ref_lines] != [n for n, _ in demo_lines]
    pairs = (
        ("body", reference.body, demo.body),
        ("connection", reference.closed, demo.closed),
        ("extra", reference.extra, demo.extra),
        ("after", reference.after, demo.after),
        ("messages", reference.messages, demo.messages),
        ("attempts", reference.attempts, demo.attempts),
    )
    for name, ref_value, demo_value in pairs:
        if ref_value != demo_value:
            diffs.append(Diff(name, _show(ref_value), _show(demo_value)))
    return diffs, order_differs


def documentation_for(case_id: str, target: str, diff_field: str, differences: Sequence[Difference] = DIFFERENCES) -> Difference | None:
    for entry in differences:
        if entry.case == case_id and entry.target in (target, "*") and diff_field in entry.fields:
            return entry
    return None


@dataclass
class Cell:
    """Both apps on one case and one target."""

    case_id: str
    target: str
    reference: Observation
    demo: Observation
    diffs: list[Diff] = field(default_factory=list)
    order_differs: bool = False
    documented: list[tuple[Diff, Difference]] = field(default_factory=list)
    undocumented: list[Diff] = field(default_factory=list)

    @classmethod
    def build(cls, case_id: str, target: str, reference: Observation, demo: Observation, differences: Sequence[Difference] = DIFFERENCES) -> Cell:
        cell = cls(case_id, target, reference, demo)
        cell.diffs, cell.order_differs = compare(reference, demo)
        for diff in cell.diffs:
            entry = documentation_for(case_id, target, diff.field, differences)
            if entry is None:
                cell.undocumented.append(diff)
            else:
                cell.documented.append((diff, entry))
        return cell

    @property
    def verdict(self) -> str:
        """``agree``, ``deliberate`` (every difference documented) or ``differs``."""
        if self.undocumented:
            return "differs"
        return "deliberate" if self.diffs else "agree"

    @property
    def unexpected(self) -> bool:
        return bool(self.reference.problems or self.demo.problems)

    @property
    def mark(self) -> str:
        mark = {"agree": "~" if self.order_differs else "=", "deliberate": "D", "differs": "X"}[self.verdict]
        return mark + ("!" if self.unexpected else "")


# --- in process -------------------------------------------------------------------------------


def _encode_value(value: str) -> bytes:
    """As ``wsclient`` sends header values: latin-1 where it fits (obs-text), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def inprocess_scope(case: Case, tokens: dict[str, str], client_port: int) -> dict[str, Any]:
    """The scope a server with the denial extension builds for this case's request."""
    request = case.resolve(tokens)
    raw_path, _, query = request.path.partition("?")
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-version", b"13"),
    ]
    if request.subprotocols:
        headers.append((b"sec-websocket-protocol", ", ".join(request.subprotocols).encode("ascii")))
    headers += [(name.lower().encode("ascii"), _encode_value(value)) for name, value in request.all_headers()]
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "root_path": "",
        "headers": headers,
        "client": ["127.0.0.1", client_port],
        "server": ["127.0.0.1", 8000],
        "subprotocols": list(request.subprotocols),
        "extensions": {"websocket.http.response": {}},
    }


class _AppDriver:
    """Runs one ASGI WebSocket application instance and reads what it sends."""

    def __init__(self, app: Callable, scope: dict[str, Any], timeout: float) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.timeout = timeout
        # A fresh context, as a server gives each connection.
        self.task = contextvars.Context().run(asyncio.create_task, app(scope, self.inbox.get, self.outbox.put))

    async def send(self, message: dict[str, Any]) -> None:
        await self.inbox.put(message)

    async def receive(self) -> dict[str, Any]:
        """The app's next message, or a pseudo-message saying how it ended (never raises)."""
        if not self.outbox.empty():
            return self.outbox.get_nowait()
        getter = asyncio.ensure_future(self.outbox.get())
        done, _ = await asyncio.wait({getter, self.task}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        if self.task in done:
            return self._ending()
        return {"type": "<timeout>"}

    def _ending(self) -> dict[str, Any]:
        if self.task.cancelled():
            return {"type": "<app-cancelled>"}
        exc = self.task.exception()
        if exc is not None:
            return {"type": "<app-raised>", "error": type(exc).__name__}
        return {"type": "<app-returned>"}

    async def finish(self) -> str:
        """Wait for the app to end; "" when it returned normally, else how it ended."""
        try:
            await asyncio.wait_for(asyncio.shield(self.task), self.timeout)
        except asyncio.TimeoutError:
            self.task.cancel()
            try:
                await self.task
            except BaseException:  # noqa: BLE001 - its ending is what we report
                pass
            return "did not end (cancelled)"
        except BaseException as exc:  # noqa: BLE001
            return f"raised {type(exc).__name__}"
        return ""


async def play_attempt_inprocess(app: Callable, scope: dict[str, Any], want: Expect, timeout: float = INPROCESS_TIMEOUT) -> Observation:
    """One handshake in process. What is read after accept (first message, replies to the
    exchanges) comes from ``want``, so both apps get exactly the same stimulus."""
    driver = _AppDriver(app, scope, timeout)
    await driver.send({"type": "websocket.connect"})
    first = await driver.receive()
    kind = first["type"]
    if kind == "websocket.accept":
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in first.get("headers") or []]
        if first.get("subprotocol") is not None:
            headers.append(("sec-websocket-protocol", first["subprotocol"]))
        obs = Observation("accepted", status=101, headers=observed_headers(headers))
        received: list[str] = []
        reads = ([None] if want.first_message is not None else []) + [outgoing for outgoing, _ in want.exchanges]
        for outgoing in reads:
            if outgoing is not None:
                await driver.send({"type": "websocket.receive", "text": outgoing})
            message = await driver.receive()
            if message["type"] == "websocket.send":
                text = message.get("text")
                received.append(text if text is not None else repr(message.get("bytes")))
            else:
                received.append(f"<{message['type']} {message.get('code', '')}>".replace(" >", ">"))
                break
        obs.messages = [received]
        await driver.send({"type": "websocket.disconnect", "code": 1000})
        obs.after = await driver.finish()
        obs.attempts = ["101 accepted subprotocol=%s" % first.get("subprotocol")]
        return obs
    if kind == "websocket.http.response.start":
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in first.get("headers") or []]
        body = b""
        while True:
            message = await driver.receive()
            if message["type"] != "websocket.http.response.body":
                obs = Observation("denied", status=first.get("status"), headers=observed_headers(headers), body=body)
                obs.after = f"incomplete response: then {message['type']}"
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                obs = Observation("denied", status=first.get("status"), headers=observed_headers(headers), body=body)
                obs.after = await driver.finish()
                break
        obs.attempts = [f"{obs.status} denied"]
        return obs
    if kind == "websocket.close":
        obs = Observation("closed-before-accept", after=await driver.finish())
        obs.attempts = [f"close {first.get('code', 1000)} before accept"]
        return obs
    if kind == "<app-raised>":
        obs = Observation("app-raised", error=first["error"])
    elif kind in ("<app-returned>", "<app-cancelled>", "<timeout>"):
        obs = Observation(kind.strip("<>"))
        if kind == "<timeout>":
            await driver.finish()
    else:
        obs = Observation(f"unexpected {kind}", after=await driver.finish())
    obs.attempts = [obs.outcome]
    return obs


async def play_case_inprocess(app: Callable, case: Case, tokens: dict[str, str], client_port: int) -> Observation:
    attempts: list[Observation] = []
    for index in range(case.repeat):
        want = case.before if index < case.repeat - 1 and case.before is not None else case.expect
        attempts.append(await play_attempt_inprocess(app, inprocess_scope(case, tokens, client_port), want))
    last = attempts[-1]
    last.attempts = [a for attempt in attempts for a in attempt.attempts]
    last.messages = [m for attempt in attempts for m in attempt.messages]
    last.raw = _describe_inprocess(last)
    return last


def _describe_inprocess(obs: Observation) -> str:
    """What the app sent, for reports (in process there are no raw bytes)."""
    lines = [f"{obs.outcome} {obs.status if obs.status is not None else ''}{obs.error}".rstrip()]
    lines += [f"{name}: {value}" for name, value in obs.headers]
    lines += ["", repr(obs.body[:300]), f"messages={obs.messages} attempts={obs.attempts} after={obs.after!r}"]
    return "\n".join(lines)


def check_inprocess(case: Case, app: str, obs: Observation) -> list[str]:
    """Mismatches of an in-process answer with the case's expectation (no server involved)."""
    if app == "reference" and case.reference_raises:
        return [] if obs.outcome == "app-raised" else [f"expected the reference to raise, got {obs.summary(80)}"]
    problems = []
    expect = case.expect
    wants = [case.before] * (case.repeat - 1) + [expect] if case.before is not None else [expect] * case.repeat
    got_statuses = [int(a.split()[0]) if a.split()[0].isdigit() else a for a in obs.attempts]
    want_statuses = [w.status for w in wants]
    if got_statuses != want_statuses:
        problems.append(f"statuses of the attempts: expected {want_statuses}, got {got_statuses}")
        return problems
    problems += expect.check_headers(obs)
    if expect.denied and expect.body is not None and obs.body != expect.body:
        problems.append(f"body: expected {expect.body[:200]!r}, got {obs.body[:200]!r}")
    want_messages = []
    for want in wants:
        if want.accepted:
            texts = ([want.first_message] if want.first_message is not None else []) + [reply for _, reply in want.exchanges]
            want_messages.append(texts)
    if obs.messages != want_messages:
        problems.append(f"messages: expected {want_messages}, got {obs.messages}")
    if obs.after:
        problems.append(f"after answering, the app {obs.after}")
    return problems


async def _inprocess_all(cases: Sequence[Case], tokens: dict[str, str]) -> dict[str, dict[str, dict[str, Any]]]:
    from project.asgi import application as demo_app  # noqa: PLC0415 - needs Django set up first
    from tests.conformance.reference_fastapi import app as reference_app  # noqa: PLC0415 - reads its tokens at import

    apps = {"reference": reference_app, "demo": demo_app}
    results: dict[str, dict[str, dict[str, Any]]] = {app: {} for app in APPS}
    for number, case in enumerate(cases):
        for app in APPS:
            obs = await play_case_inprocess(apps[app], case, tokens, 40000 + number)
            results[app][case.id] = obs.to_json()
    return results


def worker_main(cases_file: str, out_file: str) -> None:
    """``--worker``: play cases in process; the environment holds the demo's database
    and the reference's tokens."""
    spec = json.loads(Path(cases_file).read_text())
    cases = [case for case in CASES if case.id in set(spec["cases"])]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    results = asyncio.run(_inprocess_all(cases, spec["tokens"]))
    Path(out_file).write_text(json.dumps(results))


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
    from tests.support.demo import prepare_demo  # noqa: PLC0415

    demo = prepare_demo(directory)
    # The reference knows the tokens of existing users only: erin's (deleted) is unknown to it.
    known = {user: token for user, token in demo.tokens.items() if user not in DELETED_USERS}
    return Provision(demo.tokens, dict(demo.env), {"WSREJECT_REF_TOKENS": json.dumps(known)}, directory)


def run_inprocess(cases: Sequence[Case], prov: Provision) -> dict[str, dict[str, Observation]]:
    """Both apps, every case, called directly (in a worker subprocess; see the module doc)."""
    tag = uuid.uuid4().hex[:8]
    spec_path = prov.directory / f"inprocess-{tag}.json"
    out_path = prov.directory / f"inprocess-{tag}-out.json"
    spec_path.write_text(json.dumps({"cases": [case.id for case in cases], "tokens": prov.tokens}))
    env = {**os.environ, **prov.demo_env, **prov.reference_env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env["WSREJECT_LOG_LEVEL"] = "WARNING"
    command = [sys.executable, "-m", "tests.conformance.runner", "--worker", str(spec_path), str(out_path)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"in-process worker failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    data = json.loads(out_path.read_text())
    observations: dict[str, dict[str, Observation]] = {}
    for app in APPS:
        observations[app] = {}
        for case in cases:
            obs = Observation.from_json(data[app][case.id])
            obs.problems = check_inprocess(case, app, obs)
            observations[app][case.id] = obs
    return observations


# --- on a real server ---------------------------------------------------------------------------


@dataclass
class ServerRun:
    """One app on one server kind: its observations and how the server fared."""

    kind: str
    app: str
    observations: dict[str, Observation] = field(default_factory=dict)
    alive_after: bool = True
    dead_after: dict[str, bool] = field(default_factory=dict)  # dying case -> the server exited
    log: str = ""
    seconds: float = 0.0


def expectation(kind: str, case: Case, app: str) -> tuple[Expect, list[str], str | None]:
    """(what a client should see of ``case`` from ``app`` on ``kind``, the quirks applied,
    a problem when no quirk says what the server does)."""
    raises = app == "reference" and case.reference_raises
    try:
        expect, used = applied_quirks(kind, case, app_raises=raises)
    except ValueError as exc:
        return case.expect, [], str(exc)
    return expect, used, None


def _play_on(server: Server, cases: Sequence[Case], expectations: dict[str, Expect], tokens: dict[str, str]):
    return play_cases(
        cases, server.host, server.port, tokens, expectations,
        concurrency=CONCURRENCY, timeout=IO_TIMEOUT, close_timeout=CLOSE_TIMEOUT,
    )  # fmt: skip


def run_server(kind: str, app: str, cases: Sequence[Case], prov: Provision) -> ServerRun:
    """Serve ``app`` on ``kind`` once for all cases (concurrently); a case after which the
    server is expected to die (``Expect.server_dies``) gets a fresh server of its own."""
    started = time.monotonic()
    run = ServerRun(kind, app)
    expectations: dict[str, Expect] = {}
    notes: dict[str, tuple[list[str], str | None]] = {}
    for case in cases:
        expect, used, problem = expectation(kind, case, app)
        expectations[case.id] = expect
        notes[case.id] = (used, problem)
    survivors = [case for case in cases if not expectations[case.id].server_dies]
    dying = [case for case in cases if expectations[case.id].server_dies]
    played: dict[str, Played] = {}
    env = prov.env(app)
    if survivors:
        with running_server(kind, APP_IMPORTS[app], env=env) as server:
            played.update(asyncio.run(_play_on(server, survivors, expectations, prov.tokens)))
            run.alive_after = server.alive()
            run.log = server.log()
    for case in dying:
        with running_server(kind, APP_IMPORTS[app], env=env) as server:
            played.update(asyncio.run(_play_on(server, [case], expectations, prov.tokens)))
            run.dead_after[case.id] = server.wait_exit(10.0)
    for case in cases:
        obs = observe_played(played[case.id], case.repeat)
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


# --- the matrix ------------------------------------------------------------------------------


@dataclass
class Matrix:
    targets: list[str]
    cases: list[Case]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (target, case id)
    server_runs: dict[tuple[str, str], ServerRun] = field(default_factory=dict)  # (kind, app)
    seconds: dict[str, float] = field(default_factory=dict)

    def cell(self, target: str, case_id: str) -> Cell:
        return self.cells[(target, case_id)]

    def target_cells(self, target: str) -> list[Cell]:
        return [self.cells[(target, case.id)] for case in self.cases]

    def counts(self, target: str) -> dict[str, int]:
        cells = self.target_cells(target)
        return {
            "cases": len(cells),
            "agree": sum(c.verdict == "agree" for c in cells),
            "order": sum(c.verdict == "agree" and c.order_differs for c in cells),
            "deliberate": sum(c.verdict == "deliberate" for c in cells),
            "differs": sum(c.verdict == "differs" for c in cells),
            "unexpected_reference": sum(bool(c.reference.problems) for c in cells),
            "unexpected_demo": sum(bool(c.demo.problems) for c in cells),
        }

    @property
    def ok(self) -> bool:
        return all(c.verdict != "differs" and not c.unexpected for c in self.cells.values())

    def stale_differences(self, differences: Sequence[Difference] = DIFFERENCES) -> list[str]:
        """Entries of ``differences.py`` that this run shows to be wrong: a listed field that
        does not differ on a target the entry names (only targets and cases that ran count)."""
        stale = []
        case_ids = {case.id for case in self.cases}
        for entry in differences:
            if entry.case not in case_ids:
                continue
            targets = [t for t in self.targets if entry.target in (t, "*")]
            if not targets:
                continue
            for diff_field in entry.fields:
                seen = any(diff_field in {d.field for d in self.cell(t, entry.case).diffs} for t in targets)
                if not seen:
                    stale.append(f"{entry.case} on {entry.target}: {diff_field!r} does not differ")
        return stale


def target_version(target: str) -> str:
    if target == IN_PROCESS:
        from importlib import metadata  # noqa: PLC0415

        return f"ASGI, fastapi {metadata.version('fastapi')}, channels {metadata.version('channels')}"
    return server_version(target)


def select_cases(patterns: Sequence[str] | None) -> list[Case]:
    """Cases whose id matches one of ``patterns`` (fnmatch; a bare prefix matches too)."""
    if not patterns:
        return list(CASES)
    chosen = [
        case for case in CASES if any(fnmatch.fnmatch(case.id, p) or case.id.startswith(p) for p in patterns)
    ]
    if not chosen:
        raise SystemExit(f"no case matches {list(patterns)}; ids: {[case.id for case in CASES]}")
    return chosen


def select_targets(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {list(TARGETS)}")
    return [target for target in TARGETS if target in names]


def run_matrix(
    targets: Sequence[str] = TARGETS,
    cases: Sequence[Case] = CASES,
    *,
    jobs: int = 3,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Matrix:
    """Play ``cases`` on ``targets`` with both apps and compare. ``jobs`` (app, target)
    runs go on at once: most of the time is spent waiting for servers to close."""
    say = progress or (lambda message: None)
    own_dir = directory is None
    work = Path(tempfile.mkdtemp(prefix="wsreject-conformance-")) if own_dir else Path(directory)
    matrix = Matrix(list(targets), list(cases))
    try:
        started = time.monotonic()
        say("preparing the demo database (migrate + seed_demo)")
        prov = provision(work)
        say(f"  done in {time.monotonic() - started:.1f} s")
        inprocess: dict[str, dict[str, Observation]] | None = None

        def do_inprocess() -> None:
            nonlocal inprocess
            begun = time.monotonic()
            inprocess = run_inprocess(cases, prov)
            matrix.seconds[IN_PROCESS] = time.monotonic() - begun
            say(f"{IN_PROCESS}: done in {matrix.seconds[IN_PROCESS]:.1f} s")

        def do_server(kind: str, app: str) -> None:
            run = run_server(kind, app, cases, prov)
            matrix.server_runs[(kind, app)] = run
            say(f"{kind} / {app}: done in {run.seconds:.1f} s")

        jobs_list: list[Callable[[], None]] = []
        if IN_PROCESS in targets:
            jobs_list.append(do_inprocess)
        # granian takes longest (kept-alive connections, dying cases): start it first.
        kinds = sorted((t for t in targets if t != IN_PROCESS), key=lambda t: t != "granian")
        for kind in kinds:
            for app in APPS:
                jobs_list.append(lambda kind=kind, app=app: do_server(kind, app))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(job) for job in jobs_list]:
                future.result()

        for target in targets:
            for case in cases:
                if target == IN_PROCESS:
                    assert inprocess is not None
                    ref, demo = inprocess["reference"][case.id], inprocess["demo"][case.id]
                else:
                    ref = matrix.server_runs[(target, "reference")].observations[case.id]
                    demo = matrix.server_runs[(target, "demo")].observations[case.id]
                matrix.cells[(target, case.id)] = Cell.build(case.id, target, ref, demo)
        matrix.seconds["total"] = time.monotonic() - started
        return matrix
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


# --- reports -------------------------------------------------------------------------------------

LEGEND = (
    "`=` same answer · `~` same answer, headers in another order (not significant in HTTP) · "
    "`D` differs as documented in tests/conformance/differences.py · `X` undocumented difference (a failure) · "
    "`!` an app's answer deviates from the case's expectation on that server (a failure)"
)


def _answer_target(matrix: Matrix) -> str:
    return IN_PROCESS if IN_PROCESS in matrix.targets else matrix.targets[0]


def _targets_text(matrix: Matrix, targets: Sequence[str]) -> str:
    return "every target" if list(targets) == list(matrix.targets) and len(targets) > 1 else ", ".join(targets)


def _group(matrix: Matrix, cells: Iterable[Cell], key: Callable[[Cell], Any]) -> list[tuple[Cell, str]]:
    """Cells with the same case and the same ``key`` once, with the targets they occur on."""
    groups: dict[tuple[str, Any], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.case_id, key(cell)), []).append(cell)
    order = {case.id: index for index, case in enumerate(matrix.cases)}
    result = []
    for members in groups.values():
        members.sort(key=lambda c: matrix.targets.index(c.target))
        result.append((members[0], _targets_text(matrix, [c.target for c in members])))
    result.sort(key=lambda item: (order[item[0].case_id], matrix.targets.index(item[0].target)))
    return result


def _header_orders(cell: Cell) -> tuple[str, str]:
    return (
        ", ".join(n for n, _ in normalise_headers(cell.reference.headers)),
        ", ".join(n for n, _ in normalise_headers(cell.demo.headers)),
    )


def _grouped_problems(matrix: Matrix) -> list[tuple[tuple[str, str, str], str, Cell]]:
    """((case id, app, problem), the targets it occurs on, the first such cell)."""
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for case in matrix.cases:
        for target in matrix.targets:
            cell = matrix.cell(target, case.id)
            for app, obs in (("reference", cell.reference), ("demo", cell.demo)):
                for problem in obs.problems:
                    groups.setdefault((case.id, app, problem), []).append(cell)
    return [(key, _targets_text(matrix, [c.target for c in cells]), cells[0]) for key, cells in groups.items()]


def render_text(matrix: Matrix, *, verbose: bool = False) -> str:
    """The side-by-side table for a terminal, then every difference and every failure."""
    answers_on = _answer_target(matrix)
    id_width = max(len(case.id) for case in matrix.cases)
    answer_width = 40
    columns = [SHORT_TARGET[t] for t in matrix.targets]
    head = f"{'case':<{id_width}}  {'reference (' + answers_on + ')':<{answer_width}}  {'demo (' + answers_on + ')':<{answer_width}}  "
    head += "  ".join(columns)
    lines = [head, "-" * len(head)]
    for case in matrix.cases:
        cell = matrix.cell(answers_on, case.id)
        row = f"{case.id:<{id_width}}  {cell.reference.summary(answer_width):<{answer_width}}  {cell.demo.summary(answer_width):<{answer_width}}  "
        row += "  ".join(f"{matrix.cell(t, case.id).mark:^{len(SHORT_TARGET[t])}}" for t in matrix.targets)
        lines.append(row)
    lines.append("")
    lines.append(LEGEND.replace("`", ""))
    lines.append("")
    lines.append("Agreement per target (both apps, same request, normalised: date, server, retry-after, sec-websocket-accept)")
    lines.append(f"  {'target':<26} {'version':<52} agree  (order)  deliberate  UNDOCUMENTED  unexpected ref/demo")
    for target in matrix.targets:
        c = matrix.counts(target)
        lines.append(
            f"  {target:<26} {target_version(target):<52} {c['agree']:>3}/{c['cases']:<3} ({c['order']:>3})  "
            f"{c['deliberate']:>10}  {c['differs']:>12}  {c['unexpected_reference']:>7}/{c['unexpected_demo']}"
        )
    differing = _group(matrix, [c for c in matrix.cells.values() if c.diffs], lambda c: tuple(sorted((d.field, d.reference, d.demo) for d in c.diffs)))
    if differing:
        lines.append("")
        lines.append("Differences, side by side")
        for cell, targets in differing:
            lines.append(f"  {cell.case_id} on {targets}:")
            for diff in cell.diffs:
                entry = documentation_for(cell.case_id, cell.target, diff.field)
                tag = "deliberate" if entry else "UNDOCUMENTED"
                lines.append(f"    [{tag}] {diff.field}")
                lines.append(f"        reference: {diff.reference}")
                lines.append(f"        demo:      {diff.demo}")
    ordered = _group(matrix, [c for c in matrix.cells.values() if c.order_differs], _header_orders)
    if ordered:
        lines.append("")
        lines.append("Header order differs (reported, not a failure)")
        for cell, targets in ordered:
            ref, demo = _header_orders(cell)
            lines.append(f"  {cell.case_id} on {targets}:\n    reference: {ref}\n    demo:      {demo}")
    problems = _grouped_problems(matrix)
    if problems:
        lines.append("")
        lines.append("Answers that deviate from the case's expectation on that target (FAILURES)")
        for (case_id, app, problem), targets, cell in problems:
            lines.append(f"  {case_id}, {app}, on {targets}: {problem}")
            obs = cell.reference if app == "reference" else cell.demo
            if verbose and obs.raw:
                lines += ["      " + line for line in obs.raw.splitlines()]
    stale = matrix.stale_differences()
    if stale:
        lines.append("")
        lines.append("Stale entries in differences.py (FAILURES)")
        lines += [f"  {entry}" for entry in stale]
    lines.append("")
    lines.append("OK: every difference is documented" if matrix.ok and not stale else "FAILED: see above")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(matrix: Matrix) -> str:
    """``docs/conformance.md``: deterministic (no timings), so CI can check it is current."""
    full = len(matrix.cases) == len(CASES) and list(matrix.targets) == list(TARGETS)
    out = [
        "# Conformance: the Django demo against the FastAPI reference",
        "",
        f"Generated by `{DOCS_COMMAND}`; do not edit by hand "
        "(`tests/conformance/test_conformance.py` fails when this file is out of date).",
        "",
        "Every case of [`tests/conformance/cases.py`](../tests/conformance/cases.py) is played against the FastAPI "
        "reference ([`reference_fastapi.py`](../tests/conformance/reference_fastapi.py)) and the Django demo "
        "(`project.asgi`), in process (the ASGI application called directly, with the denial extension "
        "advertised) and over the wire on each server, with the same request and the same bearer tokens. "
        "The answers are compared exactly after dropping `date` and `server` and abstracting the values that "
        "must differ (`retry-after` as whole seconds ≥ 1, `sec-websocket-accept` as valid or not). Header order "
        "across different names is reported but not significant; the order of a repeated header's values is.",
        "",
    ]
    if not full:
        out += ["**Partial run** (not every case or target): regenerate with the command above.", ""]
    out += [
        "## Agreement per server",
        "",
        "| target | cases | agree | of which header order differs | deliberate differences | undocumented | unexpected (reference / demo) |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in matrix.targets:
        c = matrix.counts(target)
        out.append(
            f"| {target} | {c['cases']} | {c['agree']} | {c['order']} | "
            f"{c['deliberate']} | {c['differs']} | {c['unexpected_reference']} / {c['unexpected_demo']} |"
        )
    out += ["", "Measured with: " + "; ".join(f"{t} ({target_version(t)})" for t in matrix.targets)]
    out += ["", "## Deliberate differences", ""]
    out += [
        "Listed in [`tests/conformance/differences.py`](../tests/conformance/differences.py); each is asserted "
        "(a listed difference that stops occurring fails the suite, as does any difference not listed).",
        "",
        "| case | target | what differs | reference (FastAPI) | demo (wsreject) | why |",
        "|---|---|---|---|---|---|",
    ]
    case_ids = {case.id for case in matrix.cases}
    previous_why = None
    for entry in DIFFERENCES:
        if entry.case in case_ids:
            why = "as above" if entry.why == previous_why else _md(entry.why)
            previous_why = entry.why
            out.append(
                f"| {entry.case} | {entry.target} | {', '.join(f'`{f}`' for f in entry.fields)} | "
                f"{_md(entry.reference)} | {_md(entry.demo)} | {why} |"
            )
    undocumented = _group(matrix, [c for c in matrix.cells.values() if c.undocumented], lambda c: tuple(sorted((d.field, d.reference, d.demo) for d in c.undocumented)))
    if undocumented:
        out += ["", "## Undocumented differences (failures)", "", "| case | targets | field | reference | demo |", "|---|---|---|---|---|"]
        for cell, targets in undocumented:
            for diff in cell.undocumented:
                out.append(f"| {cell.case_id} | {targets} | `{diff.field}` | `{_md(diff.reference)}` | `{_md(diff.demo)}` |")
    problems = _grouped_problems(matrix)
    if problems:
        out += ["", "## Answers deviating from the case table (failures)", "", "| case | app | targets | problem |", "|---|---|---|---|"]
        for (case_id, app, problem), targets, _cell in problems:
            out.append(f"| {case_id} | {app} | {targets} | {_md(problem)} |")
    out += ["", "## Every case on every target", "", LEGEND, ""]
    answers_on = _answer_target(matrix)
    out.append(f"| case | reference ({answers_on}) | demo ({answers_on}) | " + " | ".join(matrix.targets) + " |")
    out.append("|---|---|---|" + "---|" * len(matrix.targets))
    for case in matrix.cases:
        cell = matrix.cell(answers_on, case.id)
        marks = " | ".join(f"`{matrix.cell(t, case.id).mark}`" for t in matrix.targets)
        out.append(f"| {case.id} | `{_md(cell.reference.summary(60))}` | `{_md(cell.demo.summary(60))}` | {marks} |")
    ordered = _group(matrix, [c for c in matrix.cells.values() if c.order_differs], _header_orders)
    if ordered:
        out += ["", "## Header order (reported, not significant)", "", "| case | targets | reference | demo |", "|---|---|---|---|"]
        for cell, targets in ordered:
            ref, demo = _header_orders(cell)
            out.append(f"| {cell.case_id} | {targets} | {ref} | {demo} |")
    out += [
        "",
        "Server behaviour that differs from the scenario for *both* apps (a server's own answer, e.g. "
        "granian keeping the connection open) is not a difference between the apps; it is measured and "
        "asserted per server in `SERVER_QUIRKS` (`tests/support/servers.py`) and listed in the README's server table.",
        "",
    ]
    return "\n".join(out)


# --- command line -------------------------------------------------------------------------------


def _split(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker_main(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tests.conformance.runner",
        description="Replay every conformance case against the FastAPI reference and the Django demo, "
        "in process and on real servers, and print the side-by-side table.",
    )
    parser.add_argument("--servers", action="append", metavar="KIND[,KIND]", help=f"targets to run (default: all): {', '.join(TARGETS)}")
    parser.add_argument("--cases", action="append", metavar="ID[,ID]", help="case ids, prefixes or globs (default: all)")
    parser.add_argument("--markdown", metavar="PATH", help=f"also write the markdown report (the docs: {DOCS_COMMAND})")
    parser.add_argument("--jobs", type=int, default=3, help="(app, server) runs at once (default: 3)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the raw response of every failure")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    targets = select_targets(_split(args.servers))
    cases = select_cases(_split(args.cases))
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    matrix = run_matrix(targets, cases, jobs=args.jobs, progress=progress)
    print(render_text(matrix, verbose=args.verbose))
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_markdown(matrix))
        print(f"\nwrote {path}", file=sys.stderr)
    if progress:
        progress(f"total {matrix.seconds.get('total', 0):.1f} s")
    return 0 if matrix.ok and not matrix.stale_differences() else 1


if __name__ == "__main__":
    sys.exit(main())
