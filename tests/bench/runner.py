"""One run: every selected peer on every selected scenario, interleaved (round by round,
scenario by scenario, each peer in turn) so that a change of machine load hits all peers
of a scenario alike; each cell then reports its median round.

All peers are served at once, each pinned to the server core (an idle server costs
nothing); each load generator runs pinned to the client core. Per peer: warm-up, RSS,
the measured cells, then denials until ``soak_denials`` were answered since the warm-up,
and RSS again. Then the in-process costs (queries and thread hops per handshake), and
the count check: wrk's counts against the server's own (the raw app's counters, and the
wsreject logger's at INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.support.servers import Server
from tests.support.wsclient import raw_handshake

from .costs import COST_PEERS
from .costs import cases as cost_cases
from .load import LoadResult, run_handshake_client, run_wrk
from .metrics import CpuWindow, denials_in_log, problem_lines, rss_kib, taskset_report
from .peers import (
    PEERS_BY_KEY,
    Peer,
    serving,
    serving_pid,
    start_all,
    thread_affinities,
)
from .provision import Provision, run_inprocess
from .scenarios import SCENARIOS_BY_KEY, Request, request_for


@dataclass
class Options:
    duration: int  # seconds per measured cell and round
    warmup: int  # answers per scenario before measuring
    connections: int
    peers: list[str]
    scenarios: list[str]
    soak_denials: int
    count_check_seconds: int
    rounds: int
    server_core: int | None
    client_core: int | None
    costs_repeat: int = 3


@dataclass
class Cell:
    peer: str
    scenario: str
    request: dict[str, Any]
    expected_status: int
    result: LoadResult
    server_cpu_pct: float
    others_on_server_core_pct: float | None
    probe: dict[str, Any]
    server_log_lines: int = 0  # lines the server wrote during the cell
    server_error_lines: int = 0  # of which say something went wrong (see metrics.problem_lines)
    server_counts: dict[int, int] | None = None
    problems: list[str] = field(default_factory=list)
    round: int = 0
    rates_by_round: list[float] = field(default_factory=list)  # filled on the cell that stands for all rounds

    @property
    def answered_as_expected(self) -> int:
        """Answers with the expected status; headerless wrk answers count when the probe
        showed that the expected answer has no headers (stock Daphne's bare 403)."""
        ok = self.result.ok(self.expected_status)
        if self.result.headerless and self.probe["status"] == self.expected_status and not self.probe["headers"]:
            ok += self.result.headerless
        return ok

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = self.result.rate
        data["answered_as_expected"] = self.answered_as_expected
        return data


@dataclass
class PeerRun:
    peer: Peer
    server: Server
    pid: int
    requests: dict[str, Request | None]
    taskset: str = ""
    server_affinity: dict[str, list[int]] = field(default_factory=dict)  # thread id -> cores, at the start
    server_affinity_after: dict[str, list[int]] = field(default_factory=dict)  # and after the run
    rss_warm_kib: int = 0
    rss_after_kib: int = 0
    denials_since_warm: int = 0
    rss_by_round: list[dict[str, int]] = field(default_factory=list)  # {"denials_since_warm", "rss_kib"}
    soak: LoadResult | None = None
    log_lines: int = 0
    log_problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.peer.label, "server": self.peer.server, "app": self.peer.app, "family": self.peer.family,
            "command": self.server.command, "serving_pid": self.pid, "taskset": self.taskset,
            "server_affinity": self.server_affinity, "server_affinity_after": self.server_affinity_after,
            "rss_warm_kib": self.rss_warm_kib,
            "rss_after_kib": self.rss_after_kib, "denials_since_warm": self.denials_since_warm,
            "rss_by_round": self.rss_by_round,
            "soak": asdict(self.soak) if self.soak else None, "log_lines": self.log_lines,
            "log_problems": self.log_problems[:20], "log_problem_count": len(self.log_problems),
            "requests": {k: shown(r) if r else None for k, r in self.requests.items()},
        }  # fmt: skip


def shown(request: Request) -> dict[str, Any]:
    return {
        "path": request.path, "headers": [list(h) for h in request.shown_headers], "status": request.status,
        "first_message": request.first_message, "note": request.note,
    }  # fmt: skip


def probe(server: Server, request: Request) -> dict[str, Any]:
    """One handshake with the test suite's byte-exact client: what the answer looks like."""
    answer = asyncio.run(raw_handshake(server.host, server.port, request.path, request.headers, timeout=10, close_timeout=2))
    return {
        "status": answer.status, "reason": answer.reason, "headers": answer.header_names(),
        "body": answer.body[:200].decode("utf-8", "replace"), "closed_by_server": answer.closed_by_server,
    }  # fmt: skip


_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


class Runner:
    def __init__(self, options: Options, prov: Provision) -> None:
        self.options = options
        self.prov = prov
        self.cells: list[Cell] = []
        self.peer_runs: dict[str, PeerRun] = {}
        self.count_checks: list[dict[str, Any]] = []
        self.costs: list[dict[str, Any]] = []

    # --- load ---------------------------------------------------------------------------------

    def load(self, server: Server, request: Request, *, seconds: int, limit: int = 0) -> LoadResult:
        o = self.options
        if request.status == 101:
            return run_handshake_client(
                server.host, server.port, request,
                seconds=seconds, connections=o.connections, client_core=o.client_core, limit=limit,
            )  # fmt: skip
        return run_wrk(
            server.http_url("/"), [request],
            seconds=seconds, connections=o.connections, client_core=o.client_core, limit=limit,
        )  # fmt: skip

    # --- phases -------------------------------------------------------------------------------

    def run(self) -> None:
        o = self.options
        with contextlib.ExitStack() as stack:
            peers = [PEERS_BY_KEY[key] for key in o.peers]
            say(f"starting {', '.join(p.label for p in peers)}")
            servers = start_all([(p, self.prov.env_for(p)) for p in peers], o.server_core, stack)
            for peer, server in zip(peers, servers):
                pid = serving_pid(server)
                requests = {s: request_for(peer.family, s, self.prov.creds) for s in o.scenarios}
                run = PeerRun(peer, server, pid, requests, taskset_report(pid), thread_affinities(pid))
                self.peer_runs[peer.key] = run
                if o.server_core is not None and any(cores != [o.server_core] for cores in run.server_affinity.values()):
                    raise RuntimeError(f"{peer.label}: not every thread is pinned to core {o.server_core}: {run.server_affinity}")
            for run in self.peer_runs.values():
                self.warm_up(run)
            for round_ in range(o.rounds):
                if o.rounds > 1:
                    say(f"round {round_ + 1} of {o.rounds}")
                for scenario in o.scenarios:
                    for run in self.peer_runs.values():
                        request = run.requests[scenario]
                        if request is not None:
                            self.measure(run, scenario, request, round_)
                for run in self.peer_runs.values():
                    run.rss_by_round.append({"denials_since_warm": run.denials_since_warm, "rss_kib": rss_kib(run.pid)})
            for run in self.peer_runs.values():
                self.soak(run)
        for run in self.peer_runs.values():
            log = run.server.log()
            run.log_lines = len(log.splitlines())
            run.log_problems = problem_lines(log)
        self.measure_costs()
        self.check_counts()

    def warm_up(self, run: PeerRun) -> None:
        """``warmup`` answers per scenario: the denials in turn on one wrk, each accepted scenario apart."""
        o = self.options
        say(f"warming up {run.peer.label}")
        requests = [r for r in run.requests.values() if r is not None]
        denials = [r for r in requests if r.status != 101]
        if denials:
            run_wrk(
                run.server.http_url("/"), denials, seconds=max(10, o.duration),
                connections=o.connections, client_core=o.client_core, limit=o.warmup * len(denials),
            )  # fmt: skip
        for request in requests:
            if request.status == 101:
                self.load(run.server, request, seconds=max(10, o.duration), limit=o.warmup)
        run.rss_warm_kib = rss_kib(run.pid)

    def measure(self, run: PeerRun, scenario: str, request: Request, round_: int) -> None:
        o = self.options
        answer = probe(run.server, request)
        before = self.raw_counts(run)
        log_start = len(run.server.log())
        with CpuWindow(run.pid, o.server_core) as cpu:
            result = self.load(run.server, request, seconds=o.duration)
        after = self.raw_counts(run)
        log = run.server.log()[log_start:]
        cell = Cell(
            run.peer.key, scenario, shown(request), request.status, result,
            cpu.server_pct, cpu.others_on_core_pct, answer,
        )  # fmt: skip
        cell.round = round_
        cell.server_log_lines, cell.server_error_lines = len(log.splitlines()), len(problem_lines(log))
        if before is not None and after is not None:
            cell.server_counts = {s: after.get(s, 0) - before.get(s, 0) for s in set(after) | set(before)}
        cell.problems = self.validate(cell, request)
        if request.status != 101:
            run.denials_since_warm += result.requests
        self.cells.append(cell)
        lat = result.latency_ms
        say(
            f"  {scenario:17} {run.peer.label:28} {result.rate:8.0f}/s  p50 {lat.get('p50', 0):7.2f} ms"
            f"  p99 {lat.get('p99', 0):7.2f} ms  server CPU {cpu.server_pct:3.0f}%"
            + (f", others {cpu.others_on_core_pct:3.0f}%" if cpu.others_on_core_pct is not None else "")
            + (f", {cell.server_error_lines} error lines logged" if cell.server_error_lines else "")
            + (f"  PROBLEMS: {'; '.join(cell.problems)}" if cell.problems else "")
        )

    def summary_cells(self) -> list[Cell]:
        """One cell per peer and scenario: the round with the median rate (the lower middle one
        for an even count), carrying every round's rate."""
        groups: dict[tuple[str, str], list[Cell]] = {}
        for cell in self.cells:
            groups.setdefault((cell.peer, cell.scenario), []).append(cell)
        chosen = []
        for cells in groups.values():
            ordered = sorted(cells, key=lambda c: c.result.rate)
            median = ordered[(len(ordered) - 1) // 2]
            median.rates_by_round = [c.result.rate for c in sorted(cells, key=lambda c: c.round)]
            chosen.append(median)
        return chosen

    def validate(self, cell: Cell, request: Request) -> list[str]:
        """What says the harness (not the server's speed) went wrong in this cell."""
        result, problems = cell.result, []
        if cell.probe["status"] != request.status:
            problems.append(f"unexpected statuses: the probe got {cell.probe}")
        expected = cell.answered_as_expected
        if expected == 0:
            problems.append(f"no answer with the expected status {request.status}")
        wrong: dict[int | str, int] = {s: n for s, n in result.statuses.items() if s != request.status}
        if result.headerless and expected == result.ok(request.status):
            wrong["headerless"] = result.headerless
        if wrong:
            problems.append(f"unexpected statuses {wrong}")
        if result.tool == "wrk" and request.status >= 400 and result.errors["status"] != result.requests:
            problems.append(f"wrk counted {result.errors['status']} non-2xx/3xx of {result.requests} answers")
        if request.first_message and result.sample is not None and request.first_message not in result.sample:
            problems.append(f"first message {result.sample!r} lacks {request.first_message!r}")
        if request.first_message and result.requests and result.sample is None:
            problems.append("no first message")
        errors = {k: v for k, v in result.errors.items() if v and k != "status"}
        if errors.get("read", 0) <= result.headerless:  # each headerless answer ends at EOF: a "read error"
            errors.pop("read", None)
        if errors:
            problems.append(f"client errors {errors}")
        if self.options.client_core is not None and result.client_affinity != [self.options.client_core]:
            problems.append(f"load generator ran on cores {result.client_affinity}")
        if cell.server_counts is not None:
            diff = cell.server_counts.get(request.status, 0) - expected
            if not 0 <= diff <= self.options.connections:
                problems.append(f"server answered {cell.server_counts}, client counted {expected}")
        return problems

    def soak(self, run: PeerRun) -> None:
        """Denials (every denial scenario in turn) until ``soak_denials`` since the warm-up; then RSS."""
        denials = [r for r in run.requests.values() if r is not None and r.status != 101]
        remaining = self.options.soak_denials - run.denials_since_warm
        if denials and remaining > 0:
            say(f"soaking {run.peer.label}: {remaining} more denials")
            o = self.options
            run.soak = run_wrk(
                run.server.http_url("/"), denials,
                seconds=600, connections=o.connections, client_core=o.client_core, limit=remaining + o.connections,
            )  # fmt: skip
            run.denials_since_warm += run.soak.requests
        run.rss_after_kib = rss_kib(run.pid)
        run.server_affinity_after = thread_affinities(run.pid)

    def raw_counts(self, run: PeerRun) -> dict[int, int] | None:
        if run.peer.family != "raw":
            return None
        with urllib.request.urlopen(run.server.http_url("/__bench__/counts"), timeout=10) as answer:
            return {int(k): v for k, v in json.load(answer).items()}

    def measure_costs(self) -> None:
        """Queries and thread hops per handshake, in process: the demo on local memory, plain
        Channels, and the demo in the Redis profile when a Redis peer is in the run."""
        for key, needs_redis in COST_PEERS:
            if key not in self.options.peers:
                continue
            cases = cost_cases(key, self.options.scenarios, self.prov.creds, self.options.costs_repeat)
            if cases:
                say(f"counting queries and thread hops per handshake (in process, {PEERS_BY_KEY[key].label})")
                env = self.prov.env_for(PEERS_BY_KEY[key]) if needs_redis else self.prov.demo_env
                self.costs += run_inprocess(env, "costs", stdin=cases)

    def check_counts(self) -> None:
        """wsreject/uvicorn with its logger at INFO: the denials it logged (one line each, or the
        summary lines under a flood) against the answers wrk counted, per denial scenario."""
        peer = PEERS_BY_KEY["wsreject"]
        denial_scenarios = [s for s in self.options.scenarios if not SCENARIOS_BY_KEY[s].accepted]
        if not denial_scenarios or not self.options.count_check_seconds or "wsreject" not in self.options.peers:
            return
        say("count check: wsreject / uvicorn with WSREJECT_LOG_LEVEL=INFO")
        env = {**self.prov.env_for(peer), "WSREJECT_LOG_LEVEL": "INFO"}
        with serving(peer, env, self.options.server_core) as server:
            pid = serving_pid(server)
            for scenario in denial_scenarios:
                request = request_for(peer.family, scenario, self.prov.creds)
                assert request is not None
                start = len(server.log())
                with CpuWindow(pid, self.options.server_core) as cpu:
                    result = self.load(server, request, seconds=self.options.count_check_seconds)
                logged = self.wait_for_logged(server, start, result.requests)
                diff = logged.get(request.status, 0) - result.ok(request.status)
                check = {
                    "peer": "wsreject", "log_level": "INFO", "scenario": scenario, "status": request.status,
                    "wrk_counted": result.statuses, "server_logged": dict(logged), "rate": result.rate,
                    "latency_ms": result.latency_ms, "server_cpu_pct": cpu.server_pct,
                    "ok": 0 <= diff <= self.options.connections and set(logged) <= {request.status},
                }  # fmt: skip
                self.count_checks.append(check)
                say(
                    f"  {scenario:17} wrk counted {result.statuses}, the server logged {dict(logged)}"
                    f" ({result.rate:.0f}/s at INFO) {'ok' if check['ok'] else 'MISMATCH'}"
                )
        for cell in self.cells:
            if cell.server_counts is not None:
                self.count_checks.append({
                    "peer": cell.peer, "scenario": cell.scenario, "status": cell.expected_status,
                    "client_counted": cell.result.statuses, "server_counted": cell.server_counts,
                    "ok": not any("server answered" in p for p in cell.problems),
                })  # fmt: skip

    @staticmethod
    def wait_for_logged(server: Server, start: int, at_least: int, timeout: float = 10.0, settle: float = 1.5) -> Counter[int]:
        """Poll the log until it accounts for ``at_least`` denials and has not grown for ``settle``
        seconds, or ``timeout``. A flood's summary line comes up to a second after the last denial
        it counts (``wsreject.reporting``): settling for less lets it fall into the next scenario."""
        deadline = time.monotonic() + timeout
        previous: Counter[int] | None = None
        changed = time.monotonic()
        while True:
            logged = denials_in_log(server.log()[start:])
            now = time.monotonic()
            if logged != previous:
                previous, changed = logged, now
            if (sum(logged.values()) >= at_least and now - changed >= settle) or now >= deadline:
                return logged
            time.sleep(0.2)
