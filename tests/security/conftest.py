"""Fixtures of the issue-9 tests: demo database templates (SQLite, PostgreSQL) and service checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.demo import DemoData
from tests.support.services import postgres_unreachable, redis_unreachable, require

from .deployment import (
    Template,
    demo_copy,
    postgres_template,
    sqlite_template,
)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Iterator[Template]:
    """The demo migrated and seeded once, to copy: in PostgreSQL when it answers (copies
    are then ``CREATE DATABASE ... TEMPLATE``, dropped at the end), else in SQLite."""
    if postgres_unreachable() is None:
        with postgres_template() as template:
            yield template
    else:
        yield sqlite_template(tmp_path_factory.mktemp("demo-template"))


@pytest.fixture(scope="session")
def postgres_demo_template(demo_template) -> Template:
    """:func:`demo_template`, for the tests that need PostgreSQL itself."""
    if demo_template.kind != "postgres":
        require(postgres_unreachable() or "the demo template is not in PostgreSQL")
    return demo_template


@pytest.fixture
def demo_database(demo_template, tmp_path) -> Iterator[DemoData]:
    """A fresh copy of the demo database for one test."""
    with demo_copy(demo_template, tmp_path) as data:
        yield data


@pytest.fixture(scope="session")
def redis_available() -> None:
    require(redis_unreachable())
