"""Server CPU time per answered denial, for comparing peers on a busy machine.

``python -m tests.bench.cpu [--peers fastapi,wsreject] [--scenarios no_credential,...] [--rounds 5]``

The main harness measures handshakes per second on a pinned core: right on a quiet machine, but
on a shared one every other process's share of that core moves the rates (runs of the same code
spread 2x). The CPU time a server process spends per answered handshake (its ``utime + stime``
over a ``wrk`` run, divided by the answers) barely depends on who else runs, so two versions of
the code, or wsreject and FastAPI, can be compared while others work. A ratio of these is an
estimate of the rate ratio the quiet-machine bench would report; it does not replace it.
Denial scenarios only (``wrk`` cannot complete a 101); the peers' servers are unpinned.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from pathlib import Path

from .load import run_wrk
from .peers import PEERS_BY_KEY, serving
from .provision import provision
from .scenarios import SCENARIOS_BY_KEY, request_for

__all__ = ["cpu_seconds", "main"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its direct children (uvicorn's workers)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks = 0
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default="fastapi,wsreject", help="comma-separated peers (default fastapi,wsreject)")
    parser.add_argument("--scenarios", default="no_credential,forged_token,unknown_path", help="denial scenarios")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per cell; the median is reported")
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per measurement")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    peers = [PEERS_BY_KEY[key] for key in args.peers.split(",")]
    scenarios = [SCENARIOS_BY_KEY[key] for key in args.scenarios.split(",")]
    if any(s.accepted for s in scenarios):
        parser.error("denial scenarios only: wrk cannot complete a 101")
    with tempfile.TemporaryDirectory(prefix="wsreject-bench-cpu-") as directory, contextlib.ExitStack() as stack:
        prov = provision(Path(directory), log_level="WARNING", redis_db=None)
        servers = {peer.key: stack.enter_context(serving(peer, prov.env_for(peer), None)) for peer in peers}
        found: dict[tuple[str, str], list[float]] = {}
        for round_number in range(args.rounds + 1):  # round 0 warms up
            for scenario in scenarios:
                for peer in peers:
                    request = request_for(peer.family, scenario.key, prov.creds)
                    if request is None:
                        continue
                    server = servers[peer.key]
                    before = cpu_seconds(server.process.pid)
                    result = run_wrk(
                        server.http_url("/"), [request], seconds=args.duration, connections=args.connections, client_core=None
                    )
                    used = cpu_seconds(server.process.pid) - before
                    if result.ok(request.status) < 0.99 * result.requests:
                        raise SystemExit(f"{peer.key} {scenario.key}: unexpected answers {result.statuses}")
                    if round_number:
                        found.setdefault((scenario.key, peer.key), []).append(used / max(result.requests, 1) * 1e6)
        print(f"server CPU µs per answered handshake, median of {args.rounds} rounds:")
        for scenario in scenarios:
            cells = {
                peer.key: statistics.median(found[scenario.key, peer.key]) for peer in peers if (scenario.key, peer.key) in found
            }
            line = "  ".join(f"{key} {value:6.1f}" for key, value in cells.items())
            ratio = cells.get("fastapi", 0) / cells["wsreject"] if "wsreject" in cells and "fastapi" in cells else None
            print(f"  {scenario.key:15s} {line}" + (f"  FastAPI ÷ wsreject {ratio:.2f}" if ratio else ""))


if __name__ == "__main__":
    main()
