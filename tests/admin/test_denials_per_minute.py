"""The denials-per-minute buckets behind the admin chart: counted per status series (a bounded
set whatever statuses arrive), added to the cache by the flush, and drawn with escaped text."""

from __future__ import annotations

import random
import time

import pytest

from tests.support.processes import free_port
from wsreject.access.denial_chart import denials_chart, nice_maximum
from wsreject.access.denial_log import SERIES, denial_log, denials_per_minute, minute_key, status_series
from wsreject.cache.versions import get_cache
from wsreject.denial import DenyHandshake

SCOPE = {"type": "websocket", "path": "/ws/private/", "client": ("127.0.0.1", 5000)}


@pytest.fixture
def fresh_log(settings):
    settings.WSREJECT = {**settings.WSREJECT, "DENIAL_LOG_SIZE": 50}
    denial_log.clear()
    get_cache().clear()
    yield
    denial_log.clear()


def test_statuses_fall_into_a_bounded_set_of_series():
    assert [status_series(status) for status in (401, 403, 418, 451, 502, 503, 200)] == [
        "401", "403", "other 4xx", "other 4xx", "other 5xx", "503", "other",
    ]  # fmt: skip
    assert {status_series(status) for status in range(100, 1000)} <= set(SERIES)


def test_every_denial_is_counted_once_through_the_cache(fresh_log):
    rng = random.Random(4)
    statuses = [rng.choice([401, 403, 404, 429]) for _ in range(300)] + [rng.randrange(400, 600) for _ in range(300)]
    for status in statuses:
        denial_log.record(SCOPE, DenyHandshake(status, "no").response(), "http")
    first, before_flush = denials_per_minute()
    assert sum(map(sum, before_flush.values())) == 600  # this process's counts, not yet flushed
    denial_log.flush()
    assert denial_log.pending_minutes() == {}
    first, series = denials_per_minute()
    assert set(series) <= set(SERIES)
    assert sum(map(sum, series.values())) == 600
    assert sum(series["401"]) == statuses.count(401)
    minute = int(time.time() // 60)
    stored = get_cache().get_many([minute_key(m, name) for m in (minute - 1, minute) for name in SERIES])
    assert sum(stored.values()) == 600 and len(stored) <= 2 * len(SERIES)


def test_counts_the_cache_refused_are_kept_for_the_next_flush(fresh_log, settings):
    denial_log.record(SCOPE, DenyHandshake(401, "no").response(), "http")
    working = settings.CACHES
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"  # a Redis that is down
    settings.CACHES = {**working, "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": nobody_listens}}
    denial_log.flush()
    assert sum(denial_log.pending_minutes().values()) == 1
    settings.CACHES = working
    denial_log.flush()
    assert denial_log.pending_minutes() == {}
    assert sum(map(sum, denials_per_minute()[1].values())) == 1


def test_the_chart_draws_each_series_and_escapes_text():
    first = int(time.time() // 60) - 59
    svg = denials_chart(first, {"401": [0] * 59 + [15], "other 4xx": [3] + [0] * 59})
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert 'data-status="401" data-total="15"' in svg and "other 4xx: 3" in svg
    assert "<script" not in svg
    assert "No denials" in denials_chart(first, {})
    assert "&lt;b&gt;" in denials_chart(first, {"<b>": [1] * 60})
    assert [nice_maximum(n) for n in (0, 1, 3, 7, 15, 99, 101)] == [1, 1, 5, 10, 20, 100, 200]
