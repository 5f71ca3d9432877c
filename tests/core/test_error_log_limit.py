"""Unexpected errors are logged like denials: one traceback, then a count (issue 18, item 7).

A client that finds a bug (any 500) must not turn it into a flood of tracebacks: the first of a
kind is logged with its traceback, the repeats in the next minute are counted and summed up in one
line. On real servers: ``tests/security/test_session_cookie_servers.py``.
"""

from __future__ import annotations

import logging

from project.asgi import application
from wsreject.reporting import ErrorLogLimiter, error_kind, error_limiter
from wsreject.testing import HandshakeCommunicator


def raised(where: str) -> BaseException:
    try:
        if where == "here":
            raise RuntimeError("boom")
        raise RuntimeError("boom")  # the same type, another line: another kind
    except RuntimeError as exc:
        return exc


def test_the_kind_is_the_type_and_the_place():
    here, there = raised("here"), raised("there")
    assert error_kind(here) != error_kind(there)
    assert error_kind(here) == error_kind(raised("here"))
    assert error_kind(here).startswith("builtins.RuntimeError at ") and __file__ in error_kind(here)
    assert error_kind(RuntimeError("never raised")) == "builtins.RuntimeError"


def test_one_traceback_then_a_count(caplog):
    limiter = ErrorLogLimiter(interval=60)
    assert limiter.admit("A", "Unhandled error", now=0.0)
    assert [limiter.admit("A", "Unhandled error", now=t) for t in (1.0, 2.0, 59.0)] == [False] * 3
    assert limiter.admit("B", "Unhandled error", now=3.0), "another kind has its own traceback"
    with caplog.at_level(logging.ERROR, logger="wsreject"):
        assert limiter.admit("A", "Unhandled error", now=60.5), "a new minute: a traceback again"
    (summary,) = [record.getMessage() for record in caplog.records]
    assert summary == "Unhandled error: 3 more of the same error (A) in the last 60 s, not logged one by one"


def test_no_summary_without_repeats(caplog):
    limiter = ErrorLogLimiter(interval=1)
    assert limiter.admit("A", "m", now=0.0)
    with caplog.at_level(logging.ERROR, logger="wsreject"):
        assert limiter.admit("A", "m", now=5.0)
    assert caplog.records == []


async def broken() -> int:
    result = await HandshakeCommunicator(application, "/ws/broken/").handshake()
    return result.status_code


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wsreject" and r.levelno == logging.ERROR and r.exc_info]


async def test_a_bug_hit_again_and_again_logs_one_traceback(transactional_db, caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger="wsreject"):
        assert [await broken() for _ in range(4)] == [500] * 4
    (first,) = tracebacks(caplog)
    assert first.getMessage() == "Unhandled error before accept; answering 500"
    assert "hunter2" in str(first.exc_info[1])
    assert len([r for r in caplog.records if "status=500" in r.getMessage()]) == 4, "each denial still has its line"
    caplog.clear()
    monkeypatch.setattr(error_limiter, "interval", 0.0)  # the minute is over
    with caplog.at_level(logging.ERROR, logger="wsreject"):
        error_limiter.flush()
    (summary,) = [r.getMessage() for r in caplog.records]
    assert summary.startswith("Unhandled error before accept; answering 500: 3 more of the same error (builtins.RuntimeError at ")
    assert "project/chat/consumers.py" in summary


async def test_log_rate_none_logs_every_traceback(transactional_db, settings, caplog):
    settings.WSREJECT = {**settings.WSREJECT, "LOG_RATE": None}
    with caplog.at_level(logging.ERROR, logger="wsreject"):
        assert [await broken() for _ in range(3)] == [500] * 3
    assert len(tracebacks(caplog)) == 3


async def test_a_failing_denial_receiver_logs_one_traceback(transactional_db, caplog):
    """A ``connection_denied`` receiver's bug runs on every denial: limited the same way."""
    from wsreject.signals import connection_denied

    def broken_receiver(**kwargs):
        raise ValueError("receiver bug")

    connection_denied.connect(broken_receiver)
    try:
        with caplog.at_level(logging.ERROR, logger="wsreject"):
            for _ in range(3):
                result = await HandshakeCommunicator(application, "/ws/private/").handshake()
                assert result.status_code == 401, "the denial itself is unaffected"
    finally:
        connection_denied.disconnect(broken_receiver)
    (record,) = tracebacks(caplog)
    assert "broken_receiver" in record.getMessage() and record.exc_info[0] is ValueError
