"""Fixtures shared by the whole suite."""

from __future__ import annotations

import io
import json
import os
import threading

import pytest
from asgiref.sync import SyncToAsync
from django.core.cache import caches
from django.core.management import call_command
from django.db.backends.utils import CursorWrapper

from wsreject.cache.versions import local
from wsreject.reporting import error_limiter, limiter


def pytest_sessionstart(session) -> None:
    """With WSREJECT_TEST_INSTALLED=1 (CI) the suite must test the installed wheel, not a source tree."""
    import wsreject

    location = os.path.dirname(wsreject.__file__)
    if os.environ.get("WSREJECT_TEST_INSTALLED") == "1" and "site-packages" not in location:
        raise pytest.UsageError(f"WSREJECT_TEST_INSTALLED=1 but wsreject is imported from {location}, not an installed wheel")


def pytest_collection_modifyitems(config, items) -> None:
    """On CI's second leg (``WSREJECT_TEST_LEG=second``, set by ``./dev test``) the ``one_leg`` tests
    are deselected, not skipped: they ran on the first leg, and what they test does not change between
    the legs' locks (``tests/layout/test_legs.py`` keeps those differences to Django, type stubs and
    the bench chart's plotting packages)."""
    leg = os.environ.get("WSREJECT_TEST_LEG", "first")
    if leg not in ("first", "second"):
        raise pytest.UsageError(f"WSREJECT_TEST_LEG must be 'first' or 'second', not {leg!r}")
    if leg == "first":
        return
    kept = [item for item in items if item.get_closest_marker("one_leg") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("one_leg")])
        items[:] = kept


def pytest_report_header(config) -> str:
    import wsreject

    return f"wsreject {wsreject.__version__} from {os.path.dirname(wsreject.__file__)}"


@pytest.fixture(autouse=True)
def _clear_caches():
    """Throttle windows, cached permissions and the log's rate window must not leak between tests."""
    from django.conf import settings

    for alias in settings.CACHES:  # every alias: local-memory storage outlives the cache objects
        caches[alias].clear()
    limiter.reset()
    error_limiter.reset()  # an error's first traceback in one test, not swallowed as a repeat of another's
    local.clear()
    yield


@pytest.fixture
def demo_tokens(transactional_db) -> dict[str, str]:
    """Run ``seed_demo`` for real and return {username: bearer token}."""
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.items: list = []
        self._lock = threading.Lock()

    def add(self, item=None) -> None:
        with self._lock:
            self.count += 1
            self.items.append(item)


@pytest.fixture
def query_counter(monkeypatch) -> Counter:
    """Counts SQL statements executed in any thread (CaptureQueriesContext sees only its own)."""
    counter = Counter()
    original_execute = CursorWrapper.execute
    original_executemany = CursorWrapper.executemany

    def execute(self, sql, params=None):
        counter.add(sql)
        return original_execute(self, sql, params)

    def executemany(self, sql, param_list):
        counter.add(sql)
        return original_executemany(self, sql, param_list)

    monkeypatch.setattr(CursorWrapper, "execute", execute)
    monkeypatch.setattr(CursorWrapper, "executemany", executemany)
    return counter


@pytest.fixture
def thread_hop_counter(monkeypatch) -> Counter:
    """Counts calls that leave the event loop through asgiref's sync_to_async."""
    counter = Counter()
    original_call = SyncToAsync.__call__

    async def call(self, *args, **kwargs):
        counter.add(getattr(self.func, "__qualname__", repr(self.func)))
        return await original_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", call)
    return counter
