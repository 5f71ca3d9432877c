"""``python -m tests.edge.measure [SECONDS] [CONCURRENCY]``: decisions per second through
nginx -> forward auth, against handshakes sent to Daphne + wsreject directly.

Starts the demo (a fresh SQLite database) on Daphne + wsreject, the non-Django echo
backend and nginx with the generated configuration, all on 127.0.0.1, then for each
workload — a denial (``/ws/private/`` without a credential: 401) and an admission
(``/ws/echo/``: 101) — keeps CONCURRENCY handshakes in flight for SECONDS, direct and
through nginx, and prints the rates. Bounded: 127.0.0.1 only, at most 64 in flight.
No thresholds: a measurement, not a test.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.support.demo import prepare_demo
from tests.support.processes import running_process
from tests.support.servers import running_server
from tests.support.wsclient import raw_handshake

from .proxies import running_edge

WORKLOADS = (("denial 401", "/ws/private/", 401), ("admission 101", "/ws/echo/", 101))


async def rate(address: tuple[str, int], path: str, status: int, seconds: float, concurrency: int) -> tuple[float, int]:
    """Handshakes answered ``status`` per second, and how many got anything else."""
    done, wrong = 0, 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, wrong
        while time.monotonic() < deadline:
            response = await raw_handshake(*address, path, close_timeout=0.0)
            if response.status == status:
                done += 1
            else:
                wrong += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - started), wrong


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if argv else 5.0
    concurrency = min(64, int(argv[1]) if len(argv) > 1 else 8)
    with tempfile.TemporaryDirectory(prefix="wsreject-edge-measure-") as directory:
        demo = prepare_demo(Path(directory))
        env = {**demo.env, "WSREJECT_LOG_LEVEL": "ERROR"}
        with (
            running_server("daphne-wsreject", "project.asgi:application", env=env) as app,
            running_process(
                lambda port: [sys.executable, "-m", "tests.edge.echo_backend", str(port)], label="echo-backend"
            ) as backend,
            running_edge("nginx", env, app=app.address, backend=backend.address) as edge,
        ):
            print(f"{seconds:g} s per run, {concurrency} in flight, 127.0.0.1")
            for label, path, status in WORKLOADS:
                direct, direct_wrong = asyncio.run(rate(app.address, path, status, seconds, concurrency))
                edged, edge_wrong = asyncio.run(rate(edge.address, path, status, seconds, concurrency))
                print(
                    f"{label:14} direct {direct:8.1f}/s   nginx -> forward auth {edged:8.1f}/s   "
                    f"ratio {edged / direct if direct else float('nan'):.2f}   (other answers: {direct_wrong}, {edge_wrong})"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
