"""``Throttle``: at most so many handshakes per client per endpoint, as a permission class.

The budget is keyed by **who** (the signed-in user, else the client's address —
an IPv6 address by its /64, since one client owns a whole /64) and **which
endpoint** (the consumer class, whatever path spelling reached it, or the
throttle's own ``scope`` name), never by the raw path. Counters are fixed
windows that start at a client's first attempt, counted atomically with the
cache's ``add`` and ``incr`` (atomic on Redis and in local memory), so
concurrent handshakes cannot slip through together (on Django's ``RedisCache``: one script, one
round trip, awaited on the event loop with redis-py's asyncio client, no thread hop); they live in
``WSREJECT["THROTTLE_CACHE"]``: give throttles a cache of their own (check
``wsreject.W025``) so that a flood of other keys cannot evict them. Shared on
Redis, every process shares the budget. A refusal is ``429`` with
``Retry-After`` in whole seconds. A throttle cache that fails refuses with
``503`` (fail closed), never lets everyone through.

Behind reverse proxies set ``WSREJECT["NUM_PROXIES"]`` to how many of them
append to ``X-Forwarded-For``: the client is then the address that many hops
from the right. Without it the header is ignored (a client can send anything).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from django.core.cache import BaseCache
from django.core.cache.backends.redis import RedisCache

from .authentication import is_authenticated
from .cache.bus import has_bus
from .cache.redis_async import async_script
from .cache.versions import get_cache, require_cache_io
from .conf import wsreject_settings
from .denial import DenyHandshake, is_unavailable
from .offload import NeedsIO, once
from .permissions import BasePermission
from .scope import VOUCHED_KEY, header_values
from .types import Scope

__all__ = ["Throttle", "client_ip", "endpoint_name", "parse_rate"]

#: One fixed window on Redis, atomically: count the attempt, start the window's expiry with the
#: first one (or when the key somehow has none), answer the count and the milliseconds left.
_REDIS_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

#: :meth:`Throttle.peek` on Redis in one round trip: the count so far and the milliseconds left.
_REDIS_PEEK = """
return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1])}
"""

#: Period units: wsreject's short ones and Django REST framework's spellings (``"10/minute"``,
#: ``"1/day"``), singular or plural.
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"^\s*(?P<count>\d+)\s*/\s*(?P<number>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)?\s*\Z", re.ASCII)
_RATE_HELP = "expected 'count/period' such as '3/60s', '10/min', '10/minute', '100/hour' or '1/day'"


def parse_rate(rate: str) -> tuple[int, float]:
    """``"3/60s"``, ``"10/min"``, ``"10/minute"``, ``"100/h"``, ``"1/day"`` as ``(count, seconds)``.

    The period is an optional number and a unit: ``s``/``sec``/``second``,
    ``m``/``min``/``minute``, ``h``/``hour``, ``d``/``day`` (plurals too); no unit
    means seconds. Anything else is a ``ValueError`` that says what is expected.
    """
    match = _RATE.match(rate) if isinstance(rate, str) else None
    if match is None or (match["number"] is None and match["unit"] is None) or (match["unit"] or "s") not in _UNITS:
        raise ValueError(f"invalid rate {rate!r}; {_RATE_HELP}")
    limit, period = int(match["count"]), float(match["number"] or 1) * _UNITS[match["unit"] or "s"]
    if limit < 1 or period <= 0:
        raise ValueError(f"invalid rate {rate!r}; expected a positive count and period")
    return limit, period


def client_ip(scope: Scope) -> str:
    """The client's address: ``scope["client"]``, or ``X-Forwarded-For`` behind ``NUM_PROXIES`` proxies."""
    address = (scope.get("client") or ("unknown",))[0]
    proxies = wsreject_settings.NUM_PROXIES or 0
    if proxies > 0:
        forwarded = ",".join(value.decode("latin-1") for value in header_values(scope, b"x-forwarded-for"))
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-min(proxies, len(hops))]
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return str(address)[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def endpoint_name(consumer: Any) -> str:
    """A stable name for what is protected: the consumer class, or the guarded application's type."""
    if consumer is None:
        return "-"
    target = getattr(consumer, "consumer_class", None) or (consumer if isinstance(consumer, type) else type(consumer))
    return f"{target.__module__}.{target.__qualname__}"


class Throttle(BasePermission):
    """At most ``rate`` handshakes per client per endpoint: ``"3/60s"``, ``"10/min"``,
    ``"10/minute"``, ``"1/day"`` (DRF's spellings are understood too).

    ``scope`` names the budget instead of the endpoint (several endpoints can
    share one); ``cache`` overrides ``WSREJECT["THROTTLE_CACHE"]``.
    """

    status_code = 429
    detail = "Too many connection attempts"
    runs_on_event_loop = True  # a process-local counter is read on the event loop

    def __init__(
        self, rate: str, *, scope: str | None = None, cache: str | None = None, key_prefix: str = "wsreject:throttle"
    ) -> None:
        self.limit, self.period = parse_rate(rate)
        self.scope_name = scope
        self.cache_alias = cache
        self.key_prefix = key_prefix

    def get_cache(self) -> BaseCache:
        return get_cache(self.cache_alias or wsreject_settings.THROTTLE_CACHE)

    def identity(self, scope: Scope) -> str:
        if is_authenticated(scope):
            return f"user:{scope['user'].pk}"
        return f"ip:{client_ip(scope)}"

    def cache_key(self, scope: Scope, consumer: Any) -> str:
        name = f"{self.scope_name or endpoint_name(consumer)}|{self.identity(scope)}|{self.limit}/{self.period:g}"
        return f"{self.key_prefix}:{hashlib.sha256(name.encode('utf-8')).hexdigest()[:40]}"

    def hit(self, cache: BaseCache, key: str) -> tuple[int, float]:
        """Count one attempt; the count in this window and when the window started."""
        if isinstance(cache, RedisCache) and has_bus(cache):  # a RedisCache whose redis-py client we can reach
            return self._hit_redis(cache, key)
        now = time.time()
        timeout = math.ceil(self.period)
        cache.add(f"{key}:start", now, timeout=timeout)
        cache.add(f"{key}:n", 0, timeout=timeout)
        try:
            count = int(cache.incr(f"{key}:n"))
        except ValueError:  # the window ended between add() and incr()
            cache.set(f"{key}:n", 1, timeout=timeout)
            cache.set(f"{key}:start", now, timeout=timeout)
            count = 1
        started = cache.get(f"{key}:start")
        return count, float(started) if started is not None else now

    def _hit_redis(self, cache: RedisCache, key: str) -> tuple[int, float]:
        """:meth:`hit` in one round trip: the counter and its window's expiry in one script."""
        period_ms = max(1, math.ceil(self.period * 1000))
        client = cast(Any, cache)._cache.get_client(write=True)
        count, ttl_ms = client.eval(_REDIS_WINDOW, 1, cache.make_and_validate_key(f"{key}:n"), period_ms)
        return int(count), time.time() - (period_ms - int(ttl_ms)) / 1000

    def _peek_redis(self, cache: RedisCache, key: str) -> tuple[int, float]:
        """:meth:`peek`'s read with the synchronous client (in a worker thread)."""
        period_ms = max(1, math.ceil(self.period * 1000))
        client = cast(Any, cache)._cache.get_client()
        count, ttl_ms = client.eval(_REDIS_PEEK, 1, cache.make_and_validate_key(f"{key}:n"))
        return int(count), time.time() - (period_ms - max(int(ttl_ms), 0)) / 1000

    def _async_redis(self, cache: BaseCache, key: str, source: str) -> Callable[[], Awaitable[tuple[int, float]]] | None:
        """On Django's ``RedisCache``: ``source`` run with redis-py's asyncio client, answering
        the count and when the window started (for :func:`~wsreject.offload.once`); else None."""
        if not (isinstance(cache, RedisCache) and has_bus(cache)):
            return None
        period_ms = max(1, math.ceil(self.period * 1000))
        raw_key = cache.make_and_validate_key(f"{key}:n")

        async def run() -> tuple[int, float]:
            count, ttl_ms = await async_script(cache, source)(keys=[raw_key], args=[period_ms])
            return int(count), time.time() - (period_ms - max(int(ttl_ms), 0)) / 1000

        return run

    def peek(self, scope: Scope, consumer: Any) -> DenyHandshake | None:
        """:meth:`check`'s answer without counting: 429 when this window's budget is spent already
        (for :func:`wsreject.decide`'s side-effect-free run). Reads the counters :meth:`hit` writes."""
        cache = self.get_cache()
        key = self.cache_key(scope, consumer)
        awaitable = self._async_redis(cache, key, _REDIS_PEEK)
        if awaitable is None:
            require_cache_io(cache)
        try:
            if isinstance(cache, RedisCache) and awaitable is not None:
                count, started = once(f"peek:{key}", lambda: self._peek_redis(cache, key), awaitable=awaitable)
            else:
                found = cache.get_many([f"{key}:n", f"{key}:start"])
                count = int(found.get(f"{key}:n") or 0)
                started = float(found.get(f"{key}:start") or time.time())
        except NeedsIO:
            raise
        except Exception as exc:  # a throttle that cannot read refuses (503), as when it counts
            if is_unavailable(exc):
                raise
            raise ConnectionError(f"throttle cache failed: {exc!r}") from exc
        if count < self.limit:
            return None
        retry_after = max(1, math.ceil(started + self.period - time.time()))
        return DenyHandshake(self.status_code, self.detail, headers={"Retry-After": str(retry_after)})

    def check(self, scope: Scope, consumer: Any) -> DenyHandshake | None:
        if scope.get(VOUCHED_KEY):
            return None  # counted once, by the edge that vouched for it (wsreject.edge.trust)
        cache = self.get_cache()
        key = self.cache_key(scope, consumer)
        awaitable = self._async_redis(cache, key, _REDIS_WINDOW)  # on the event loop, no thread
        if awaitable is None:
            require_cache_io(cache)
        try:
            count, started = once(key, lambda: self.hit(cache, key), awaitable=awaitable)
        except NeedsIO:
            raise
        except Exception as exc:  # a throttle that cannot count refuses (503), never lets all through
            if is_unavailable(exc):
                raise
            raise ConnectionError(f"throttle cache failed: {exc!r}") from exc
        if count <= self.limit:
            return None
        retry_after = max(1, math.ceil(started + self.period - time.time()))
        return DenyHandshake(self.status_code, self.detail, headers={"Retry-After": str(retry_after)})

    def __repr__(self) -> str:
        return f"Throttle({self.limit}/{self.period:g}s)"
