"""The run as numbers: ratios between peers of the same run, the table on stdout,
``results.json`` and ``results.md`` (the table for the README's performance section)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from .costs import THROTTLED
from .costs import label as cost_label
from .peers import PEERS_BY_KEY
from .scenarios import SCENARIOS_BY_KEY

DASH = "—"


def _cells(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["peer"], c["scenario"]): c for c in results["cells"]}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Every comparison the issue asks for, from cells of this run only.

    Each ratio is taken within a round (peers of one scenario are measured one after the
    other, seconds apart) and the median over the rounds is reported: machine load that
    changes between rounds then cancels out instead of favouring one peer."""
    every_cell = results.get("cells_by_round") or results["cells"]
    by_round: dict[tuple[str, str, int], dict[str, Any]] = {(c["peer"], c["scenario"], c["round"]): c for c in every_cell}
    rounds = sorted({c["round"] for c in every_cell})
    peers, scenarios = results["parameters"]["peers"], results["parameters"]["scenarios"]

    def value(peer: str, scenario: str, r: int, what: str) -> float | None:
        cell = by_round.get((peer, scenario, r))
        if cell is None:
            return None
        return cell["rate"] if what == "rate" else cell["result"]["latency_ms"].get(what)

    def ratio(a: tuple[str, str], b: tuple[str, str], what: str = "rate") -> float | None:
        found = [_ratio(value(*a, r, what), value(*b, r, what)) for r in rounds]
        values = sorted(v for v in found if v is not None)
        if not values:
            return None
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

    out: dict[str, Any] = {
        "method": "median over rounds of the ratio within each round",
        "wsreject_uvicorn_vs_fastapi_uvicorn": {s: ratio(("wsreject", s), ("fastapi", s)) for s in scenarios},
        "daphne_wsreject_vs_stock_daphne": {s: ratio(("daphne-wsreject", s), ("daphne-stock", s)) for s in scenarios},
        "vs_no_credential_same_server": {
            p: {s: ratio((p, s), (p, "no_credential")) for s in ("token_denied", "forged_token")} for p in peers
        },
        "accepted_wsreject_vs_plain_channels": {
            s: {what: ratio(("wsreject", s), ("channels", s), what) for what in ("rate", "p50", "p99")}
            for s in ("session_accepted", "echo_accepted")
        },
        "vs_raw_limit": {p: {s: ratio((p, s), ("raw", s)) for s in scenarios} for p in peers},
        # The production profile (Redis) against the local-memory one, and how it scales.
        "redis_vs_local_memory_uvicorn": {s: ratio(("wsreject-redis", s), ("wsreject", s)) for s in scenarios},
        "redis_vs_local_memory_daphne": {s: ratio(("daphne-wsreject-redis", s), ("daphne-wsreject", s)) for s in scenarios},
        "redis_uvicorn_vs_fastapi": {s: ratio(("wsreject-redis", s), ("fastapi", s)) for s in scenarios},
        "redis_2_workers_vs_1": {s: ratio(("wsreject-redis-2w", s), ("wsreject-redis", s)) for s in scenarios},
        "redis_daphne_2_processes_vs_1": {s: ratio(("daphne-wsreject-redis-2p", s), ("daphne-wsreject-redis", s)) for s in scenarios},
    }
    return out


def fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else DASH


def fmt_rate(value: float | None) -> str:
    return f"{value:,.0f}".replace(",", " ") if value is not None else DASH


def fmt_ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _status_note(cell: dict[str, Any] | None, scenario: str) -> str:
    """A status unlike the scenario's (stock Daphne's and plain Channels' 403) is shown."""
    if cell is None:
        return ""
    wanted = {"no_credential": 401, "token_denied": 403, "forged_token": 401, "unknown_path": 404}.get(scenario, 101)
    return f" ({cell['expected_status']})" if cell["expected_status"] != wanted else ""


def tables(results: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Every table of the report as (header, rows) of strings."""
    cells = _cells(results)
    peers, scenarios = results["parameters"]["peers"], results["parameters"]["scenarios"]
    labels = [PEERS_BY_KEY[p].label for p in peers]
    r = results["ratios"]
    out: dict[str, tuple[list[str], list[list[str]]]] = {}

    rows = []
    for s in scenarios:
        row = [SCENARIOS_BY_KEY[s].label]
        for p in peers:
            cell = cells.get((p, s))
            row.append(fmt_rate(cell["rate"]) + _status_note(cell, s) if cell else DASH)
        rows.append(row)
    out["rate"] = (["handshakes/s", *labels], rows)

    rows = []
    for s in scenarios:
        row = [SCENARIOS_BY_KEY[s].label]
        for p in peers:
            cell = cells.get((p, s))
            lat = cell["result"]["latency_ms"] if cell else {}
            row.append(f"{fmt_ms(lat.get('p50'))} / {fmt_ms(lat.get('p99'))}" if cell else DASH)
        rows.append(row)
    out["latency"] = (["latency p50 / p99 (ms)", *labels], rows)

    if results["parameters"].get("rounds", 1) > 1:
        rows = []
        for s in scenarios:
            row = [SCENARIOS_BY_KEY[s].label]
            for p in peers:
                cell = cells.get((p, s))
                rates = cell["rates_by_round"] if cell else []
                row.append(f"{fmt_rate(min(rates))}–{fmt_rate(max(rates))}" if rates else DASH)
            rows.append(row)
        out["spread"] = ([f"handshakes/s, lowest–highest of {results['parameters']['rounds']} rounds", *labels], rows)

    rows = []
    for s in scenarios:
        rows.append([
            SCENARIOS_BY_KEY[s].label,
            fmt_ratio(r["wsreject_uvicorn_vs_fastapi_uvicorn"][s]),
            fmt_ratio(r["daphne_wsreject_vs_stock_daphne"][s]),
            *(fmt_ratio(r["vs_raw_limit"][p][s]) for p in peers if p != "raw"),
        ])  # fmt: skip
    out["ratios"] = _without_empty_columns(
        ["rate ratio", "wsreject/uvicorn ÷ FastAPI/uvicorn", "Daphne+wsreject ÷ stock Daphne",
         *(f"{PEERS_BY_KEY[p].label} ÷ raw" for p in peers if p != "raw")],
        rows,
    )  # fmt: skip

    rows = []
    for p in peers:
        v = r["vs_no_credential_same_server"][p]
        rows.append([PEERS_BY_KEY[p].label, fmt_ratio(v["token_denied"]), fmt_ratio(v["forged_token"])])
    out["same_server"] = (["same server, ÷ no credential", "valid token denied", "forged token"], rows)

    rows = []
    for s in ("session_accepted", "echo_accepted"):
        if s not in scenarios:
            continue
        v = r["accepted_wsreject_vs_plain_channels"][s]
        rows.append([SCENARIOS_BY_KEY[s].label, fmt_ratio(v["rate"]), fmt_ratio(v["p50"]), fmt_ratio(v["p99"])])
    out["accepted"] = (["wsreject/uvicorn ÷ plain Channels/uvicorn", "rate", "p50 latency", "p99 latency"], rows)

    rows = []
    costs = {(c["peer"], c["scenario"]): c for c in results.get("costs", [])}
    for s in [*scenarios, THROTTLED.key]:
        row = [cost_label(s)]
        for p in ("wsreject", "channels", "wsreject-redis"):
            c = costs.get((p, s))
            row.append(f"{_one(c['queries'])} / {_one(c['hops'])}" if c else DASH)
        rows.append(row)
    out["costs"] = _without_empty_columns(
        ["per handshake, warm: queries / thread hops", "wsreject demo", "plain Channels", "wsreject demo, Redis"], rows
    )

    rows = [
        [
            SCENARIOS_BY_KEY[s].label,
            *(fmt_ratio(r.get(key, {}).get(s)) for key in ("redis_vs_local_memory_uvicorn", "redis_vs_local_memory_daphne", "redis_uvicorn_vs_fastapi")),
        ]
        for s in scenarios
    ]
    out["production"] = _without_empty_columns(
        ["rate ratio", "Redis ÷ local memory (uvicorn)", "Redis ÷ local memory (Daphne+wsreject)", "Redis/uvicorn ÷ FastAPI"],
        rows,
    )
    if len(out["production"][0]) == 1:
        del out["production"]

    rows = [
        [SCENARIOS_BY_KEY[s].label, *(fmt_ratio(r.get(key, {}).get(s)) for key in ("redis_2_workers_vs_1", "redis_daphne_2_processes_vs_1"))]
        for s in scenarios
        if not SCENARIOS_BY_KEY[s].accepted
    ]
    out["scaling"] = _without_empty_columns(
        ["scaling: rate with 2 workers ÷ 1 worker (Redis)", "uvicorn --workers 2 ÷ 1", "Daphne+wsreject, 2 processes on one socket ÷ 1"],
        rows,
    )
    if len(out["scaling"][0]) == 1:
        del out["scaling"]

    rows = []
    for p in peers:
        run = results["peers"][p]
        warm, after = run["rss_warm_kib"], run["rss_after_kib"]
        by_round = " / ".join(f"{r['rss_kib'] / 1024:.1f}" for r in run.get("rss_by_round", []))
        rows.append([
            PEERS_BY_KEY[p].label, f"{warm / 1024:.1f}", by_round or DASH, f"{after / 1024:.1f}",
            f"{(after - warm) / 1024:+.1f}", fmt_rate(run["denials_since_warm"]),
        ])  # fmt: skip
    out["memory"] = (
        ["server RSS (MiB)", "after warm-up", "after each round", "at the end", "growth", "denials since warm-up"],
        rows,
    )
    return out


def _without_empty_columns(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Drop the columns of peers that were not in the run (nothing but —)."""
    keep = [i for i in range(len(header)) if i == 0 or any(row[i] != DASH for row in rows)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def _one(values: list[int]) -> str:
    """One number when every measured handshake cost the same, else all of them."""
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


TITLES = {
    "rate": "Handshakes per second",
    "latency": "Latency",
    "spread": "Spread over rounds (the tables above show each cell's median round)",
    "ratios": "Ratios (same run; per round, median over the rounds)",
    "same_server": "Denials with a credential vs without, same server",
    "accepted": "Accepted handshakes vs plain Channels",
    "production": "The production profile (Redis) vs local memory",
    "scaling": "Scaling: 2 workers vs 1, production profile",
    "costs": "Cost per handshake (in process, warm caches)",
    "memory": "Server memory",
}


def summary_line(results: dict[str, Any]) -> str:
    p, m = results["parameters"], results["machine"]
    pin = f"server on core {p['server_core']}, load on core {p['client_core']}" if p["server_core"] is not None else "no pinning"
    return (
        f"{results['label']}: {m['cpu_model']}, {m['cores']} cores, {pin}; "
        f"{str(p.get('rounds', 1)) + ' rounds × ' if p.get('rounds', 1) > 1 else ''}{p['duration_s']} s per cell, "
        f"{p['connections']} connections, wsreject log level {p['log_level']}, "
        f"cache {'Redis' if p['redis_url'] else 'local memory'}; load average {m['loadavg_before'][0]:.2f} before, "
        f"{m['loadavg_after'][0]:.2f} after"
        + (
            f"; other processes took {m['others_on_server_core_pct_mean']:.0f}% of the server's core on average"
            if m.get("others_on_server_core_pct_mean") is not None
            else ""
        )
    )


def print_report(results: dict[str, Any]) -> None:
    print()
    print(summary_line(results))
    for key, (header, rows) in tables(results).items():
        print(f"\n{TITLES[key]}")
        print(text_table(header, rows))
    every_cell = results.get("cells_by_round") or results["cells"]
    problems = [(c["peer"], f"{c['scenario']} (round {c['round'] + 1})", c["problems"]) for c in every_cell if c["problems"]]
    checks = results.get("count_checks", [])
    print(f"\ncount checks: {sum(1 for c in checks if c['ok'])} of {len(checks)} agree")
    for peer, scenario, found in problems:
        print(f"PROBLEM {peer} / {scenario}: {'; '.join(found)}")
    core = results["parameters"]["server_core"]
    if core is not None:
        pinned = []
        for peer, run in results["peers"].items():
            before, after = run["server_affinity"], run["server_affinity_after"]
            ok_before = sum(1 for cores in before.values() if cores == [core])
            ok_after = sum(1 for cores in after.values() if cores == [core])
            pinned.append(f"{peer} {ok_before}/{len(before)} → {ok_after}/{len(after)}")
        print(f"server threads on core {core} (start → end): " + ", ".join(pinned))
        cores = {tuple(c["result"]["client_affinity"]) for c in results["cells"]}
        print(f"load generators ran on cores {sorted(cores)}")
    for peer, run in results["peers"].items():
        if run["log_problem_count"]:
            print(f"note: the {peer} server logged {run['log_problem_count']} error lines, e.g. {run['log_problems'][0]!r}")


def markdown(results: dict[str, Any]) -> str:
    p = results["parameters"]
    parts = [
        "# wsreject bench results",
        "",
        f"Generated by `{command(results['argv'])}` on {results['started']}.",
        "",
        summary_line(results) + ".",
        "",
        ("Denials are measured with wrk (latency from writing the request to the end of the answer), "
        "accepted handshakes with the bench's raw-socket client (latency from connect() to the 101, "
        "or to the first message when the endpoint sends one). Ratios compare peers measured in the same run."),
    ]
    notes = _notes(results)
    for key, (header, rows) in tables(results).items():
        parts += ["", f"## {TITLES[key]}", "", md_table(header, rows)]
    parts += ["", "## Notes", "", *(f"- {n}" for n in notes), ""]
    if p.get("smoke"):
        parts.insert(2, "**Smoke run: too short to quote.**\n")
    return "\n".join(parts)


def command(argv: list[str]) -> str:
    """The command line of the run, without its ``--label`` (shown apart)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--label":
            skip = True
        elif not arg.startswith("--label="):
            kept.append(arg)
    return shlex.join(["python", "-m", "tests.bench", *kept])


def _notes(results: dict[str, Any]) -> list[str]:
    p = results["parameters"]
    notes = [
        ("A status in parentheses is what that peer can say instead of the scenario's: stock Daphne turns every "
        "wsreject denial into its own bare 403 (no denial extension), stock Channels refuses with `close()` "
        "before accept, which the server answers with a bare 403. Stock Channels cannot express the unknown "
        "path (URLRouter raises: a 500 and a traceback), hence —."),
        ("The FastAPI reference has no sessions: its accepted room handshake uses alice's bearer token. Plain "
        "Channels uses sessions: bob's session cookie is its 'valid credential denied', a random session key its "
        "'forged credential'."),
        (f"Servers: uvicorn `{' '.join(p['uvicorn_flags'])}` (loop: uvicorn's default), Daphne `{' '.join(p['daphne_flags'])}`. "
        f"The demo logs every denial at INFO on the `wsreject` logger unless `WSREJECT_LOG_LEVEL` says otherwise; "
        f"this run: `{p['log_level']}`."),
        ("The raw ASGI app yields once after a denial; without that, uvicorn (websockets-sansio) logs `ASGI callable "
        "returned without completing handshake.` at ERROR for every denial — which the FastAPI reference pays "
        "(see log lines per peer in results.json)."),
        (f"Memory: VmRSS of the serving process after the warm-up, and after the measured cells plus enough "
        f"denials (every denial scenario in turn) to reach {fmt_rate(p['soak_denials'])} since the warm-up."),
    ]
    scaling = [k for k in ("wsreject-redis-2w", "daphne-wsreject-redis-2p") if k in p["peers"]]
    if scaling:
        notes.append(
            (f"2 workers: every process of a peer is pinned to the server core (core {p['server_core']}), as for every "
            "other peer, so two workers share one core: the scaling ratio is what a second process costs or gains "
            "on one core (≈ 1 at best), not how the rate grows with cores. Scaling with cores needs a core per "
            "worker plus one for the load generator; on a 2-core machine an unpinned run (`--no-pin`) only moves "
            "the bottleneck to the load generator sharing those cores. Server CPU and memory of a 2-worker peer "
            "are one worker's.")
            if p["server_core"] is not None
            else ("2 workers: this run is not pinned; the workers, the other peers and the load generator share "
            "every core, so the scaling ratio is bounded by the cores left to the servers. Server CPU and memory "
            "of a 2-worker peer are one worker's.")
        )
    if any(c["scenario"] == THROTTLED.key for c in results.get("costs", [])):
        notes.append(
            f"{THROTTLED.label}: the demo's `/ws/limited/` (`Throttle(\"3/60s\")`), measured in process only (under "
            "load its budget refills every minute and the handshakes that then open are WebSockets wrk cannot complete). "
            "On Redis the throttle's script is awaited on the event loop with redis-py's asyncio client: no thread hop."
        )
    logged = []
    for cell in results.get("cells_by_round") or results["cells"]:
        answers = cell["result"]["requests"]
        if answers and cell["server_error_lines"] >= answers / 2:
            logged.append(f"{PEERS_BY_KEY[cell['peer']].label}: {SCENARIOS_BY_KEY[cell['scenario']].label}")
    if logged:
        notes.append(
            "Servers that logged an error line for (about) every answer: "
            + "; ".join(sorted(set(logged)))
            + " (uvicorn's `ASGI callable returned without completing handshake.` when the app returns right after its denial)."
        )
    for check in results.get("count_checks", []):
        if check.get("log_level") == "INFO":
            notes.append(
                f"Count check, wsreject/uvicorn at INFO, {SCENARIOS_BY_KEY[check['scenario']].label}: wrk counted "
                f"{sum(check['wrk_counted'].values())}, the server logged {sum(check['server_logged'].values())} "
                f"({check['rate']:.0f}/s with INFO logging, on a fresh server after the matrix) — "
                f"{'agree' if check['ok'] else 'MISMATCH'}."
            )
    return notes


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
README_TABLES = ("rate", "ratios", "same_server", "accepted", "costs", "memory")


def readme_section(results: dict[str, Any], chart: str) -> str:
    """The README's performance section: the machine, the main tables, the chart."""
    parts = [
        README_START,
        f"_Generated by `./dev bench` ({command(results['argv'])}) on {results['started']}; "
        f"{summary_line(results)}. Full results: [docs/bench/results.md](docs/bench/results.md)._",
    ]
    every = tables(results)
    for key in README_TABLES:
        if key in every:
            header, rows = every[key]
            parts += ["", f"**{TITLES[key]}**", "", md_table(header, rows)]
    parts += ["", f"![handshakes per second per scenario and peer]({chart})", README_END]
    return "\n".join(parts)


def update_readme(readme: Path, section: str) -> bool:
    """Replace the section between the bench markers of ``readme``; False when it has none."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[:start] + section + text[end + len(README_END) :])
    return True


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")
    md_path.write_text(markdown(results))
    return [json_path, md_path]
