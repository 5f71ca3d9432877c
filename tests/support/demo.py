"""The demo project prepared for real servers: a fresh database, migrated and seeded.

``prepare_demo(directory)`` migrates an SQLite file in ``directory`` with the
demo's own ``manage.py`` (a subprocess, exactly as a user runs it) and returns
the environment for server processes plus the bearer tokens ``seed_demo``
printed. Servers started with that environment see the same data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .servers import REPO_ROOT

DEMO_APP = "project.asgi:application"
DEMO_PASSWORD = "demo-password-for-tests"


@dataclass(frozen=True)
class DemoData:
    env: dict[str, str]
    tokens: dict[str, str]


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run ``manage.py`` with ``env``; return stdout, or fail with the output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare_demo(directory: Path, extra_env: dict[str, str] | None = None) -> DemoData:
    """Migrate and seed a demo database under ``directory`` (SQLite unless ``extra_env`` says otherwise)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": f"sqlite:///{directory / 'demo.sqlite3'}",
        "PYTHONPATH": str(REPO_ROOT),
        **(extra_env or {}),
    }
    manage("migrate", "--noinput", "-v0", env=env)
    tokens = json.loads(manage("seed_demo", "--json", "--password", DEMO_PASSWORD, env=env))
    return DemoData(env=env, tokens=tokens)
