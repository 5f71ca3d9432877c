"""``python -m tests.support.stress`` (``./dev stress``): runs tests N times under load, reports
each failure with its run and test, ends with a count line, and leaves no busy loop behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

from tests.support.processes import REPO_ROOT

FLAKY = textwrap.dedent(
    """
    import os

    def test_steady():
        assert True

    def test_fails_on_the_second_run():
        assert os.environ["WSREJECT_STRESS_RUN"] != "2", "second run"
    """
)


def stress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.support.stress", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still in the table: only a zombie (exited, not yet reaped by anyone) is gone too.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_each_failure_is_reported_with_its_run_and_counted(tmp_path):
    module = tmp_path / "test_flaky_example.py"
    module.write_text(FLAKY)

    done = stress("--load", "1", "--load-seconds", "120", "--logs", str(tmp_path / "logs"), "3", str(module), "-q")

    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "run 1/3: passed: 2 passed" in out
    assert re.search(r"^run 2/3: FAILED: 1 passed, 1 failed", out, re.MULTILINE), out
    assert re.search(r"^run 2/3: FAILED \S*test_flaky_example.py::test_fails_on_the_second_run - AssertionError: second run", out, re.MULTILINE), out
    assert "run 3/3: passed: 2 passed" in out
    assert re.search(r"^stress: \S*::test_fails_on_the_second_run failed in 1 of 3 runs$", out, re.MULTILINE), out
    assert out.rstrip().splitlines()[-1].startswith("stress: 2 of 3 runs passed, 1 failed (1 test failures); logs in ")
    assert sorted(path.name for path in (tmp_path / "logs").glob("run-*.log")) == ["run-001.log", "run-002.log", "run-003.log"]
    # The busy loop ran, and it is gone once the command is.
    (pids,) = re.findall(r"load: 1 busy loops \(pids (\d+)\)", out)
    assert gone(int(pids))


def test_all_runs_passing_exits_zero_and_a_usage_error_stops_at_once(tmp_path):
    module = tmp_path / "test_steady_example.py"
    module.write_text("def test_steady():\n    assert True\n")
    done = stress("--load", "0", "2", str(module), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith("stress: 2 of 2 runs passed, 0 failed (0 test failures)")

    done = stress("--load", "0", "5", str(module), "--no-such-pytest-option")
    assert done.returncode == 1
    assert "run 2/5" not in done.stdout
    assert "stress: stopping: pytest ended with usage error" in done.stdout
    assert "stress: 0 of 1 runs passed, 1 failed (1 test failures); 4 of 5 not run" in done.stdout
