"""Throttle (wsreject/throttling.py): who, which endpoint, atomic windows, fail closed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches

from wsreject.throttling import Throttle, client_ip, endpoint_name, parse_rate

VALID_RATES = {
    "3/60s": (3, 60.0),
    "10/min": (10, 60.0),
    "5/m": (5, 60.0),
    "1/h": (1, 3600.0),
    "4/2hour": (4, 7200.0),
    "2/5": (2, 5.0),
    "2/s": (2, 1.0),
    "2/sec": (2, 1.0),
    "7/1.5s": (7, 1.5),
    "3/60 s": (3, 60.0),
    # Django REST framework's spellings (issue 18): the docs call the classes "written like DRF's".
    "10/second": (10, 1.0),
    "10/minute": (10, 60.0),
    "100/hour": (100, 3600.0),
    "1/day": (1, 86400.0),
    "1/d": (1, 86400.0),
    "5/minutes": (5, 60.0),
    "2/3days": (2, 259200.0),
    " 10 / minute ": (10, 60.0),
}


@pytest.mark.parametrize("rate,expected", VALID_RATES.items(), ids=VALID_RATES.keys())
def test_parse_rate_valid(rate, expected):
    assert parse_rate(rate) == expected
    assert (Throttle(rate).limit, Throttle(rate).period) == expected


INVALID_RATES = [
    "", "3", "a/s", "0/s", "-1/s", "3/0s", "3/60x", "3/60/s", "3.5/s", "3/1.2.3s", "3/S",
    "3/", "3/ ", "/s", "3/month", "3/minutex", "3/m5", "3/-5s", "3/Minute", "3/1e3s", "\uff13/s", "3/day day",
]


@pytest.mark.parametrize("rate", INVALID_RATES, ids=lambda r: r or "empty")
def test_parse_rate_invalid(rate):
    with pytest.raises(ValueError, match="invalid rate") as raised:
        Throttle(rate)
    assert repr(rate) in str(raised.value), "the error names the rate it refuses"


@pytest.mark.parametrize("rate", [None, 10, b"10/min", ["10/min"]], ids=repr)
def test_a_rate_that_is_not_a_string_is_a_clear_error(rate):
    with pytest.raises(ValueError, match="expected 'count/period' such as"):
        Throttle(rate)


class RoomConsumer:
    pass


class OtherConsumer:
    pass


class FakeUser:
    is_authenticated = True

    def __init__(self, pk):
        self.pk = pk


def scope_for(client=("10.0.0.1", 1234), user=None, headers=(), path="/ws/x/"):
    return {
        "type": "websocket",
        "path": path,
        "client": list(client) if client else None,
        "headers": list(headers),
        "user": user or AnonymousUser(),
    }


@pytest.fixture
def clock(monkeypatch):
    """A controllable wall clock for wsreject.throttling only."""
    import wsreject.throttling as throttling

    now = SimpleNamespace(value=1_000_000.25)
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: now.value))
    return now


def attempt(throttle, scope=None, consumer=RoomConsumer()):
    denial = throttle.check(scope or scope_for(), consumer)
    if denial is None:
        return None
    assert (denial.status_code, denial.detail) == (429, "Too many connection attempts")
    retry_after = dict(denial.headers)[b"retry-after"].decode()
    assert retry_after.isdigit(), retry_after
    return int(retry_after)


def test_throttle_window(clock):
    throttle = Throttle("3/60s")
    start = clock.value
    assert [attempt(throttle) for _ in range(3)] == [None, None, None]
    assert attempt(throttle) == 60
    clock.value = start + 30
    assert attempt(throttle) == 30
    clock.value = start + 59.5
    assert attempt(throttle) == 1
    clock.value = start + 59.999
    assert attempt(throttle) == 1  # never 0


def test_the_window_starts_at_the_first_attempt_and_ends_with_the_counter(clock):
    throttle = Throttle("1/60s")
    assert attempt(throttle) is None
    caches["throttle"].clear()  # the window's keys expired (the cache's own timeout)
    assert attempt(throttle) is None


def test_denied_attempts_do_not_extend_the_window(clock):
    throttle = Throttle("1/10s")
    start = clock.value
    assert attempt(throttle) is None
    for offset in (1, 2, 3, 9):
        clock.value = start + offset
        assert attempt(throttle) == 10 - offset


@pytest.mark.parametrize("elapsed", [0.0, 0.2, 0.75, 1.0, 1.4, 1.4999], ids=str)
def test_retry_after_is_a_whole_number_at_least_one(clock, elapsed):
    throttle = Throttle("1/1.5s")
    start = clock.value
    assert attempt(throttle) is None
    clock.value = start + elapsed
    retry_after = attempt(throttle)
    assert retry_after >= 1
    assert retry_after >= 1.5 - elapsed  # never earlier than the window really opens


def test_keys_are_per_client_and_per_endpoint_never_per_spelling(clock):
    throttle = Throttle("1/60s")
    assert attempt(throttle, scope_for(("10.0.0.1", 1))) is None
    assert attempt(throttle, scope_for(("10.0.0.1", 2))) == 60, "another port, same client"
    for spelling in ("/ws//x/", "//ws/x/", "/ws/./x/", "/ws/X/"):
        assert attempt(throttle, scope_for(("10.0.0.1", 1), path=spelling)) == 60, spelling
    assert attempt(throttle, scope_for(("10.0.0.2", 1))) is None, "another client"
    assert attempt(throttle, scope_for(("10.0.0.1", 1)), OtherConsumer()) is None, "another endpoint"
    assert attempt(throttle, scope_for(client=None)) is None  # no client: one shared "unknown" key
    assert attempt(throttle, scope_for(client=None)) == 60


def test_a_signed_in_user_is_counted_wherever_they_connect_from(clock):
    throttle = Throttle("1/60s")
    assert attempt(throttle, scope_for(("10.0.0.1", 1), user=FakeUser(7))) is None
    assert attempt(throttle, scope_for(("10.9.9.9", 1), user=FakeUser(7))) == 60
    assert attempt(throttle, scope_for(("10.0.0.1", 1), user=FakeUser(8))) is None


def test_an_ipv6_client_is_counted_by_its_64(clock):
    throttle = Throttle("1/60s")
    assert attempt(throttle, scope_for(("2001:db8:1:2::1", 1))) is None
    assert attempt(throttle, scope_for(("2001:db8:1:2:ffff::9", 1))) == 60
    assert attempt(throttle, scope_for(("2001:db8:1:3::1", 1))) is None


def test_the_scope_name_shares_one_budget_between_endpoints(clock):
    throttle = Throttle("1/60s", scope="chat")
    assert attempt(throttle, consumer=RoomConsumer()) is None
    assert attempt(throttle, consumer=OtherConsumer()) == 60


def test_throttles_with_other_prefixes_do_not_share(clock):
    assert attempt(Throttle("1/60s", key_prefix="a")) is None
    assert attempt(Throttle("1/60s", key_prefix="b")) is None
    assert attempt(Throttle("1/60s", key_prefix="a")) == 60


def test_a_flood_of_other_keys_does_not_evict_a_counter(clock):
    throttle = Throttle("1/60s")
    assert attempt(throttle) is None
    for n in range(3000):  # other clients, other endpoints
        throttle.check(scope_for((f"10.1.{n // 250}.{n % 250}", 1)), OtherConsumer())
    assert attempt(throttle) == 60


def test_forwarded_for_is_ignored_unless_proxies_are_configured(settings):
    scope = scope_for(("10.0.0.1", 1), headers=[(b"x-forwarded-for", b"203.0.113.9, 198.51.100.7")])
    assert client_ip(scope) == "10.0.0.1"
    settings.WSREJECT = {**settings.WSREJECT, "NUM_PROXIES": 1}
    assert client_ip(scope) == "198.51.100.7"
    settings.WSREJECT = {**settings.WSREJECT, "NUM_PROXIES": 2}
    assert client_ip(scope) == "203.0.113.9"
    settings.WSREJECT = {**settings.WSREJECT, "NUM_PROXIES": 5}
    assert client_ip(scope) == "203.0.113.9", "never further left than the header goes"


def test_endpoint_name():
    class App:
        consumer_class = RoomConsumer

    assert endpoint_name(RoomConsumer()) == endpoint_name(RoomConsumer) == endpoint_name(App())
    assert endpoint_name(RoomConsumer()) != endpoint_name(OtherConsumer())


def test_throttle_denies_anonymous_users_with_429_not_401(clock):
    throttle = Throttle("1/60s")
    throttle.check(scope_for(), None)
    assert throttle.check(scope_for(), None).status_code == 429


def test_a_failing_throttle_cache_refuses_everyone(settings):
    class Broken:
        def add(self, *args, **kwargs):
            raise RuntimeError("cache is gone")

    throttle = Throttle("100/60s")
    throttle.get_cache = lambda: Broken()
    with pytest.raises(ConnectionError):
        throttle.check(scope_for(), None)


def test_throttle_repr():
    assert repr(Throttle("3/60s")) == "Throttle(3/60s)"
    assert repr(Throttle("10/min")) == "Throttle(10/60s)"
