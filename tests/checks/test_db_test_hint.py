"""A ``db`` test (data in a transaction never committed) gets a 503 that says the fix (issue 18, item 6).

wsreject reads the database in worker threads with their own connections; under a ``db`` test
SQLite answers them "database table is locked", which is a 503 like any database outage. In
Django's test environment that 503 and its log line now name the fix: ``transactional_db``.
"""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from project.asgi import application
from tests.helpers import bearer
from wsreject.authentication.tokens import issue_token
from wsreject.reporting import UNCOMMITTED_TEST_DATA
from wsreject.testing import HandshakeCommunicator

FIX = "use the transactional_db fixture or @pytest.mark.django_db(transaction=True)"


def token_of_a_new_user() -> str:
    user = get_user_model().objects.create_user("zed", password="unused-password")
    return issue_token(user)[1]


@pytest.fixture
def token_in_a_db_test(db) -> str:
    """Created by a sync fixture under ``db``: in the test's transaction, which is never committed."""
    return token_of_a_new_user()


@pytest.fixture
def token_in_a_transactional_db_test(transactional_db) -> str:
    return token_of_a_new_user()


async def private(token: str):
    return await HandshakeCommunicator(application, "/ws/private/", headers=bearer(token)).handshake()


async def test_a_db_test_is_told_to_use_transactional_db(token_in_a_db_test, caplog):
    with caplog.at_level(logging.WARNING, logger="wsreject"):
        result = await private(token_in_a_db_test)
    assert result.status_code == 503
    assert result.json() == {"detail": f"Service Unavailable: {UNCOMMITTED_TEST_DATA}"}
    assert FIX in result.json()["detail"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "database table is locked" in warning and FIX in warning


async def test_said_every_time_not_once_a_minute(token_in_a_db_test, caplog):
    """Each failing test shows the fix in its own captured log (an outage is said once a minute)."""
    with caplog.at_level(logging.WARNING, logger="wsreject"):
        for _ in range(2):
            assert (await private(token_in_a_db_test)).status_code == 503
    assert len([r for r in caplog.records if FIX in r.getMessage()]) == 2


async def test_the_fix_works(token_in_a_transactional_db_test):
    assert (await private(token_in_a_transactional_db_test)).accepted


async def test_outside_a_test_environment_it_is_a_plain_outage(token_in_a_db_test, monkeypatch):
    monkeypatch.delattr(mail, "outbox")  # as without setup_test_environment: a server, not a test
    result = await private(token_in_a_db_test)
    assert (result.status_code, result.json()) == (503, {"detail": "Service Unavailable"})
