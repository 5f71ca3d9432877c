"""The production profile's per-process copy of versions, rules and owners (Redis kept current by push).

In process against a real Redis (``WSREJECT_TEST_REDIS_URL``): the cache is Django's ``RedisCache``
with a pool that counts the commands sent, so "no round trip" is Redis's own count.
"""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from tests.admin.conftest import connect
from tests.bench.scenarios import forged_wsreject_token
from tests.support.services import REDIS_URL, redis_unreachable, require
from wsreject.cache import bus
from wsreject.cache.versions import RULES_VERSION_KEY, get_cache, local, uses_local_layer
from wsreject.models import AccessRule

from .counting import commands

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_CACHE = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "OPTIONS": {"pool_class": "tests.production.counting.CountingPool"}}


def wait_for(condition, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.01)
    return value


@pytest.fixture
def redis_profile():
    """Django's cache (and the throttles') on Redis, with this process's bus up."""
    require(redis_unreachable())
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).flushdb()
    wsreject = {**settings.WSREJECT, "VERSION_RECHECK": 60, "THROTTLE_CACHE": "default"}  # never re-read in a test
    with override_settings(CACHES={"default": REDIS_CACHE, "throttle": REDIS_CACHE}, WSREJECT=wsreject):
        cache = get_cache()
        uses_local_layer(cache)  # starts the bus
        running = bus.bus_for(cache)
        assert running is not None and running.wait_live(5), "the invalidation bus did not subscribe"
        yield cache
    bus.stop_all()
    local.clear()


def settle(cache) -> None:
    """Wait until the bus is up and every push published so far (this process's own ones too) heard."""
    uses_local_layer(cache)
    assert bus.bus_for(cache).wait_live(5), "the invalidation bus did not subscribe"
    local.versions["wsreject:test:marker"] = ("marker", time.monotonic())
    bus.publish(cache, ["wsreject:test:marker"])
    wait_for(lambda: "wsreject:test:marker" not in local.versions, what="marker push")


def raw_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=2)


@pytest.mark.parametrize(
    ("path", "user", "status"),
    [("/ws/private/", None, 401), ("/ws/private/", "forged", 401), ("/ws/rooms/lobby/", "bob", 403), ("/ws/private/", "alice", 101)],
)
def test_warm_handshakes_make_no_redis_round_trip_and_no_thread_hop(redis_profile, demo_tokens, thread_hop_counter, path, user, status):
    token = {**demo_tokens, "forged": forged_wsreject_token()}.get(user) if user else None
    settle(redis_profile)  # seeding the demo published its bumps
    assert getattr(connect(path, token), "status_code", 101) == status  # warms the copies
    before_commands, before_hops = commands.value, thread_hop_counter.count
    result = connect(path, token)
    assert getattr(result, "status_code", 101) == status
    assert commands.names[before_commands:] == []
    hops = thread_hop_counter.items[before_hops:]
    if status == 101:
        hops = [hop for hop in hops if hop not in ("no_op", "close_old_connections")]
    assert hops == []


def test_a_rule_saved_elsewhere_reaches_this_process_by_push(redis_profile, demo_tokens):
    alice = demo_tokens["alice"]
    settle(redis_profile)
    assert getattr(connect("/ws/private/", alice), "status_code", 101) == 101
    assert RULES_VERSION_KEY in local.versions
    # Another process's change: the version bumped in Redis and published on the bus (as
    # _bump_on_commit does), nothing done in this process.
    AccessRule.objects.bulk_create([AccessRule(endpoint="/ws/private/", enabled=False, disabled_detail="Moved")])  # no signal
    redis_profile.set(RULES_VERSION_KEY, "from-elsewhere", timeout=None)
    bus.publish(redis_profile, [RULES_VERSION_KEY])
    wait_for(lambda: RULES_VERSION_KEY not in local.versions, what="push")
    denied = connect("/ws/private/", alice)
    assert (denied.status_code, denied.json()) == (503, {"detail": "Moved"})


def test_a_lost_push_is_bounded_by_version_recheck(redis_profile):
    with override_settings(WSREJECT={**settings.WSREJECT, "VERSION_RECHECK": 0.3}):  # restarts the bus
        lost_push_is_reread()


def lost_push_is_reread() -> None:
    cache = get_cache()
    uses_local_layer(cache)
    assert bus.bus_for(cache).wait_live(5)
    first = local.version(cache, RULES_VERSION_KEY)
    cache.set(RULES_VERSION_KEY, "changed-without-a-push", timeout=None)  # no publish: the push is lost
    assert local.version(cache, RULES_VERSION_KEY) == first  # the copy is trusted ...
    started = time.monotonic()
    wait_for(lambda: local.version(cache, RULES_VERSION_KEY) == "changed-without-a-push", timeout=3, what="re-read")
    assert 0.2 <= time.monotonic() - started <= 1.0  # ... for VERSION_RECHECK, then re-read


def test_without_the_bus_every_handshake_reads_redis(redis_profile, demo_tokens):
    bus.stop_all()
    cache = get_cache()
    running = bus.bus_for(cache)  # a new one starts; until it has subscribed, nothing is trusted
    running.stop(wait=3)
    assert not running.live and not uses_local_layer(cache)
    local.clear()
    connect("/ws/private/")
    before = commands.value
    assert connect("/ws/private/").status_code == 401
    assert commands.value > before  # read the shared cache, as before the copies existed


def test_a_resubscription_forgets_every_version(redis_profile):
    cache = get_cache()
    local.version(cache, RULES_VERSION_KEY)
    assert local.versions
    # Redis drops the subscriber: the bus reconnects, and what was published meanwhile was not heard.
    for client in raw_redis().client_list():
        if int(client.get("sub", 0)) > 0 and client.get("db") == str(raw_redis().connection_pool.connection_kwargs.get("db", 0)):
            raw_redis().client_kill_filter(_id=client["id"])
    wait_for(lambda: not local.versions, what="reset")
    assert wait_for(lambda: bus.bus_for(cache).live, what="resubscription")


def test_a_throttle_on_redis_is_one_round_trip_shared_by_every_process(redis_profile):
    from django.contrib.auth.models import AnonymousUser

    from wsreject.throttling import Throttle

    scope = {"type": "websocket", "path": "/ws/x/", "client": ["10.0.0.9", 1], "headers": [], "user": AnonymousUser()}
    one, other = Throttle("3/60s"), Throttle("3/60s")  # as in two processes: only Redis is shared
    settle(redis_profile)
    redis_profile.get("wsreject:test:connected")  # the pool's connection is open (its handshake is not counted)
    before = commands.value
    answers = [throttle.check(scope, None) for throttle in (one, other, one)]
    assert answers == [None, None, None]
    assert [name.split("\r\n")[2] for name in commands.names[before:]] == ["EVAL"] * 3  # one round trip per handshake
    denial = other.check(scope, None)
    assert denial is not None and denial.status_code == 429
    assert 59 <= int(dict(denial.headers)[b"retry-after"]) <= 60
