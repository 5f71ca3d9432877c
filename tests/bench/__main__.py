"""``python -m tests.bench``: measure every peer on every scenario in one run; see ``--help``."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.support.servers import REPO_ROOT

from . import admin_scale, chart, edge, report
from .load import wrk_version
from .peers import DAPHNE_FLAGS, PEERS, PEERS_BY_KEY, UVICORN_FLAGS
from .provision import provision
from .runner import Options, Runner, say
from .scenarios import SCENARIOS

DISTRIBUTIONS = (
    "wsreject", "django", "channels", "asgiref", "daphne", "twisted", "autobahn", "uvicorn", "websockets",
    "uvloop", "httptools", "fastapi", "starlette", "redis", "channels-redis",
)  # fmt: skip
DEFAULT_OUT = REPO_ROOT / "docs" / "bench"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Handshakes/s, latency, queries and thread hops per handshake, and server memory, "
        "for every peer on every scenario in one run.",
        epilog=f"peers: {', '.join(p.key for p in PEERS)}; scenarios: {', '.join(s.key for s in SCENARIOS)}",
    )
    parser.add_argument("--smoke", action="store_true", help="a short run of every code path, into a temporary directory")
    parser.add_argument("--duration", type=int, help="seconds per measured cell and round (default 5; smoke 1)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections of each load generator (16)")
    parser.add_argument("--warmup", type=int, help="answers per scenario and peer before measuring (default 2000; smoke 100)")
    parser.add_argument("--soak-denials", type=int, help="denials since the warm-up before the second RSS reading (20000; smoke 1500)")
    parser.add_argument("--count-check-seconds", type=int, help="seconds per denial scenario of the INFO-log count check (3; smoke 1; 0: skip)")
    parser.add_argument("--rounds", type=int, help="measure the whole matrix this many times; each cell reports its median round (default 3; smoke 1)")
    parser.add_argument("--peers", help="comma-separated peers (default: all)")
    parser.add_argument("--scenarios", help="comma-separated scenarios (default: all)")
    parser.add_argument("--log-level", default="WARNING", help="WSREJECT_LOG_LEVEL of the demo's servers (WARNING)")
    parser.add_argument("--redis", action="store_true", help="serve the Django peers with REDIS_URL (a flushed database) instead of the local-memory cache")
    parser.add_argument("--redis-db", type=int, default=12, help="the Redis database number for --redis and the *-redis peers (12)")
    parser.add_argument("--server-core", type=int, default=0, help="core the servers are pinned to (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core the load generators are pinned to (1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin (machines with one core)")
    parser.add_argument("--out", type=Path, help=f"output directory (default {DEFAULT_OUT.relative_to(REPO_ROOT)}; smoke: a temporary one)")
    parser.add_argument("--admin-scale", action="store_true", help="also render the admin's Who can connect with a handful and 100 000 users (tests.bench.admin_scale; smoke: 2000)")
    parser.add_argument("--edge", action="store_true", help="also measure the first wsreject peer of --peers behind nginx -> forward auth against it directly (tests.bench.edge; smoke: when nginx is installed)")
    parser.add_argument("--label", default="unlabelled run", help="what kind of run this is, recorded in the results (e.g. 'quiet machine')")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.duration = args.duration or (1 if smoke else 5)
    args.rounds = args.rounds or (1 if smoke else 3)
    args.warmup = args.warmup if args.warmup is not None else (100 if smoke else 2000)
    args.soak_denials = args.soak_denials if args.soak_denials is not None else (1500 if smoke else 20000)
    args.count_check_seconds = args.count_check_seconds if args.count_check_seconds is not None else (1 if smoke else 3)
    explicit_peers = bool(args.peers)
    args.peers = _choose(parser, args.peers, [p.key for p in PEERS], "peer")
    if not explicit_peers and not os.environ.get("CI") and _redis_unreachable(args.redis_db):
        say(f"Redis does not answer at 127.0.0.1:6379/{args.redis_db}: the *-redis peers are left out")
        args.peers = [key for key in args.peers if not PEERS_BY_KEY[key].redis]
    args.scenarios = _choose(parser, args.scenarios, [s.key for s in SCENARIOS], "scenario")
    args.edge = args.edge or smoke
    if args.edge and edge.edge_peer(args.peers) is None:
        if not smoke:
            parser.error("--edge measures a wsreject peer: include one in --peers (wsreject, daphne-wsreject, ...)")
        args.edge = False
    if args.edge and (why := edge.missing()) is not None:
        if not smoke:
            parser.error(f"--edge: {why}")
        say(f"the edge measurement is SKIPPED: {why}")
        args.edge = False
    if not (1 <= args.rounds <= 10 and 1 <= args.duration <= 120 and 1 <= args.connections <= 256 and 0 <= args.soak_denials <= 200_000):
        parser.error("keep it bounded: 1 <= rounds <= 10, 1 <= duration <= 120, 1 <= connections <= 256, soak-denials <= 200000")
    if args.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        parser.error(f"--log-level must be a logging level name, not {args.log_level!r}")
    args.log_level = args.log_level.upper()
    return args


def _redis_unreachable(db: int) -> bool:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=2).ping()
    except redis.RedisError:
        return True
    return False


def _choose(parser: argparse.ArgumentParser, value: str | None, known: list[str], what: str) -> list[str]:
    if not value:
        return known
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in known]
    if unknown:
        parser.error(f"unknown {what}(s) {unknown}; choose among {known}")
    return [k for k in known if k in chosen]  # the canonical order


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["wrk"] = wrk_version()
    return found


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model, "cores": os.cpu_count(), "kernel": platform.release(),
        "machine": platform.machine(), "loadavg_before": os.getloadavg(),
    }  # fmt: skip


def pinning(args: argparse.Namespace) -> tuple[int | None, int | None]:
    if args.no_pin:
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None or len(cores) < 2:
        say(f"warning: cannot pin (taskset {'missing' if shutil.which('taskset') is None else 'present'}, cores {cores}): not pinning")
        return None, None
    if args.server_core == args.client_core or not {args.server_core, args.client_core} <= set(cores):
        raise SystemExit(f"--server-core and --client-core must be two different cores of {cores}")
    os.sched_setaffinity(0, {args.client_core})  # the harness itself stays off the server's core
    return args.server_core, args.client_core


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if shutil.which("wrk") is None:
        message = "wrk is not installed: ./dev bench installs it as root (apt-get install wrk)"
        if args.smoke:
            say(f"bench smoke run SKIPPED: {message}")
            return 0
        raise SystemExit(message)
    # SIGTERM and SIGHUP end the run like Ctrl-C does: every server's process group is killed on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    server_core, client_core = pinning(args)
    started = datetime.now(UTC)
    info = machine()
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="wsreject-bench-")) if args.smoke else DEFAULT_OUT)
    options = Options(
        duration=args.duration, warmup=args.warmup, connections=args.connections, peers=args.peers,
        scenarios=args.scenarios, soak_denials=args.soak_denials, count_check_seconds=args.count_check_seconds,
        rounds=args.rounds, server_core=server_core, client_core=client_core,
    )  # fmt: skip
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wsreject-bench-db-") as tmp:
        say(f"preparing the demo database in {tmp}")
        redis_peers = any(PEERS_BY_KEY[key].redis for key in args.peers)
        prov = provision(
            Path(tmp), log_level=args.log_level, redis_db=args.redis_db if args.redis else None,
            peer_redis_db=args.redis_db if redis_peers else None,
        )  # fmt: skip
        runner = Runner(options, prov)
        runner.run()
        edge_results = edge.run(prov, options, edge.edge_peer(args.peers) or "") if args.edge else None
    info["loadavg_after"] = os.getloadavg()
    others = [c.others_on_server_core_pct for c in runner.cells if c.others_on_server_core_pct is not None]
    info["others_on_server_core_pct_mean"] = sum(others) / len(others) if others else None
    results: dict[str, Any] = {
        "label": args.label + (" (smoke)" if args.smoke else ""),
        "argv": argv,
        "started": started.isoformat(timespec="seconds"),
        "wall_time_s": round(time.monotonic() - t0, 1),
        "machine": info,
        "versions": versions(),
        "parameters": {
            "smoke": args.smoke, "duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
            "warmup_answers": args.warmup, "soak_denials": args.soak_denials,
            "count_check_seconds": args.count_check_seconds, "peers": args.peers, "scenarios": args.scenarios,
            "log_level": args.log_level, "redis_url": prov.redis_url, "redis_peers_url": prov.peer_redis_url, "django_debug": False,
            "server_core": server_core, "client_core": client_core, "wrk_threads": 1,
            "uvicorn_flags": list(UVICORN_FLAGS), "daphne_flags": list(DAPHNE_FLAGS),
            "database": "SQLite file (tests.support.demo.prepare_demo)", "edge": args.edge,
        },
        "peers": {key: run.as_json() for key, run in runner.peer_runs.items()},
        "cells": [cell.as_json() for cell in runner.summary_cells()],
        "cells_by_round": [cell.as_json() for cell in runner.cells] if args.rounds > 1 else None,
        "costs": runner.costs,
        "count_checks": runner.count_checks,
    }
    results["ratios"] = report.ratios(results)
    if edge_results is not None:
        results["edge"] = edge_results
    written = report.write(results, out_dir)
    if edge_results is not None:
        edge.append_section(out_dir / "results.md", edge_results)
    written.append(chart.draw(results, out_dir / "chart.png"))
    if out_dir == DEFAULT_OUT and not args.smoke:  # the committed run is the README's
        readme = REPO_ROOT / "README.md"
        if report.update_readme(readme, report.readme_section(results, "docs/bench/chart.png")):
            written.append(readme)
    report.print_report(results)
    if edge_results is not None:
        edge.print_section(edge_results)
    if args.admin_scale:
        admin_scale.main(["--out", str(out_dir), *(["--users", "2000", "--renders", "3"] if args.smoke else [])])
        written += [out_dir / "admin_scale.json", out_dir / "admin_scale.md"]
    say("\nwritten: " + ", ".join(str(p) for p in written))
    broken = [
        f"{c.peer}/{c.scenario}: {p}" for c in runner.cells for p in c.problems
        if p.startswith(("no answer", "unexpected statuses", "server answered", "first message", "no first"))
    ] + [f"count check {c['peer']}/{c['scenario']}" for c in runner.count_checks if not c["ok"]] + [
        f"edge {row['scenario']}: {p}" for row in (edge_results or {}).get("rows", []) for p in row["problems"]
    ]  # fmt: skip
    if broken:
        say("the harness is broken (wrong answers or counts, not slowness):\n  " + "\n  ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every server the bench started was stopped", file=sys.stderr)
        sys.exit(130)
