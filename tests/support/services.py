"""The services some tests need besides Python: where they are, whether they answer, and what a
test does when one does not — skip with the reason on a developer's machine, fail on CI, which
provides PostgreSQL, Redis and Chromium (so a missing one there is a broken CI, not a pass)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get("WSREJECT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The Redis database of tests that share one server-side cache between processes.
REDIS_URL = os.environ.get("WSREJECT_TEST_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/5")


def require(reason: str | None) -> None:
    """Nothing when ``reason`` is None; else skip with it, or fail on CI."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it answers)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(f"{POSTGRES_URL}/test", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL does not answer at {POSTGRES_URL}/test: {exc}"
    return None


def redis_unreachable(url: str = REDIS_URL) -> str | None:
    """Why Redis cannot be used at ``url`` (None when it answers)."""
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis does not answer at {url}: {exc}"
    return None


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "wsreject_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped (connections and all) afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{POSTGRES_URL}/test", autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES_URL}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
