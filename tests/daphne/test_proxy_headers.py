"""``python -m wsreject.daphne --proxy-headers`` (issue 18 item 8).

Behind nginx (``proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for``) a client
writes the leftmost ``X-Forwarded-For`` entries itself and the proxy appends the
address it saw. Stock Daphne takes the leftmost: a client picks its own address and
walks past the throttle. Ours takes the entry ``--proxy-count`` places from the right;
undecodable forwarding headers are ignored, never a 500.
"""

from __future__ import annotations

import pytest

from tests.security.rawhttp import exchange
from tests.support.demo import DEMO_APP, prepare_demo
from tests.support.servers import running_server
from tests.support.wsclient import raw_handshake
from wsreject.daphne.forwarding import Forwarding

pytestmark = pytest.mark.server

LIMITED = "/ws/limited/"  # the demo's Throttle("3/60s"), anonymous clients by address


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return prepare_demo(tmp_path_factory.mktemp("proxy-demo"))


@pytest.fixture(scope="module")
def behind_proxy(demo):
    with running_server("daphne-wsreject", DEMO_APP, env=demo.env, extra_args=["--proxy-headers"]) as server:
        yield server


@pytest.fixture(scope="module")
def behind_two_proxies(demo):
    extra_args = ["--proxy-headers", "--proxy-count", "2"]
    with running_server("daphne-wsreject", DEMO_APP, env=demo.env, extra_args=extra_args) as server:
        yield server


async def statuses(server, forwarded_for: list[str]) -> list[int]:
    answers = []
    for value in forwarded_for:
        response = await raw_handshake(*server.address, LIMITED, [("X-Forwarded-For", value)])
        answers.append(response.status)
    return answers


async def test_a_spoofed_address_shares_the_real_clients_throttle_budget(behind_proxy):
    # Each handshake claims another address; the proxy appended the real one, 203.0.113.7.
    spoofed = [f"198.51.100.{n}, 203.0.113.7" for n in range(1, 6)]
    assert await statuses(behind_proxy, spoofed) == [101, 101, 101, 429, 429]
    # Without a spoofed entry the real client is just as refused ...
    assert await statuses(behind_proxy, ["203.0.113.7"]) == [429]
    # ... and another real client behind the same proxy has a budget of its own.
    assert await statuses(behind_proxy, ["198.51.100.1, 203.0.113.8"]) == [101]


async def test_proxy_count_two_takes_the_second_entry_from_the_right(behind_two_proxies):
    # client-written, real client (appended by the outer proxy), outer proxy (by the inner one)
    spoofed = [f"198.51.100.{n}, 203.0.113.9, 10.0.0.2" for n in range(1, 5)]
    assert await statuses(behind_two_proxies, spoofed) == [101, 101, 101, 429]


@pytest.mark.parametrize(
    "header",
    [
        b"X-Forwarded-For: \xff\xfe, 203.0.113.20",
        b"X-Forwarded-For: 203.0.113.21, \xc3\xa9",
        b"X-Forwarded-Proto: \xff",
        b"X-Forwarded-Port: \xff",
    ],
    ids=["for-leftmost", "for-rightmost", "proto", "port"],
)
def test_undecodable_forwarding_headers_are_not_a_500(behind_proxy, header):
    http = exchange(behind_proxy.address, b"GET /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n\r\n")
    assert http.status is not None and http.status < 500, http
    upgrade = (
        b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + header + b"\r\n\r\n"
    )
    websocket = exchange(behind_proxy.address, upgrade)
    assert websocket.status is not None and websocket.status < 500, websocket
    assert "Traceback" not in behind_proxy.log()


HEADERS = [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.7"), (b"x-forwarded-proto", b"https")]


@pytest.mark.parametrize(
    ("headers", "proxy_count", "client"),
    [
        pytest.param(HEADERS, 1, ["203.0.113.7", 0], id="rightmost"),
        pytest.param(HEADERS, 2, ["198.51.100.1", 0], id="second-from-right"),
        pytest.param(HEADERS, 3, ["10.9.9.9", 1234], id="fewer-entries-than-proxies"),
        pytest.param([(b"x-forwarded-for", b"a, b"), (b"x-forwarded-for", b"203.0.113.7")], 1, ["203.0.113.7", 0], id="two-header-lines"),
        pytest.param([(b"x-forwarded-for", b"unknown")], 1, ["10.9.9.9", 1234], id="not-an-address"),
        pytest.param([(b"x-forwarded-for", b"[2001:db8::1]")], 1, ["2001:db8::1", 0], id="bracketed-ipv6"),
        pytest.param([(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-port", b"99999")], 1, ["203.0.113.7", 0], id="bad-port"),
    ],
)
def test_forwarding_picks_the_trusted_entry(headers, proxy_count, client):
    forwarding = Forwarding(proxy_count=proxy_count)
    scope = {"type": "http", "headers": headers, "client": ["10.9.9.9", 1234], "scheme": "http"}
    forwarding.apply(scope)
    assert scope["client"] == client


@pytest.mark.parametrize(
    ("proto", "kind", "scheme"),
    [(b"https", "http", "https"), (b"https", "websocket", "wss"), (b"wss", "http", "https"), (b"gopher", "http", "http"), (b"\xff", "http", "http")],
)
def test_forwarded_proto(proto, kind, scheme):
    scope = {"type": kind, "headers": [(b"x-forwarded-proto", proto)], "client": ["10.9.9.9", 1], "scheme": "http" if kind == "http" else None}
    Forwarding().apply(scope)
    assert scope["scheme"] == (scheme if scheme != "http" or kind == "http" else None)
