"""What is read off the machine: memory, CPU time, core affinity, percentiles, log counts."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from typing import Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def core_busy_seconds(core: int) -> float:
    """Non-idle time of one core since boot (``/proc/stat``), whoever used it."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]  # idle + iowait
                return (sum(values[:8]) - idle) / CLOCK_TICKS
    raise RuntimeError(f"no cpu{core} in /proc/stat")


@dataclass
class CpuWindow:
    """CPU use of the server and of its core over one measured cell."""

    pid: int
    core: int | None
    _start: float = 0.0
    _proc0: float = 0.0
    _core0: float = 0.0
    server_pct: float = 0.0
    others_on_core_pct: float | None = None

    def __enter__(self) -> Self:
        self._start = time.monotonic()
        self._proc0 = process_cpu_seconds(self.pid)
        self._core0 = core_busy_seconds(self.core) if self.core is not None else 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        self.server_pct = 100 * (process_cpu_seconds(self.pid) - self._proc0) / elapsed
        if self.core is not None:
            busy = 100 * (core_busy_seconds(self.core) - self._core0) / elapsed
            # What else ran on the server's core meanwhile (other processes, interrupts).
            self.others_on_core_pct = max(0.0, busy - self.server_pct)
        else:
            self.others_on_core_pct = None


def affinity(pid: int) -> list[int]:
    return sorted(os.sched_getaffinity(pid))


def taskset_report(pid: int) -> str:
    """What ``taskset -p PID`` says (recorded as the proof of pinning)."""
    result = subprocess.run(["taskset", "-cp", str(pid)], check=False, capture_output=True, text=True, timeout=10)
    return (result.stdout or result.stderr).strip()


def wait_exec(pid: int, name: str, timeout: float = 5.0) -> bool:
    """Poll until ``pid`` runs ``name`` (``taskset`` has set the affinity and exec'd it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == name:
                    return True
        except OSError:
            return False
        time.sleep(0.002)
    return False


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


_DENIED_LINE = re.compile(r"WebSocket denied: path=\S* status=(\d+) ")
_SUMMARY_LINE = re.compile(r"WebSocket denied: (\d+) more denials not logged one by one \(([^)]*)\)")


def denials_in_log(log: str) -> Counter[int]:
    """Denials the ``wsreject`` logger reported at INFO: one line each, plus the summary
    lines it writes instead under a flood (``N more denials ... (401: n, 403: m)``)."""
    counts: Counter[int] = Counter()
    for line in log.splitlines():
        if match := _DENIED_LINE.search(line):
            counts[int(match.group(1))] += 1
        elif match := _SUMMARY_LINE.search(line):
            for part in match.group(2).split(","):
                status, _, count = part.partition(":")
                counts[int(status)] += int(count)
    return counts


def problem_lines(log: str) -> list[str]:
    """Lines of a server log that say something went wrong (tracebacks, errors)."""
    markers = ("Traceback", "ERROR", "Error", "CRITICAL", "Exception")
    return [line for line in log.splitlines() if any(m in line for m in markers)]
