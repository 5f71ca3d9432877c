"""The peers: real server processes on 127.0.0.1, pinned to the server core.

Every uvicorn peer runs the same implementation (``--ws websockets-sansio``, uvicorn's
default, with uvicorn's default loop and HTTP parser), ``--no-access-log`` and
``--log-level warning``; the Daphne peers run ``-v 0`` (warnings only, no access log).
How loud the demo's own ``wsreject`` logger is comes from ``WSREJECT_LOG_LEVEL``
(a recorded parameter of the run).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from tests.support.demo import DEMO_APP
from tests.support.servers import HOST, Server, running_process

REFERENCE_APP = "tests.conformance.reference_fastapi:app"
RAW_APP = "tests.bench.apps.raw:app"
PLAIN_CHANNELS_APP = "tests.bench.apps.plain_channels:application"
SHARED_SOCKET = "tests.bench.apps.shared_socket"

UVICORN_FLAGS = ("--ws", "websockets-sansio", "--lifespan", "off", "--no-access-log", "--log-level", "warning")
DAPHNE_FLAGS = ("-v", "0")


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    server: str  # "uvicorn", "daphne-wsreject" or "daphne-stock"
    app: str
    family: str  # how scenarios map onto it: see scenarios.request_for
    django: bool  # serves project.settings: gets the demo's database (and Redis with --redis)
    redis: bool = False  # the production profile: Redis for the cache, the throttles and the channel layer
    workers: int = 1  # processes sharing one listening socket: uvicorn --workers, Daphne via --fd

    def command(self, port: int) -> list[str]:
        py = sys.executable
        if self.server == "uvicorn":
            workers = ["--workers", str(self.workers)] if self.workers > 1 else []
            return [py, "-m", "uvicorn", "--host", HOST, "--port", str(port), *UVICORN_FLAGS, *workers, self.app]
        module = {"daphne-wsreject": "wsreject.daphne", "daphne-stock": "daphne"}[self.server]
        if self.workers > 1:  # N processes accepting from one socket (Daphne's --fd)
            return [py, "-m", SHARED_SOCKET, HOST, str(port), str(self.workers), py, "-m", module, *DAPHNE_FLAGS, self.app]
        return [py, "-m", module, "-b", HOST, "-p", str(port), *DAPHNE_FLAGS, self.app]


PEERS: tuple[Peer, ...] = (
    Peer("raw", "raw ASGI (limit) / uvicorn", "uvicorn", RAW_APP, "raw", False),
    Peer("fastapi", "FastAPI / uvicorn", "uvicorn", REFERENCE_APP, "fastapi", False),
    Peer("channels", "plain Channels / uvicorn", "uvicorn", PLAIN_CHANNELS_APP, "channels", True),
    Peer("wsreject", "wsreject / uvicorn", "uvicorn", DEMO_APP, "wsreject", True),
    Peer("daphne-wsreject", "wsreject / Daphne+wsreject", "daphne-wsreject", DEMO_APP, "wsreject", True),
    Peer("daphne-stock", "wsreject / stock Daphne", "daphne-stock", DEMO_APP, "wsreject-close", True),
    # The production profile (Redis), beside the local-memory one in the same run.
    Peer("wsreject-redis", "wsreject, Redis / uvicorn", "uvicorn", DEMO_APP, "wsreject", True, redis=True),
    Peer("wsreject-redis-2w", "wsreject, Redis / uvicorn, 2 workers", "uvicorn", DEMO_APP, "wsreject", True, redis=True, workers=2),
    Peer("daphne-wsreject-redis", "wsreject, Redis / Daphne+wsreject", "daphne-wsreject", DEMO_APP, "wsreject", True, redis=True),
    Peer(
        "daphne-wsreject-redis-2p", "wsreject, Redis / Daphne+wsreject, 2 processes", "daphne-wsreject", DEMO_APP, "wsreject",
        True, redis=True, workers=2,
    ),
)
PEERS_BY_KEY = {p.key: p for p in PEERS}


@contextlib.contextmanager
def serving(peer: Peer, env: Mapping[str, str], server_core: int | None) -> Iterator[Server]:
    """Run ``peer`` until the block ends; the process group is killed on exit (also on Ctrl-C).

    The server starts on any core (several start at once, faster), and once it answers,
    every thread of every process of its group is pinned to ``server_core`` — what
    ``taskset -a -c CORE -p PID`` does; threads it starts later inherit that.
    """
    with running_process(peer.command, label=peer.key, env=env, startup_timeout=90) as server:
        if server_core is not None:
            pin_group(server.process.pid, server_core)
        yield server


def start_all(peers: list[tuple[Peer, Mapping[str, str]]], server_core: int | None, stack: contextlib.ExitStack) -> list[Server]:
    """Start ``peers`` concurrently; each one's teardown goes on ``stack`` (even when another fails)."""
    managers = [serving(peer, env, server_core) for peer, env in peers]
    with ThreadPoolExecutor(max_workers=len(managers) or 1) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
        try:
            wait(futures)
        finally:  # interrupted too: let the starts finish, so that every started server is stopped
            wait(futures)
            for manager, future in zip(managers, futures):
                if future.exception() is None:
                    stack.push(manager.__exit__)
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        raise failed[0]  # type: ignore[misc]
    return [f.result() for f in futures]


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def pin_group(pgid: int, core: int) -> None:
    for pid in group_pids(pgid):
        for tid in threads(pid):
            try:
                os.sched_setaffinity(tid, {core})
            except ProcessLookupError:
                pass  # a thread that just ended


def thread_affinities(pid: int) -> dict[str, list[int]]:
    """Every thread of ``pid`` and the cores it may run on (the proof of pinning)."""
    found = {}
    for tid in threads(pid):
        try:
            found[str(tid)] = sorted(os.sched_getaffinity(tid))
        except ProcessLookupError:
            continue
    return found


# --- which process serves -------------------------------------------------------------------


def _listening_inode(port: int) -> str | None:
    wanted = f"{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and local.rsplit(":", 1)[1] == wanted:
                return inode
    return None


def group_pids(pgid: int) -> list[int]:
    """Every process in process group ``pgid`` (the server and any workers it forked)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return sorted(pids)


def _holds(pid: int, target: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def serving_pid(server: Server) -> int:
    """The process of the server's group that holds the listening socket (the worker)."""
    inode = _listening_inode(server.port)
    pids = group_pids(server.process.pid)
    holders = [pid for pid in pids if inode is not None and _holds(pid, f"socket:[{inode}]")]
    # A pre-forking server's master holds the socket too: the worker is the one that is not the leader.
    workers = [pid for pid in holders if pid != server.process.pid]
    if workers or holders:
        return (workers or holders)[0]
    raise RuntimeError(f"no process of group {server.process.pid} ({pids}) listens on port {server.port}")
