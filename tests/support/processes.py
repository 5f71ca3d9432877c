"""Server processes for the test suite: spawned on a free port of 127.0.0.1, awaited by
readiness, stopped with their whole process group.

``running_process`` runs any command line given the port::

    with running_process(lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                         label="runserver") as server:
        server.wait_for_log("Starting ASGI/Daphne")

The port is picked by binding port 0; a start that exits on a port clash is retried on a
new port. The process is ready when it answers a trivial HTTP request (or accepts a TCP
connection) — polled, never a fixed sleep — and the listening socket is its own process
group's (another process that took the port in between would answer the probe too). If it exits or does not answer within
``startup_timeout`` the start fails with the captured log. On exit the process group is
terminated, waited for, and killed if it lingers. ``servers.running_server`` builds on
this for the ASGI server kinds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@dataclass
class Server:
    kind: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    command: list[str] = field(default_factory=list)
    log_path: Path | None = None
    described_version: str = ""
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
        """The server's distribution and version (``running_process(version=...)``);
        without one, the label itself."""
        return self.described_version or self.kind

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

    def wait_for_line(self, *parts: str, timeout: float = 5.0, since: int = 0) -> str:
        """Poll the log until one line contains every one of ``parts``; return that line.
        ``since`` (a ``len(server.log())`` taken earlier) looks only at what came after it."""

        def line_with_parts(log: str) -> str | None:
            return next((line for line in log[since:].splitlines() if all(part in line for part in parts)), None)

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

    def open_connections(self) -> int | None:
        """Connections to this server's port that its processes still hold open (None:
        /proc cannot tell)."""
        return open_connections(self.process.pid, self.port)

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


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on TCP ``port`` (any address), from /proc/net."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def _connection_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets on local ``port`` that are not listening, from /proc/net."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] != "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    inodes.discard("0")  # closed by its process, left to the kernel (FIN_WAIT, TIME_WAIT)
    return inodes


def open_connections(pgid: int, port: int) -> int | None:
    """How many connections to ``port`` processes of group ``pgid`` still hold open
    (socket file descriptors); None where /proc cannot tell."""
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = _connection_inodes(port)
    held = set()
    for pid in _group_members(pgid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[len("socket:[") : -1] in inodes:
                held.add(target)
    return len(held)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold anything, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_listens_on(pgid: int, port: int) -> bool | None:
    """Whether a process of group ``pgid`` holds the socket listening on ``port``; None
    where /proc cannot tell. A server that lost its port to another process must not be
    taken as ready because that other process answers the probe."""
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    for pid in _group_members(pgid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[len("socket:[") : -1] in inodes:
                return True
    return False


def _wait_ready(
    server: Server, deadline: float, probe: Callable[[str, int], bool]
) -> str | None:
    """None when ready; otherwise why not ("exited", "timeout", or "foreign": the port
    answers, but the socket is not this process group's)."""
    delay = 0.02
    foreign = False
    while True:
        if server.process.poll() is not None:
            return "exited"
        if probe(server.host, server.port):
            foreign = group_listens_on(server.process.pid, server.port) is False
            # A process that died between probe and here is not ready.
            if not foreign:
                return None if server.process.poll() is None else "exited"
        if time.monotonic() >= deadline:
            return "foreign" if foreign else "timeout"
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


def _described(label: str, version: str) -> str:
    return f"{label} ({version})" if version else label


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
    version: str = "",
) -> Iterator[Server]:
    """Run ``command_for_port(port)`` on a free port of 127.0.0.1 for the duration of the
    block; the :class:`Server` it yields has ``kind == label``.

    The process gets this environment plus ``env`` (``PYTHONPATH`` starts with the
    repository), runs in ``cwd`` in a process group of its own, and writes stdout and
    stderr to ``Server.log()``. ``ready`` is ``"http"`` (any HTTP status line to a GET
    counts, so an app that answers HTTP with 404 or 500 is fine) or ``"tcp"`` (a TCP
    connect is enough; for apps whose server cannot answer plain HTTP at all). A start
    that exits on a port clash is retried on a new port, up to ``attempts`` starts.
    ``version`` (e.g. "granian 2.8.9") goes into failure messages and ``Server.version``.
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
        candidate = Server(
            kind=label, host=HOST, port=port, process=process, command=command, log_path=log_path,
            described_version=version,
        )  # fmt: skip
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
        why = {
            "exited": f"process exited with {process.returncode}",
            "timeout": f"no answer within {startup_timeout:g} s",
            "foreign": f"port {port} answered by another process for {startup_timeout:g} s",
        }[outcome]
        failure = (
            f"{_described(label, version)} did not become ready ({why}).\n"
            f"command: {' '.join(command)}\n--- server log ---\n{log}"
        )
        if not (outcome == "foreign" or (outcome == "exited" and _port_clash(log))):
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
