"""Decisions per second through nginx -> forward auth -> the app, against the same app directly.

``python -m tests.bench --edge`` (the smoke run too, briefly, when nginx is installed): after
the main matrix, one wsreject peer (the first of ``--peers`` serving the demo) is started
again with nginx in front, configured as ``manage.py wsreject_edge_config nginx`` prints it
with the app as its own backend — so an admitted handshake is decided at the edge and taken
on the vouch at the app. For a credential-less ``401``, a valid token's ``403`` and an
admitted session handshake (``101`` and its first message), each round measures the app
directly and through nginx back to back, with wrk (denials) or the bench's handshake client
(101); the report gives both rates, the latencies and their ratio. nginx runs pinned to the
server core beside the app, so the ratio includes nginx's own CPU.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.edge.proxies import proxy_missing, running_edge
from tests.support.servers import Server

from .load import LoadResult, run_wrk
from .peers import PEERS_BY_KEY, pin_group, serving
from .provision import Provision
from .report import fmt_ms, fmt_rate, fmt_ratio, md_table, text_table
from .runner import Options, Runner, probe, say
from .scenarios import SCENARIOS_BY_KEY, Request, request_for

__all__ = ["EDGE_SCENARIOS", "append_section", "edge_peer", "missing", "print_section", "run"]

EDGE_SCENARIOS = ("no_credential", "token_denied", "session_accepted")
TARGETS = ("direct", "nginx")


def missing() -> str | None:
    """Why the edge cannot be measured here (nginx absent), or None."""
    return proxy_missing("nginx")


def edge_peer(peers: list[str]) -> str | None:
    """The peer measured behind the edge: the first chosen one serving the demo with wsreject."""
    return next((key for key in peers if PEERS_BY_KEY[key].family == "wsreject"), None)


@contextlib.contextmanager
def _stack(peer_key: str, prov: Provision, server_core: int | None) -> Iterator[tuple[Server, Server]]:
    peer = PEERS_BY_KEY[peer_key]
    env = prov.env_for(peer)
    with serving(peer, env, server_core) as app, running_edge("nginx", env, app=app.address) as edge:
        if server_core is not None:
            pin_group(edge.process.pid, server_core)
        yield app, edge


def _problems(request: Request, result: LoadResult, answer: dict[str, Any]) -> list[str]:
    problems = []
    if answer["status"] != request.status:
        problems.append(f"the probe got {answer['status']}, expected {request.status}")
    wrong = {status: n for status, n in result.statuses.items() if status != request.status}
    if wrong or result.ok(request.status) == 0:
        problems.append(f"statuses {result.statuses} (expected only {request.status})")
    if request.first_message and (result.sample is None or request.first_message not in result.sample):
        problems.append(f"first message {result.sample!r} lacks {request.first_message!r}")
    errors = {k: v for k, v in result.errors.items() if v and k not in ("status", "read")}
    if errors:
        problems.append(f"client errors {errors}")
    return problems


def run(prov: Provision, options: Options, peer_key: str) -> dict[str, Any]:
    """Measure ``peer_key`` directly and behind nginx; the results for ``results.json["edge"]``."""
    runner = Runner(options, prov)
    requests = {key: request_for("wsreject", key, prov.creds) for key in EDGE_SCENARIOS}
    cells: list[dict[str, Any]] = []
    say(f"edge: {PEERS_BY_KEY[peer_key].label}, directly and behind nginx -> forward auth")
    with _stack(peer_key, prov, options.server_core) as (app, edge):
        servers = {"direct": app, "nginx": edge}
        for server in servers.values():  # warm both: the app's caches, nginx's upstream
            denials = [r for r in requests.values() if r is not None and r.status != 101]
            run_wrk(
                server.http_url("/"), denials, seconds=max(10, options.duration),
                connections=options.connections, client_core=options.client_core, limit=options.warmup * len(denials),
            )  # fmt: skip
            for request in requests.values():
                if request is not None and request.status == 101:
                    runner.load(server, request, seconds=max(10, options.duration), limit=options.warmup)
        for round_ in range(options.rounds):
            for scenario, request in requests.items():
                if request is None:
                    continue
                for target, server in servers.items():
                    answer = probe(server, request)
                    result = runner.load(server, request, seconds=options.duration)
                    problems = _problems(request, result, answer)
                    cells.append({
                        "scenario": scenario, "target": target, "round": round_, "status": request.status,
                        "rate": result.rate, "latency_ms": result.latency_ms, "statuses": result.statuses,
                        "tool": result.tool, "problems": problems,
                    })  # fmt: skip
                    say(
                        f"  edge {scenario:17} {target:6} {result.rate:8.0f}/s  p50 {result.latency_ms.get('p50', 0):7.2f} ms"
                        f"  p99 {result.latency_ms.get('p99', 0):7.2f} ms"
                        + (f"  PROBLEMS: {'; '.join(problems)}" if problems else "")
                    )
    return {"peer": peer_key, "peer_label": PEERS_BY_KEY[peer_key].label, "rows": _rows(cells), "cells": cells}


def _median_cell(cells: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(cells, key=lambda c: c["rate"])
    return ordered[(len(ordered) - 1) // 2]


def _rows(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for scenario in EDGE_SCENARIOS:
        found = {t: [c for c in cells if c["scenario"] == scenario and c["target"] == t] for t in TARGETS}
        if not all(found.values()):
            continue
        direct, edged = _median_cell(found["direct"]), _median_cell(found["nginx"])
        rows.append({
            "scenario": scenario, "status": direct["status"],
            "direct_rate": direct["rate"], "nginx_rate": edged["rate"],
            "ratio": edged["rate"] / direct["rate"] if direct["rate"] else None,
            "direct_p50_ms": direct["latency_ms"].get("p50"), "nginx_p50_ms": edged["latency_ms"].get("p50"),
            "direct_p99_ms": direct["latency_ms"].get("p99"), "nginx_p99_ms": edged["latency_ms"].get("p99"),
            "rounds": {t: [round(c["rate"], 1) for c in found[t]] for t in TARGETS},
            "problems": sorted({p for t in TARGETS for c in found[t] for p in c["problems"]}),
        })  # fmt: skip
    return rows


HEADER = [
    "scenario",
    "direct /s",
    "nginx → forward auth /s",
    "nginx / direct",
    "p50 direct",
    "p50 nginx",
    "p99 direct",
    "p99 nginx",
]


def _table(edge: dict[str, Any]) -> list[list[str]]:
    return [
        [
            SCENARIOS_BY_KEY[row["scenario"]].label,
            fmt_rate(row["direct_rate"]),
            fmt_rate(row["nginx_rate"]),
            fmt_ratio(row["ratio"]),
            fmt_ms(row["direct_p50_ms"]),
            fmt_ms(row["nginx_p50_ms"]),
            fmt_ms(row["direct_p99_ms"]),
            fmt_ms(row["nginx_p99_ms"]),
        ]  # fmt: skip
        for row in edge["rows"]
    ]


def _spread(edge: dict[str, Any]) -> str:
    rates = [r for row in edge["rows"] for t in TARGETS for r in [row["rounds"][t]] if len(r) > 1]
    if not rates:
        return ""
    worst = max((max(r) - min(r)) / statistics.median(r) for r in rates if statistics.median(r))
    return f" The widest spread between rounds of one cell: {worst:.0%}."


def print_section(edge: dict[str, Any]) -> None:
    print(f"\nThe edge: {edge['peer_label']} directly, and behind nginx -> forward auth (the app as its own backend)")
    print(text_table(HEADER, _table(edge)))
    for row in edge["rows"]:
        for problem in row["problems"]:
            print(f"PROBLEM edge / {row['scenario']}: {problem}")


def append_section(results_md: Path, edge: dict[str, Any]) -> None:
    """Add the edge's section to ``results.md``."""
    text = results_md.read_text().rstrip("\n")
    section = [
        "",
        "## The edge: nginx → forward auth → the app",
        "",
        f"{edge['peer_label']}, directly and behind nginx configured as `manage.py wsreject_edge_config nginx` "
        "prints it, with the app as its own backend (an admitted handshake is decided at the edge, then taken "
        "on the vouch). Rounds alternate direct and nginx; each cell is its median round. nginx shares the "
        "server core with the app, so the ratio includes nginx's own CPU." + _spread(edge),
        "",
        md_table(HEADER, _table(edge)),
    ]
    problems = [f"- {row['scenario']}: {p}" for row in edge["rows"] for p in row["problems"]]
    if problems:
        section += ["", "Problems (wrong answers, not slowness):", "", *problems]
    results_md.write_text(text + "\n" + "\n".join(section) + "\n")
