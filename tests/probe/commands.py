"""Running ``wsreject_probe``: in this process (fast, argparse included) or as ``manage.py`` does."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

from tests.support.servers import REPO_ROOT
from wsreject.management.commands.wsreject_probe import Command


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def run_probe(*args: str) -> Run:
    """``manage.py wsreject_probe ARGS`` in process: the command's own ``run_from_argv``."""
    out, err = io.StringIO(), io.StringIO()
    command = Command(stdout=out, stderr=err)
    code = 0
    with contextlib.redirect_stderr(err):  # argparse writes usage errors to sys.stderr
        try:
            command.run_from_argv(["manage.py", "wsreject_probe", *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def run_probe_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    """``python manage.py wsreject_probe ARGS`` as a user runs it."""
    result = subprocess.run(
        [sys.executable, "manage.py", "wsreject_probe", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)
