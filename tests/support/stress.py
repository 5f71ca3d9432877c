"""Prove a test stable: run it N times while every core is busy, and say each time it failed.

    python -m tests.support.stress [--load K] [--load-seconds S] N PYTEST_ARGS...
    ./dev stress 20 tests/browser -q

CI runs the whole suite on a busy machine; a test that waits on timing may pass on a quiet one and
fail there. This runs ``pytest PYTEST_ARGS`` N times in a row, one fresh process per run (the run's
number is in ``WSREJECT_STRESS_RUN``), while K busy loops (default: one per core) spin beside it.
Each busy loop ends by itself after S seconds, or as soon as this command is gone, whichever comes
first; the command stops them when the runs are over. Every failed or erroring test is reported
with its run, then a count per test and one final line; every run's full output is kept in a
directory named on that line. The exit status is 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# One busy loop: checks its deadline and its parent every ~100 000 iterations (a few ms), so it
# never outlives its bound nor the command that started it, even one killed with SIGKILL.
BUSY_LOOP = """
import os, sys, time
end, parent = time.monotonic() + float(sys.argv[1]), int(sys.argv[2])
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(100_000):
        pass
"""

# pytest's short summary lines ("-rfE"): "FAILED tests/x.py::test_y[a] - AssertionError: ..."
SUMMARY_LINE = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", re.MULTILINE)
# Exit statuses after which more runs cannot tell anything: interrupted, internal error, usage error.
HOPELESS = {2: "interrupted", 3: "internal error", 4: "usage error"}


@dataclass
class Run:
    number: int
    status: int
    seconds: float
    counts: dict[str, int]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (node id, first line of the reason)

    @property
    def passed(self) -> bool:
        return self.status == 0 and self.counts.get("passed", 0) > 0 and not self.failures


class Load:
    """K busy loops at normal priority, each ending by itself after ``seconds``."""

    def __init__(self, processes: int, seconds: float) -> None:
        self.processes, self.seconds = processes, seconds
        self.loops: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Load:
        for _ in range(self.processes):
            self.loops.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(self.seconds), str(os.getpid())]))
        return self

    def running(self) -> int:
        return sum(loop.poll() is None for loop in self.loops)

    def __exit__(self, *exc: object) -> None:
        for loop in self.loops:
            if loop.poll() is None:
                loop.terminate()
        for loop in self.loops:
            try:
                loop.wait(5)
            except subprocess.TimeoutExpired:
                loop.kill()
                loop.wait()


def junit_counts(path: Path) -> dict[str, int]:
    """passed / failed / errors / skipped of one run, from its JUnit XML ({} when there is none)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {name: sum(int(suite.get(name, 0)) for suite in suites) for name in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return {"passed": passed, "failed": total["failures"], "errors": total["errors"], "skipped": total["skipped"]}


def run_once(number: int, pytest_args: list[str], logs: Path) -> Run:
    log, junit = logs / f"run-{number:03d}.log", logs / f"run-{number:03d}.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", f"--junitxml={junit}", *pytest_args]
    # Wide "terminal": pytest would cut the reason off its short summary lines at 80 columns.
    env = {**os.environ, "WSREJECT_STRESS_RUN": str(number), "COLUMNS": "500"}
    started = time.monotonic()
    with log.open("wb") as out:
        status = subprocess.call(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    output = log.read_text(errors="replace")
    failures = [(node, (reason or "").strip()[:200]) for _kind, node, reason in SUMMARY_LINE.findall(output)]
    if status != 0 and not failures:
        failures = [(f"<pytest exit status {status}: {stopped_by(status) or 'see the log'}>", str(log))]
    return Run(number, status, time.monotonic() - started, junit_counts(junit), failures)


def stopped_by(status: int) -> str | None:
    """Why pytest's exit status ends the stress run (None: more runs can still tell something)."""
    if status < 0:
        return f"killed by signal {-status}"
    return HOPELESS.get(status)


def describe(counts: dict[str, int]) -> str:
    shown = [f"{counts[name]} {name}" for name in ("passed", "failed", "errors", "skipped") if counts.get(name)]
    return ", ".join(shown) or "no test ran"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy loops beside the tests (default: one per core)")
    parser.add_argument("--load-seconds", type=float, default=4 * 3600, help="each busy loop ends by itself after this (default 4 h)")
    parser.add_argument("--logs", type=Path, help="where each run's output goes (default: a new temporary directory)")
    parser.add_argument("runs", type=int, help="how many times to run the tests")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="what to run: pytest's own arguments")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.load < 0 or args.load_seconds <= 0:
        parser.error("runs must be at least 1, --load at least 0, --load-seconds above 0")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="wsreject-stress-"))
    logs.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, flush=True)

    results: list[Run] = []
    with Load(args.load, args.load_seconds) as load:
        pids = " ".join(str(loop.pid) for loop in load.loops)
        say(f"stress: {args.runs} runs of pytest {' '.join(args.pytest_args)}")
        say(f"stress: load: {args.load} busy loops (pids {pids or '-'}) for at most {args.load_seconds:g} s; logs in {logs}")
        try:
            for number in range(1, args.runs + 1):
                if load.running() < args.load:
                    say(f"stress: warning: only {load.running()} of {args.load} busy loops still run (--load-seconds)")
                run = run_once(number, args.pytest_args, logs)
                results.append(run)
                verdict = "passed" if run.passed else "FAILED"
                say(f"run {number}/{args.runs}: {verdict}: {describe(run.counts)} in {run.seconds:.0f} s; load average {os.getloadavg()[0]:.2f}")
                for node, reason in run.failures:
                    say(f"run {number}/{args.runs}: FAILED {node}" + (f" - {reason}" if reason else ""))
                if stopped_by(run.status):
                    say(f"stress: stopping: pytest ended with {stopped_by(run.status)} (see {logs / f'run-{number:03d}.log'})")
                    break
        except KeyboardInterrupt:
            say(f"stress: interrupted during run {len(results) + 1}; counting the {len(results)} runs that ended")

    per_test = Counter(node for run in results for node, _reason in run.failures)
    for node, times in per_test.most_common():
        say(f"stress: {node} failed in {times} of {len(results)} runs")
    passed = sum(run.passed for run in results)
    not_run = f"; {args.runs - len(results)} of {args.runs} not run" if len(results) < args.runs else ""
    say(
        f"stress: {passed} of {len(results)} runs passed, {len(results) - passed} failed "
        f"({sum(per_test.values())} test failures){not_run}; logs in {logs}"
    )
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
