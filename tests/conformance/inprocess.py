"""Both apps called directly as ASGI applications, in a worker subprocess.

In process there is no server: the driver builds the scope a server with the denial
extension would build for the case's request, sends ``websocket.connect`` and reads what
the app sends (accept and messages, the two denial-response messages, a close, or how
the app ended). The worker runs in a subprocess (``python -m tests.conformance.inprocess
SPEC OUT``) so that Django is set up with the provisioned demo database and the
reference reads its tokens at import, exactly as a server process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.conformance.cases import CASES, Case, Expect
from tests.conformance.observe import Observation, Provision, observed_headers
from tests.conformance.targets import APPS
from tests.support.servers import REPO_ROOT

INPROCESS_TIMEOUT = 3.0


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
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(BaseException):  # its ending is what we report
                await self.task
            return "did not end (cancelled)"
        except BaseException as exc:
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
        obs.attempts = [f"101 accepted subprotocol={first.get('subprotocol')}"]
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
    case = case.for_app(app)
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
    from project.asgi import application as demo_app
    from tests.conformance.reference_fastapi import app as reference_app

    apps = {"reference": reference_app, "demo": demo_app}
    results: dict[str, dict[str, dict[str, Any]]] = {app: {} for app in APPS}
    for number, case in enumerate(cases):
        for app in APPS:
            obs = await play_case_inprocess(apps[app], case.for_app(app), tokens, 40000 + number)
            results[app][case.id] = obs.to_json()
    return results


def worker_main(cases_file: str, out_file: str) -> None:
    """The worker (``python -m tests.conformance.inprocess SPEC OUT``): play cases in process; the environment holds the demo's database
    and the reference's tokens."""
    spec = json.loads(Path(cases_file).read_text())
    cases = [case for case in CASES if case.id in set(spec["cases"])]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    results = asyncio.run(_inprocess_all(cases, spec["tokens"]))
    Path(out_file).write_text(json.dumps(results))


def run_inprocess(cases: Sequence[Case], prov: Provision) -> dict[str, dict[str, Observation]]:
    """Both apps, every case, called directly (in a worker subprocess; see the module doc)."""
    tag = uuid.uuid4().hex[:8]
    spec_path = prov.directory / f"inprocess-{tag}.json"
    out_path = prov.directory / f"inprocess-{tag}-out.json"
    spec_path.write_text(json.dumps({"cases": [case.id for case in cases], "tokens": prov.tokens}))
    env = {**os.environ, **prov.demo_env, **prov.reference_env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env["WSREJECT_LOG_LEVEL"] = "WARNING"
    command = [sys.executable, "-m", "tests.conformance.inprocess", str(spec_path), str(out_path)]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
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


if __name__ == "__main__":
    worker_main(sys.argv[1], sys.argv[2])
