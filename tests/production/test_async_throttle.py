"""A ``Throttle`` on Redis counts on the event loop: redis-py's asyncio client, one round trip, no thread.

In process against a real Redis (``WSREJECT_TEST_REDIS_URL``), through the demo's throttled
endpoint (``/ws/limited/``, ``Throttle("3/60s")``) and through ``authorize`` directly. The
commands the asyncio client sends are recorded at its connection; the synchronous client's
are counted by the profile's ``CountingPool``.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
import redis
import redis.asyncio.connection
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import override_settings

from tests.admin.conftest import connect
from wsreject import decide
from wsreject.cache.redis_async import async_client
from wsreject.cache.versions import get_cache
from wsreject.offload import require_io
from wsreject.permissions import BasePermission, authorize
from wsreject.throttling import Throttle

from .counting import commands
from .test_local_copy import REDIS_CACHE, raw_redis, settle
from .test_local_copy import redis_profile as redis_profile  # the fixture

pytestmark = pytest.mark.django_db(transaction=True)

#: What redis-py sends when it opens a connection, before any command of ours.
CONNECTION_SETUP = {"CLIENT", "SELECT", "HELLO", "AUTH", "PING"}


class AsyncCommands:
    """The command names every asyncio connection sends (a pipeline's commands each)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._lock = threading.Lock()

    def ours(self, start: int = 0) -> list[str]:
        return [name for name in self.names[start:] if name not in CONNECTION_SETUP]


@pytest.fixture
def async_commands(monkeypatch) -> AsyncCommands:
    recorded = AsyncCommands()
    original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def send_packed_command(self, command, check_health=True):
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        packed = b"".join(chunk.encode() if isinstance(chunk, str) else bytes(chunk) for chunk in chunks)
        with recorded._lock:
            for part in packed.split(b"*")[1:]:  # one array per command
                fields = part.split(b"\r\n")
                if len(fields) > 2:
                    recorded.names.append(fields[2].decode("latin-1").upper())
        return await original(self, command, check_health)

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", send_packed_command)
    return recorded


def handshakes_without_hops(hops: list[str]) -> list[str]:
    return [hop for hop in hops if hop not in ("no_op", "close_old_connections")]  # the accepted consumer's own


def test_the_throttle_counts_on_the_event_loop_in_one_round_trip(redis_profile, thread_hop_counter, async_commands):
    settle(redis_profile)
    answers = [connect("/ws/limited/")]  # warms the copies of versions and rules (counted too)
    settle(redis_profile)  # versions it created were published: heard before measuring
    for _ in range(4):
        before_sync, before_async, before_hops = commands.value, len(async_commands.names), thread_hop_counter.count
        answers.append(connect("/ws/limited/"))
        assert commands.names[before_sync:] == []  # nothing on Django's synchronous client
        # One script per handshake (each in-process handshake runs on a new loop: EVALSHA, plus
        # SCRIPT LOAD only if the server had never seen the script).
        assert [c for c in async_commands.ours(before_async) if c != "SCRIPT"] == ["EVALSHA"]
        assert handshakes_without_hops(thread_hop_counter.items[before_hops:]) == []
    assert [getattr(a, "status_code", 101) for a in answers] == [101, 101, 101, 429, 429]
    assert 59 <= int(answers[-1].header("retry-after")) <= 60


def test_a_check_that_needs_a_thread_after_the_throttle_counts_the_handshake_once(redis_profile, thread_hop_counter):
    class InThread(BasePermission):
        def has_permission(self, scope, consumer):
            require_io()  # as a database query would
            return True

    throttle = Throttle("2/60s", scope="mixed")
    scope = {"type": "websocket", "path": "/ws/x/", "client": ["10.0.0.7", 1], "headers": []}
    before = thread_hop_counter.count
    async_to_sync(authorize)(scope, throttle & InThread())
    assert len(thread_hop_counter.items[before:]) == 1  # the other check's hop, once
    raw_key = redis_profile.make_and_validate_key(f"{throttle.cache_key(scope, None)}:n")
    assert int(raw_redis().get(raw_key)) == 1  # counted on the loop, remembered in the thread
    async_to_sync(authorize)(scope, throttle & InThread())
    with pytest.raises(Exception) as denied:
        async_to_sync(authorize)(scope, throttle & InThread())
    assert getattr(denied.value, "status_code", None) == 429
    assert int(raw_redis().get(raw_key)) == 3


def test_a_dry_run_peeks_on_the_event_loop_without_counting(redis_profile, thread_hop_counter, async_commands):
    settle(redis_profile)
    scope = {"path": "/ws/limited/", "client": ["10.0.0.8", 1]}
    key = redis_profile.make_and_validate_key(f"{Throttle('3/60s').cache_key({**scope, 'type': 'websocket'}, limited())}:n")
    assert async_to_sync(decide)(scope).status == 101  # warms the copies of versions and rules
    settle(redis_profile)  # versions it created were published: heard before measuring
    before_hops, before_async = thread_hop_counter.count, len(async_commands.names)
    assert async_to_sync(decide)(scope).status == 101
    assert raw_redis().get(key) is None  # not counted
    assert "EVALSHA" in async_commands.ours(before_async)
    assert thread_hop_counter.items[before_hops:] == []
    raw_redis().set(key, 3, px=30_000)  # the budget is spent
    decision = async_to_sync(decide)(scope)
    assert decision.status == 429 and 1 <= int(dict(decision.denial.headers)[b"retry-after"]) <= 30
    assert int(raw_redis().get(key)) == 3


def limited():
    from project.chat.consumers import LimitedConsumer

    return LimitedConsumer.as_asgi()


def test_a_redis_that_refuses_connections_is_503_not_500_nor_accept(redis_profile):
    dead = {**REDIS_CACHE, "LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {"socket_connect_timeout": 1}}
    with override_settings(CACHES={**settings.CACHES, "throttle": dead}, WSREJECT={**settings.WSREJECT, "THROTTLE_CACHE": "throttle"}):
        answer = connect("/ws/limited/")
    assert answer.status_code == 503 and answer.header("retry-after")


def test_a_redis_that_never_answers_is_503_after_the_socket_timeout(redis_profile):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the kernel; nothing ever answers
    try:
        location = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        hung = {"BACKEND": REDIS_CACHE["BACKEND"], "LOCATION": location, "OPTIONS": {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}}
        with override_settings(CACHES={**settings.CACHES, "throttle": hung}, WSREJECT={**settings.WSREJECT, "THROTTLE_CACHE": "throttle"}):
            answer = connect("/ws/limited/")
    finally:
        silent.close()
    assert answer.status_code == 503


def test_each_event_loop_has_its_own_pool_closed_when_the_loop_shuts_down(redis_profile):
    cache = get_cache("throttle")

    async def use() -> tuple[int, list]:
        client = async_client(cache)
        assert async_client(cache) is client  # one per loop
        await client.ping()
        pool = client.connection_pool
        return id(client), [*pool._available_connections, *pool._in_use_connections]

    first_id, first_connections = asyncio.run(use())
    second_id, second_connections = asyncio.run(use())
    assert first_connections and second_connections
    assert not set(map(id, first_connections)) & set(map(id, second_connections))
    assert not any(c.is_connected for c in first_connections + second_connections)  # closed at loop shutdown
