"""Demo databases for real servers: SQLite copies and fresh PostgreSQL databases, and the ORM
from a third process.

Migrating and seeding the demo takes seconds, so it is done once per test session
(``prepare_demo`` into a template) and each test gets a copy: a file copy for SQLite,
``CREATE DATABASE ... TEMPLATE`` for PostgreSQL. The seeded tokens are the template's,
and the template has a superuser for the admin (:mod:`tests.security.admin_client`).
:func:`django_shell` runs ORM code in a separate ``manage.py shell`` process with a
deployment's environment — the way an operator's change reaches a running server.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.admin.admin_client import CREATE_ADMIN
from tests.support.demo import DemoData, manage, prepare_demo
from tests.support.servers import REPO_ROOT
from tests.support.services import POSTGRES_URL

RESULT_MARK = "@@result@@ "


def _admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_URL}/test", autocommit=True, connect_timeout=5) as admin:
        for statement in statements:
            admin.execute(statement)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def postgres_database(template: str | None = None, prefix: str = "wsreject_security") -> Iterator[str]:
    """A fresh PostgreSQL database (a copy of ``template`` if given), dropped afterwards; yields its name."""
    name = unique_name(prefix)
    _admin_execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Template:
    """A migrated, seeded demo database to copy, and the tokens ``seed_demo`` printed."""

    kind: str  # "sqlite" or "postgres"
    location: str  # the SQLite file, or the PostgreSQL database name
    tokens: dict[str, str]


def sqlite_template(directory: Path) -> Template:
    data = prepare_demo(directory)
    django_shell(data.env, CREATE_ADMIN)
    return Template("sqlite", str(directory / "demo.sqlite3"), data.tokens)


@contextlib.contextmanager
def postgres_template() -> Iterator[Template]:
    with postgres_database(prefix="wsreject_security_template") as name:
        data = prepare_demo(Path("/nonexistent"), {"DATABASE_URL": f"{POSTGRES_URL}/{name}"})
        django_shell(data.env, CREATE_ADMIN)
        yield Template("postgres", name, data.tokens)


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    """The demo's environment on ``database_url`` (default settings otherwise)."""
    return {"DJANGO_SETTINGS_MODULE": "project.settings", "DATABASE_URL": database_url, **extra}


def sqlite_copy(template: Template, directory: Path, **extra: str) -> DemoData:
    """A copy of the SQLite template in ``directory``: its environment and tokens."""
    target = directory / "demo.sqlite3"
    shutil.copyfile(template.location, target)
    return DemoData(env=base_env(f"sqlite:///{target}", **extra), tokens=dict(template.tokens))


@contextlib.contextmanager
def demo_copy(template: Template, directory: Path) -> Iterator[DemoData]:
    """A fresh copy of ``template`` (an SQLite file in ``directory``, or a PostgreSQL
    database dropped afterwards): its environment and tokens."""
    if template.kind == "sqlite":
        yield sqlite_copy(template, directory)
        return
    with postgres_database(template.location) as name:
        yield DemoData(env=base_env(f"{POSTGRES_URL}/{name}"), tokens=dict(template.tokens))


def django_shell(env: dict[str, str], code: str, timeout: float = 120) -> Any:
    """Run ``code`` in ``manage.py shell`` with ``env``; it may call ``result(value)`` once to
    hand back a JSON value, which is returned."""
    prelude = f"import json\ndef result(value):\n    print({RESULT_MARK!r} + json.dumps(value), flush=True)\n"
    output = manage("shell", "-c", prelude + code, env=env, timeout=timeout)
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return None


class PendingShell:
    """A ``manage.py shell`` started now that runs ``code`` only when told (:meth:`go`):
    Django's start-up is out of the way, so the change commits right when the test says."""

    READY = "@@ready@@"

    def __init__(self, env: dict[str, str], code: str, directory: Path) -> None:
        self.flag = directory / f"go-{uuid.uuid4().hex}"
        prelude = f"import json\ndef result(value):\n    print({RESULT_MARK!r} + json.dumps(value), flush=True)\n"
        wait = (
            f"import os, time\nprint({self.READY!r}, flush=True)\n"
            f"for _ in range(12000):\n    if os.path.exists({str(self.flag)!r}):\n        break\n    time.sleep(0.005)\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", prelude + wait + code],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # EOF

    def _until(self, wanted: str, timeout: float) -> str:
        """The first output line starting with ``wanted``; fails with the output on EOF or timeout."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.close()
                raise AssertionError(f"manage.py shell: no {wanted!r} line; output:\n" + "\n".join(seen))
            if line.startswith(wanted):
                return line
            seen.append(line)

    def wait_ready(self, timeout: float = 60) -> None:
        self._until(self.READY, timeout)

    def go(self, timeout: float = 60) -> Any:
        """Let the code run; return what it passed to ``result()``."""
        self.flag.touch()
        line = self._until(RESULT_MARK, timeout)
        self.process.wait(timeout=timeout)
        return json.loads(line[len(RESULT_MARK) :])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
