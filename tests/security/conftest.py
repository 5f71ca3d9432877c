"""Fixtures of the issue-9 tests: demo database templates (SQLite, PostgreSQL) and service checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .deployment import (
    Template,
    postgres_template,
    postgres_unreachable,
    redis_unreachable,
    sqlite_template,
)


def require(reason: str | None) -> None:
    """Skip (fail on CI) when a service the test needs is unreachable."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this service: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_demo_template(tmp_path_factory) -> Template:
    """The demo migrated and seeded once, in an SQLite file to copy."""
    return sqlite_template(tmp_path_factory.mktemp("demo-template"))


@pytest.fixture(scope="session")
def postgres_demo_template() -> Iterator[Template]:
    """The demo migrated and seeded once, in a PostgreSQL database to copy (dropped at the end)."""
    require(postgres_unreachable())
    with postgres_template() as template:
        yield template


@pytest.fixture(scope="session")
def redis_available() -> None:
    require(redis_unreachable())
