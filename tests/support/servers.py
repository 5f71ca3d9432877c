"""Real ASGI servers in subprocesses, on 127.0.0.1, for the test suite.

Primary API::

    with running_server("uvicorn-wsproto", "tests.conformance.reference_fastapi:app",
                        env={"WSREJECT_REF_TOKENS": "{}"}) as server:
        server.url("/ws/echo/")      # "ws://127.0.0.1:PORT/ws/echo/"
        server.log()                 # captured stdout + stderr so far

The server is started with ``sys.executable -m <server>``, on a free port (picked by
binding port 0; a start that loses the port to someone else is retried on a new one),
and is ready when it answers a trivial HTTP request — polled, never a fixed sleep.
If the process exits or does not answer within ``startup_timeout`` the start fails
with the captured log. On exit the process (its whole process group) is terminated,
waited for, and killed if it lingers.

Any other server process (``manage.py runserver``, say) gets the same treatment from
``running_process``, given the command line for a port::

    with running_process(lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                         label="runserver") as server:
        server.wait_for_log("Starting ASGI/Daphne")

``SERVER_QUIRKS`` records, per server kind, every deviation from the scenario that
was measured on these servers, with the version; the tests assert each of them, so
a server that changes its behaviour fails loudly instead of being silently tolerated.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

SERVER_KINDS = (
    "daphne-wsreject",
    "daphne-stock",
    "uvicorn-websockets",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
)
# Also startable: uvicorn's default WebSocket implementation in 0.54 (``--ws auto`` picks
# websockets-sansio when ``websockets`` is installed); ``--ws websockets`` is deprecated there.
EXTRA_SERVER_KINDS = ("uvicorn-websockets-sansio",)
ALL_SERVER_KINDS = SERVER_KINDS + EXTRA_SERVER_KINDS
# The kinds that implement the ASGI WebSocket Denial Response extension.
DENIAL_EXTENSION_KINDS = (
    "daphne-wsreject",
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
)

# The distribution each kind runs, for versions in messages and reports.
SERVER_DISTRIBUTIONS = {
    "daphne-wsreject": "daphne",
    "daphne-stock": "daphne",
    "uvicorn-websockets": "uvicorn",
    "uvicorn-websockets-sansio": "uvicorn",
    "uvicorn-wsproto": "uvicorn",
    "hypercorn": "hypercorn",
    "granian": "granian",
}


def server_version(kind: str) -> str:
    dist = SERVER_DISTRIBUTIONS[kind]
    try:
        return f"{dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:  # pragma: no cover
        return f"{dist} (not installed)"


def server_command(kind: str, app: str, port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves ``app`` ("module:attr") on 127.0.0.1:``port``."""
    py = sys.executable
    extra = list(extra_args)
    if kind == "daphne-wsreject":
        return [py, "-m", "wsreject.daphne", "-b", HOST, "-p", str(port), *extra, app]
    if kind == "daphne-stock":
        return [py, "-m", "daphne", "-b", HOST, "-p", str(port), *extra, app]
    if kind.startswith("uvicorn-"):
        ws = {
            "uvicorn-websockets": "websockets",
            "uvicorn-websockets-sansio": "websockets-sansio",
            "uvicorn-wsproto": "wsproto",
        }[kind]
        return [
            py, "-m", "uvicorn",
            "--host", HOST, "--port", str(port),
            "--ws", ws,
            "--lifespan", "off",
            "--no-access-log",
            "--log-level", "info",
            *extra, app,
        ]  # fmt: skip
    if kind == "hypercorn":
        return [
            py, "-m", "hypercorn",
            "--bind", f"{HOST}:{port}",
            "--workers", "1",
            # hypercorn logs nothing unless told where to.
            "--error-logfile", "-",
            *extra, app,
        ]  # fmt: skip
    if kind == "granian":
        return [
            py, "-m", "granian",
            "--interface", "asgi",
            "--host", HOST, "--port", str(port),
            "--workers", "1",
            # HTTP/1.1 only: a WebSocket handshake is HTTP/1.1, no protocol sniffing needed.
            "--http", "1",
            "--no-respawn-failed-workers",
            *extra, app,
        ]  # fmt: skip
    raise ValueError(f"unknown server kind {kind!r}; expected one of {ALL_SERVER_KINDS}")


# --- the running server -----------------------------------------------------------------


@dataclass
class Server:
    kind: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    command: list[str] = field(default_factory=list)
    log_path: Path | None = None
    _final_log: str | None = field(default=None, repr=False)

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"ws://{self.host}:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def version(self) -> str:
        """The server's distribution and version; for a ``running_process`` label that is
        not a server kind, the label itself."""
        return server_version(self.kind) if self.kind in SERVER_DISTRIBUTIONS else self.kind

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far (kept after the server stopped)."""
        if self._final_log is not None:
            return self._final_log
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """Poll the log until it contains ``text``; return the whole log."""
        return self._poll_log(lambda log: log if text in log else None, timeout, f"{text!r} not in")

    def wait_for_line(self, *parts: str, timeout: float = 5.0) -> str:
        """Poll the log until one line contains every one of ``parts``; return that line."""

        def line_with_parts(log: str) -> str | None:
            return next((line for line in log.splitlines() if all(part in line for part in parts)), None)

        return self._poll_log(line_with_parts, timeout, f"no line with {parts!r} in")

    def _poll_log(self, find: Callable[[str], str | None], timeout: float, failure: str) -> str:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            found = find(self.log())
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"{failure} the log of {self.kind} after {timeout:g} s:\n{self.log()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float) -> bool:
        """Whether the process exits within ``timeout`` seconds (polled)."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def __repr__(self) -> str:
        return f"<Server {self.kind} {self.host}:{self.port} pid={self.process.pid}>"


class ServerStartError(RuntimeError):
    pass


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (it may be taken before we use it: see retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


_PORT_CLASH_MARKERS = ("address already in use", "errno 98", "addrinuse", "os error 98")


def _port_clash(log: str) -> bool:
    text = log.lower()
    return any(marker in text for marker in _PORT_CLASH_MARKERS)


def probe_http(host: str, port: int, timeout: float = 1.0, path: str = "/__harness_ready__") -> bool:
    """True when something on host:port answers an HTTP request with a status line."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode("ascii"))
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/")
    except OSError:
        return False


def probe_tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the id was reused by someone else's group
        return False
    return True


def _wait_group(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the leader and then every other member of its group (workers)."""
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    while _group_alive(process.pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Terminate the server's process group (SIGTERM), wait for all of it, then SIGKILL
    what is left. The group is the one ``running_process`` created (``start_new_session``),
    so nothing else is signalled. Idempotent."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if process.poll() is not None and not _group_alive(process.pid):
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        if _wait_group(process, wait):
            return


def _spawn(command: list[str], env: Mapping[str, str], cwd: Path, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=str(cwd),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # Own process group: teardown reaches worker processes (granian, hypercorn) too.
        start_new_session=True,
    )


def _wait_ready(
    server: Server, deadline: float, probe: Callable[[str, int], bool]
) -> str | None:
    """None when ready; otherwise why not ("exited" or "timeout")."""
    delay = 0.02
    while True:
        if server.process.poll() is not None:
            return "exited"
        if probe(server.host, server.port):
            # A process that died between probe and here is not ready.
            return None if server.process.poll() is None else "exited"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def _server_env(env: Mapping[str, str] | None, cwd: Path) -> dict[str, str]:
    merged = dict(os.environ)
    # The app is imported from the repository, whatever the caller's cwd is.
    pythonpath = [str(REPO_ROOT)]
    if str(cwd) != str(REPO_ROOT):
        pythonpath.insert(0, str(cwd))
    if merged.get("PYTHONPATH"):
        pythonpath.append(merged["PYTHONPATH"])
    merged["PYTHONPATH"] = os.pathsep.join(pythonpath)
    merged["PYTHONUNBUFFERED"] = "1"
    merged.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # Never let a proxy setting of the machine reach localhost traffic of the server.
    merged["NO_PROXY"] = merged["no_proxy"] = "127.0.0.1,localhost"
    if env:
        merged.update({str(k): str(v) for k, v in env.items()})
    return merged


def _described(label: str) -> str:
    return f"{label} ({server_version(label)})" if label in SERVER_DISTRIBUTIONS else label


@contextlib.contextmanager
def running_process(
    command_for_port: Callable[[int], list[str]],
    *,
    label: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    startup_timeout: float = 20.0,
    ready: str = "http",
    attempts: int = 3,
) -> Iterator[Server]:
    """Run ``command_for_port(port)`` on a free port of 127.0.0.1 for the duration of the
    block; the :class:`Server` it yields has ``kind == label``.

    The process gets this environment plus ``env`` (``PYTHONPATH`` starts with the
    repository), runs in ``cwd`` in a process group of its own, and writes stdout and
    stderr to ``Server.log()``. ``ready`` is ``"http"`` (any HTTP status line to a GET
    counts, so an app that answers HTTP with 404 or 500 is fine) or ``"tcp"`` (a TCP
    connect is enough; for apps whose server cannot answer plain HTTP at all). A start
    that exits on a port clash is retried on a new port, up to ``attempts`` starts.
    """
    probe = {"http": probe_http, "tcp": probe_tcp}[ready]
    full_env = _server_env(env, Path(cwd))

    server: Server | None = None
    failure = ""
    log_dir = tempfile.mkdtemp(prefix=f"wsreject-{label}-")
    for attempt in range(1, attempts + 1):
        port = free_port()
        command = command_for_port(port)
        log_path = Path(log_dir) / f"attempt{attempt}.log"
        with open(log_path, "wb") as log_file:
            process = _spawn(command, full_env, Path(cwd), log_file)
        candidate = Server(kind=label, host=HOST, port=port, process=process, command=command, log_path=log_path)
        try:
            outcome = _wait_ready(candidate, time.monotonic() + startup_timeout, probe)
        except BaseException:
            stop_process(process)
            shutil.rmtree(log_dir, ignore_errors=True)
            raise
        if outcome is None:
            server = candidate
            break
        stop_process(process)
        log = candidate.log()
        failure = (
            f"{_described(label)} did not become ready "
            f"({'process exited with ' + str(process.returncode) if outcome == 'exited' else f'no answer within {startup_timeout:g} s'}).\n"
            f"command: {' '.join(command)}\n--- server log ---\n{log}"
        )
        if not (outcome == "exited" and _port_clash(log)):
            break
    if server is None:
        shutil.rmtree(log_dir, ignore_errors=True)
        raise ServerStartError(failure)
    try:
        yield server
    finally:
        stop_process(server.process)
        server._final_log = server.log()
        shutil.rmtree(log_dir, ignore_errors=True)


@contextlib.contextmanager
def running_server(
    kind: str,
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 20.0,
    ready: str = "http",
    attempts: int = 3,
) -> Iterator[Server]:
    """Serve ``app`` ("module:attr") with server ``kind`` on 127.0.0.1 for the duration of
    the block (``extra_args`` go before the app); the rest is :func:`running_process`."""
    if kind not in ALL_SERVER_KINDS:
        raise ValueError(f"unknown server kind {kind!r}; expected one of {ALL_SERVER_KINDS}")
    if ":" not in app:
        raise ValueError(f"app must be an import string 'module:attr', got {app!r}")
    with running_process(
        lambda port: server_command(kind, app, port, extra_args),
        label=kind, env=env, cwd=cwd, startup_timeout=startup_timeout, ready=ready, attempts=attempts,
    ) as server:
        yield server


# --- measured server behaviour ------------------------------------------------------------


class Quirk(NamedTuple):
    """A measured deviation of one server from the scenario: ``what`` is a stable key the
    tests assert on, ``why`` says what happens, why, and on which version it was seen."""

    what: str
    why: str


_UVICORN_500 = (
    "An exception escaping the app before accept: uvicorn answers its own "
    "`500 Internal Server Error`, `content-type: text/plain; charset=utf-8`, body "
    "`Internal Server Error` (21 bytes), and closes (scenario case 16, deliberate difference)."
)

# Measured 2026-11 with the reference app (tests/conformance/reference_fastapi.py) and every
# case of tests/conformance/cases.py; each entry is asserted by tests/conformance/test_reference.py
# (adjusted expectations below, log checks, status-line checks), so a change of behaviour fails.
SERVER_QUIRKS: dict[str, list[Quirk]] = {
    "uvicorn-websockets": [
        Quirk(
            "denial.fills-content-headers:text/plain",
            "uvicorn 0.54 `--ws websockets` (websockets 17.4 legacy server): a denial without "
            "`content-length`/`content-type` gets `content-length: 0` and `content-type: text/plain` "
            "(websockets.legacy.server `setdefault`s them), even on 1xx/204/304 where RFC 9110 "
            "forbids a Content-Length and on 205.",
        ),
        Quirk(
            "denial.header-values-sent-as-utf8",
            "uvicorn 0.54 `--ws websockets`: header values are decoded latin-1 and then written "
            "with `str.encode()` (UTF-8) by websockets.legacy `write_http_response`, so "
            "`café` (b'caf\\xe9') leaves as b'caf\\xc3\\xa9' (read back: `cafÃ©`).",
        ),
        Quirk(
            "denial.unregistered-status-becomes-500",
            "uvicorn 0.54 `--ws websockets`: `http.HTTPStatus(599)` raises ValueError in "
            "`asgi_send`, so a denial with an unregistered status becomes uvicorn's own "
            "500 text/plain `Internal Server Error`.",
        ),
        Quirk(
            "handshake.non-ascii-request-header-500",
            "uvicorn 0.54 `--ws websockets`: a non-ASCII request header value (obs-text, e.g. "
            "`Authorization: Bearer t\\xf6k\\xe9n`) is decoded by websockets.legacy with "
            "surrogateescape, but uvicorn (believing websockets >= 17 uses latin-1) re-encodes it "
            "as latin-1: UnicodeEncodeError, and websockets answers `500`, text/plain "
            "`Failed to open a WebSocket connection.\\nSee server log for more information.\\n` "
            "before the app runs.",
        ),
        Quirk("app-error.500-text-plain", "uvicorn 0.54 `--ws websockets`: " + _UVICORN_500),
        Quirk(
            "log.deprecated-implementation",
            "uvicorn 0.54: `--ws websockets` emits UvicornDeprecationWarning at import (it will "
            "point at websockets-sansio; `--ws auto` already does).",
        ),
    ],
    "uvicorn-websockets-sansio": [
        Quirk(
            "denial.fills-content-headers:text/plain; charset=utf-8",
            "uvicorn 0.54 `--ws websockets-sansio` (the `--ws auto` default): a denial without "
            "`content-length`/`content-type` gets `content-length: 0` and "
            "`content-type: text/plain; charset=utf-8`, even on 1xx/204/304 and 205.",
        ),
        Quirk(
            "handshake.repeated-origin-400",
            "uvicorn 0.54 websockets-sansio (websockets 17.4 ServerProtocol): two Origin lines "
            "are refused by the server itself before the app runs: `400`, text/plain body "
            "`Failed to open a WebSocket connection: invalid Origin header: multiple values.\\n`.",
        ),
        Quirk(
            "log.denial-logged-as-error",
            "uvicorn 0.54 websockets-sansio logs `ERROR: ASGI callable returned without completing "
            "handshake.` after every denial response, although the app completed it correctly.",
        ),
        Quirk("app-error.500-text-plain", "uvicorn 0.54 websockets-sansio: " + _UVICORN_500),
    ],
    "uvicorn-wsproto": [
        Quirk(
            "status-line.no-reason-phrase",
            "uvicorn 0.54 `--ws wsproto` (wsproto 1.3.2 / h11 0.16): denials go out as "
            "`HTTP/1.1 401 ` with an empty reason phrase (legal, RFC 9112 §4).",
        ),
        Quirk(
            "denial.informational-dropped",
            "uvicorn 0.54 wsproto: a 1xx denial makes h11 raise LocalProtocolError "
            "(`Response status_code should be in range [200, 1000)`); nothing is sent and the "
            "connection is closed.",
        ),
        Quirk("app-error.500-text-plain", "uvicorn 0.54 wsproto: " + _UVICORN_500),
    ],
    "hypercorn": [
        Quirk(
            "status-line.no-reason-phrase",
            "hypercorn 0.18 (h11): every response, 101 included, has an empty reason phrase.",
        ),
        Quirk(
            "log.informational-protocol-error",
            "hypercorn 0.18: a 1xx denial goes out as the bare informational head, then h11 "
            "raises LocalProtocolError (`can't handle event type EndOfMessage ... SEND_RESPONSE`), "
            "logged, and the connection is closed; the client gets a 1xx and EOF.",
        ),
        Quirk(
            "app-error.500-empty",
            "hypercorn 0.18: an exception escaping the app before accept gives `500` with "
            "`content-length: 0`, `connection: close` and no body.",
        ),
    ],
    "granian": [
        Quirk(
            "denial.upgrade-headers-added",
            "granian 2.8.7: the denial reuses the 101 response builder, so it carries "
            "`connection: upgrade`, `upgrade: websocket` and a `sec-websocket-accept` "
            "(src/ws.rs UpgradeData::send).",
        ),
        Quirk(
            "denial.connection-kept-alive",
            "granian 2.8.7: after a denial the TCP connection stays open (HTTP keep-alive; closed "
            "after ~30 s idle, the http1 header-read timeout), although the scenario closes it.",
        ),
        Quirk(
            "denial.repeated-header-kills-server",
            "granian 2.8.7: a denial with a repeated header name (two `www-authenticate`) panics "
            "the worker (`src/ws.rs:87 key.unwrap()` on `HeaderMap::drain()`, whose later values "
            "have no name); the client gets no response, and with the default "
            "`--no-respawn-failed-workers` the whole server shuts down.",
        ),
        Quirk(
            "denial.informational-becomes-500",
            "granian 2.8.7 (hyper): a 1xx denial is replaced by `500` with `content-length: 0`, "
            "no body, connection closed.",
        ),
        Quirk(
            "app-error.403-empty-kept-alive",
            "granian 2.8.7: an exception escaping the app before accept gives `403 Forbidden`, "
            "`content-length: 0`, no body (the upgrade was never consumed), connection kept open: "
            "a server error that looks like an authorization failure.",
        ),
    ],
    "daphne-stock": [
        Quirk(
            "denial.unsupported-reset",
            "daphne 4.2.3 (autobahn 26.10): no denial extension; an app that sends "
            "`websocket.http.response.start` anyway (FastAPI does) is ignored, the client gets no "
            "HTTP answer and a TCP reset when the 5 s handshake timeout fires.",
        ),
        Quirk(
            "close-before-accept.403-access-denied",
            "daphne 4.2.3: `websocket.close` before accept answers `HTTP/1.1 403 Access denied`, "
            "no headers, no body, then closes.",
        ),
        Quirk(
            "app-error.500-bare",
            "daphne 4.2.3: an exception escaping the app before accept answers "
            "`HTTP/1.1 500 Internal server error`, no headers, no body, then closes.",
        ),
        Quirk(
            "handshake.repeated-origin-400",
            "daphne 4.2.3 / autobahn 26.10: two Origin lines are joined with ',' and autobahn "
            "refuses them itself: `HTTP/1.1 400 HTTP Origin header invalid: Port could not be cast "
            "to integer value as '8000,http:'`; the app never runs, and exception text is in the "
            "status line.",
        ),
    ],
    # Measured 2026-11 with both the reference app and the demo on every case
    # (tests/conformance/test_conformance.py asserts each entry).
    "daphne-wsreject": [
        Quirk(
            "handshake.repeated-origin-400-bad-request",
            "daphne 4.2.3 + wsreject.daphne (autobahn 26.10): two Origin lines are joined with ',' "
            "and autobahn refuses the handshake itself before the app runs (`HTTP Origin header "
            "invalid`); wsreject's `sendHttpErrorResponse` turns that into a clean `400 Bad Request`, "
            "text/plain; charset=utf-8 body `Bad Request`, content-length, connection: close (no "
            "exception text in the status line, unlike stock Daphne).",
        ),
        Quirk(
            "app-error.500-text-plain",
            "daphne 4.2.3 + wsreject.daphne: an exception escaping the app before accept is answered "
            "at once (`answer_internal_error`) with `500 Internal Server Error`, text/plain; "
            "charset=utf-8 body `Internal Server Error` (21 bytes), content-length, connection: "
            "close, and logged; nothing of the exception is on the wire (scenario case 16 with the "
            "FastAPI reference, deliberate difference).",
        ),
    ],
}


def quirks(kind: str) -> list[Quirk]:
    return SERVER_QUIRKS.get(kind, [])


def has_quirk(kind: str, what: str) -> bool:
    return any(q.what == what for q in quirks(kind))


def quirk_keys(kind: str) -> set[str]:
    return {q.what for q in quirks(kind)}


# --- what a case looks like on a given server ---------------------------------------------------
#
# ``cases.py`` says what an app must answer; the functions below turn that into what a client
# sees through a given server, one quirk at a time. "Replacements" mean the server answers with
# its own response instead of the app's (the first that applies wins); "modifications" alter the
# app's response on its way out (all that apply, in order).

_BASE64_ACCEPT = r"[A-Za-z0-9+/]{27}="
_NO_BODY_STATUSES = (204, 304)


def _upgrade_headers():
    from tests.conformance.cases import UPGRADE_HEADERS

    return UPGRADE_HEADERS


def _own_response(status: int, body: bytes, content_type: str | None, *, closed: bool = True):
    from tests.conformance.cases import Expect

    headers = [("content-length", str(len(body)))]
    absent = list(_upgrade_headers())
    if content_type is None:
        absent.append("content-type")
    else:
        headers.append(("content-type", content_type))
    return Expect(status, headers=tuple(headers), absent_headers=tuple(absent), body=body, closed=closed)


def _origin_lines(case) -> int:
    return (case.origin is not None) + sum(1 for name, _ in case.headers if name.lower() == "origin")


def _non_ascii_request(case) -> bool:
    values = [value for _, value in case.headers] + ([case.origin] if case.origin is not None else [])
    return not all(value.isascii() for value in values)


def _is_informational(expect) -> bool:
    return expect.status is not None and 100 <= expect.status < 200 and expect.status != 101


def _registered(status: int) -> bool:
    from http import HTTPStatus

    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True


def _repeats_a_header(expect) -> bool:
    names = [name for name, _ in expect.headers]
    return len(names) != len(set(names))


_UVICORN_500_EXPECT = lambda: _own_response(500, b"Internal Server Error", "text/plain; charset=utf-8")  # noqa: E731

# what -> (applies(expect, case, app_raises) -> bool, expectation instead)
REPLACEMENTS: dict[str, Callable] = {
    "app-error.500-text-plain": lambda e, c, raises: raises and _UVICORN_500_EXPECT(),
    "app-error.500-empty": lambda e, c, raises: raises and _own_response(500, b"", None),
    "app-error.403-empty-kept-alive": lambda e, c, raises: raises and _own_response(403, b"", None, closed=False),
    "denial.unregistered-status-becomes-500": lambda e, c, raises: (
        e.denied and not _registered(e.status) and _UVICORN_500_EXPECT()
    ),
    "handshake.repeated-origin-400": lambda e, c, raises: (
        _origin_lines(c) > 1
        and _own_response(
            400,
            b"Failed to open a WebSocket connection: invalid Origin header: multiple values.\n",
            "text/plain; charset=utf-8",
        )
    ),
    "handshake.repeated-origin-400-bad-request": lambda e, c, raises: (
        _origin_lines(c) > 1 and _own_response(400, b"Bad Request", "text/plain; charset=utf-8")
    ),
    "handshake.non-ascii-request-header-500": lambda e, c, raises: (
        _non_ascii_request(c)
        and _own_response(
            500, b"Failed to open a WebSocket connection.\nSee server log for more information.\n", "text/plain"
        )
    ),
    "denial.informational-dropped": lambda e, c, raises: _is_informational(e) and _no_response(),
    "denial.informational-becomes-500": lambda e, c, raises: _is_informational(e) and _own_response(500, b"", None),
    "denial.repeated-header-kills-server": lambda e, c, raises: (
        e.denied and _repeats_a_header(e) and _no_response(server_dies=True)
    ),
}


def _no_response(server_dies: bool = False):
    from tests.conformance.cases import Expect

    return Expect(None, closed=True, server_dies=server_dies)


def _fill_content_headers(content_type: str):
    def modify(expect, case, raises):
        if not expect.denied:
            return None
        changed = expect
        if "content-length" in expect.absent_headers:
            changed = changed.with_header("content-length", str(len(expect.body or b"")))
        if "content-type" in expect.absent_headers:
            changed = changed.with_header("content-type", content_type)
        return changed if changed != expect else None

    return modify


def _utf8_header_values(expect, case, raises):
    from dataclasses import replace

    if not expect.denied or all(v.isascii() for _, v in expect.headers):
        return None
    return replace(
        expect, headers=tuple((k, v.encode("utf-8").decode("latin-1")) for k, v in expect.headers)
    )


def _add_upgrade_headers(expect, case, raises):
    if not expect.denied:
        return None
    return (
        expect.with_header("connection", "upgrade")
        .with_header("upgrade", "websocket")
        .with_pattern("sec-websocket-accept", _BASE64_ACCEPT)
    )


def _kept_alive(expect, case, raises):
    from dataclasses import replace

    if not expect.denied or expect.closed is not True:
        return None
    return replace(expect, closed=False)


# what -> modify(expect, case, app_raises) -> changed expectation, or None when it does not apply
MODIFICATIONS: dict[str, Callable] = {
    "denial.fills-content-headers:text/plain": _fill_content_headers("text/plain"),
    "denial.fills-content-headers:text/plain; charset=utf-8": _fill_content_headers("text/plain; charset=utf-8"),
    "denial.header-values-sent-as-utf8": _utf8_header_values,
    "denial.upgrade-headers-added": _add_upgrade_headers,
    "denial.connection-kept-alive": _kept_alive,
}


def applied_quirks(kind: str, case, *, app_raises: bool = False, fallback: str | None = None) -> tuple[object, list[str]]:
    """(the expectation of ``case`` on ``kind``, the quirk keys that changed it).

    ``fallback`` matters only on a server without the denial extension (``daphne-stock``):
    see :func:`expected_on_server`."""
    if kind == "daphne-stock":
        return _on_stock_daphne(case, app_raises=app_raises, fallback=fallback)
    expect = case.expect
    for quirk in quirks(kind):
        replace_with = REPLACEMENTS.get(quirk.what)
        if replace_with is not None:
            result = replace_with(expect, case, app_raises)
            if result:
                return result, [quirk.what]
    if app_raises:
        raise ValueError(f"{kind}: no quirk says what the server answers when the app raises ({case.id})")
    used = []
    for quirk in quirks(kind):
        modify = MODIFICATIONS.get(quirk.what)
        if modify is not None:
            changed = modify(expect, case, app_raises)
            if changed is not None:
                expect = changed
                used.append(quirk.what)
    return expect, used


STOCK_DAPHNE_FALLBACKS = (None, "close", "close_code")


def denial_detail(expect) -> str:
    """The detail a denial carries: ``detail`` of a ``{"detail": ...}`` body, else the
    status phrase (what ``wsreject.DenialResponse.detail`` defaults to)."""
    import json
    from http import HTTPStatus

    try:
        data = json.loads(expect.body or b"")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"]
    try:
        return HTTPStatus(expect.status).phrase
    except ValueError:
        return ""


def _bare_response(status: int):
    """Daphne's own answer through autobahn: a status line, no headers, no body, closed."""
    from tests.conformance.cases import Expect

    absent = ("content-type", "content-length", *_upgrade_headers())
    return Expect(status, absent_headers=absent, body=b"", closed=True)


def _on_stock_daphne(case, *, app_raises: bool, fallback: str | None) -> tuple[object, list[str]]:
    """Stock Daphne advertises no denial extension, so what a client sees of a denial is
    decided by the app's fallback: ``"close"`` (wsreject's default: ``websocket.close``
    before accept → Daphne's own ``403 Access denied``), ``"close_code"`` (wsreject
    accepts, sends ``{"detail": ...}`` and closes with 4000 + status: a 101 whose first
    message is that frame; the close code is not part of ``Expect``), or ``None`` (an app
    that sends the extension's messages anyway, as FastAPI does: no answer at all).
    Accepted cases are unchanged. Bare responses have no headers whatsoever; ``Expect``
    can only list the absent ones, so callers assert ``headers == []`` themselves."""
    from tests.conformance.cases import accepted, compact_json

    if fallback not in STOCK_DAPHNE_FALLBACKS:
        raise ValueError(f"daphne-stock: fallback must be one of {STOCK_DAPHNE_FALLBACKS}, got {fallback!r}")
    expect = case.expect
    if _origin_lines(case) > 1:
        return _bare_response(400), ["handshake.repeated-origin-400"]
    if app_raises:
        return _bare_response(500), ["app-error.500-bare"]
    if expect.accepted:
        return expect, []
    if fallback == "close":
        return _bare_response(403), ["close-before-accept.403-access-denied"]
    if fallback == "close_code":
        return accepted(raw_first=compact_json({"detail": denial_detail(expect)})), []
    return _no_response(), ["denial.unsupported-reset"]


def expected_on_server(kind: str, case, *, app_raises: bool = False, fallback: str | None = None):
    """What a client sees of ``case`` (a ``tests.conformance.cases.Case``) through ``kind``.

    ``app_raises``: the app lets an exception escape (the reference app on case 16);
    the server's own error response is expected then. On ``daphne-stock`` (no denial
    extension) the answer depends on the app's ``fallback``: ``"close"``, ``"close_code"``
    or ``None`` for an app without one (see :func:`_on_stock_daphne`).
    """
    return applied_quirks(kind, case, app_raises=app_raises, fallback=fallback)[0]


# --- pytest glue --------------------------------------------------------------------------


def server_fixture(
    kind: str | None,
    app: str,
    *,
    scope: str = "module",
    env: dict[str, str] | Callable[..., dict[str, str]] | None = None,
    params: Sequence[str] | None = None,
    **kwargs,
):
    """Build a pytest fixture that runs ``app`` on ``kind`` (or on each of ``params``).

    ``env`` may be a callable taking the pytest ``request``, for values from other
    fixtures: ``env=lambda request: {"X": request.getfixturevalue("tokens")}``.
    """
    import pytest

    @pytest.fixture(scope=scope, params=list(params) if params else None, ids=list(params) if params else None)
    def _fixture(request):
        server_kind = request.param if params else kind
        resolved = env(request) if callable(env) else env
        with running_server(server_kind, app, env=resolved, **kwargs) as server:
            yield server

    return _fixture
