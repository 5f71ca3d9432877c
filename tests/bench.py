"""Benchmark harness: handshakes per second on real servers, as ratios to peers in the same run.

    ./dev bench [--seconds 3] [--concurrency 16]

Each server serves the demo (or the FastAPI reference) on 127.0.0.1; a bounded
asyncio client opens raw WebSocket handshakes for a fixed time per scenario and
counts answers with the expected status. Absolute numbers depend on the
machine (client and server share its cores), so the table shows each result
as a ratio to the FastAPI reference on uvicorn measured in the same run, and
the server's resident memory after a warm-up and after the measured run
(denials must not grow it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.demo import DEMO_APP, prepare_demo
from tests.support.servers import running_server, server_version
from tests.support.wsclient import raw_handshake

REFERENCE_APP = "tests.conformance.reference_fastapi:app"


@dataclass(frozen=True)
class Target:
    label: str
    kind: str
    app: str


TARGETS = [
    Target("FastAPI reference / uvicorn", "uvicorn-websockets", REFERENCE_APP),
    Target("wsreject demo / uvicorn", "uvicorn-websockets", DEMO_APP),
    Target("wsreject demo / Daphne+wsreject", "daphne-wsreject", DEMO_APP),
    Target("wsreject demo / stock Daphne (403)", "daphne-stock", DEMO_APP),
]

# (label, path, token user or None, expected statuses)
SCENARIOS = [
    ("401 no credential", "/ws/private/", None, {401, 403}),
    ("403 room, bob", "/ws/rooms/lobby/", "bob", {403}),
    ("404 unknown path", "/ws/does-not-exist/", None, {404, 403}),
    ("101 echo", "/ws/echo/", None, {101}),
]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def hammer(host: str, port: int, path: str, headers, expected: set[int], seconds: float, concurrency: int):
    """Open handshakes for ``seconds`` with ``concurrency`` clients; return (ok, errors)."""
    deadline = time.monotonic() + seconds
    ok = errors = 0

    async def worker():
        nonlocal ok, errors
        while time.monotonic() < deadline:
            try:
                response = await raw_handshake(host, port, path, headers, timeout=5.0, close_timeout=0)
                if response.status in expected:
                    ok += 1
                else:
                    errors += 1
            except Exception:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors


def run(seconds: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="wsreject-bench-") as tmp:
        demo = prepare_demo(Path(tmp))
        tokens = demo.tokens
        env = {**demo.env, "WSREJECT_LOG_LEVEL": "WARNING", "WSREJECT_REF_TOKENS": __import__("json").dumps(tokens)}
        results: dict[tuple[str, str], tuple[float, int]] = {}
        memory: dict[str, tuple[int, int]] = {}
        for target in TARGETS:
            with running_server(target.kind, target.app, env=env) as server:
                plans = [
                    (label, path, [("Authorization", f"Bearer {tokens[user]}")] if user else [], expected)
                    for label, path, user, expected in SCENARIOS
                ]
                for label, path, headers, expected in plans:  # warm-up: imports, caches, pools
                    asyncio.run(hammer(server.host, server.port, path, headers, expected, 0.5, concurrency))
                before = rss_kib(server.process.pid)
                for label, path, headers, expected in plans:
                    ok, errors = asyncio.run(hammer(server.host, server.port, path, headers, expected, seconds, concurrency))
                    results[(target.label, label)] = (ok / seconds, errors)
                memory[target.label] = (before, rss_kib(server.process.pid))
                print(f"measured {target.label} ({server_version(target.kind)})", flush=True)
    baseline = TARGETS[0].label
    print(f"\nhandshakes/s over {seconds:g}s, {concurrency} concurrent clients, {os.cpu_count()} cores "
          f"(ratio to {baseline}; errors = unexpected status or failure)\n")
    header = f"{'scenario':22}" + "".join(f"{t.label[:34]:>36}" for t in TARGETS)
    print(header)
    for label, *_ in SCENARIOS:
        base_rate = results[(baseline, label)][0] or 1.0
        cells = []
        for target in TARGETS:
            rate, errors = results[(target.label, label)]
            cells.append(f"{rate:8.0f}/s x{rate / base_rate:4.2f}" + (f" err {errors}" if errors else "       "))
        print(f"{label:22}" + "".join(f"{c:>36}" for c in cells))
    print("\nserver RSS (KiB) after warm-up -> after the measured run (growth would mean something is kept per handshake)")
    for target in TARGETS:
        before, after = memory[target.label]
        print(f"  {target.label:36} {before:8d} -> {after:8d}  ({after - before:+d})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per scenario and server")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client connections")
    args = parser.parse_args()
    if not (0 < args.seconds <= 60 and 0 < args.concurrency <= 256):
        parser.error("keep it bounded: 0 < seconds <= 60, 0 < concurrency <= 256")
    run(args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
