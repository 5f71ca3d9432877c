"""``/metrics`` of the demo on a real uvicorn with two worker processes (``PROMETHEUS_MULTIPROC_DIR``):
handshakes by endpoint, outcome and status, the decision latency, open connections, connections
closed by revocation; random paths add no series; the Grafana dashboard's queries name only what
is exported."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.revocation.support import bearer, close_all, hold
from tests.security.deployment import django_shell
from tests.support.demo import DEMO_APP, prepare_demo
from tests.support.servers import REPO_ROOT, running_server
from tests.support.wsclient import Accepted, Denied, ws_connect

pytestmark = pytest.mark.server

DASHBOARD = REPO_ROOT / "docs" / "grafana" / "wsreject-dashboard.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("metrics")
    multiproc = directory / "prometheus"
    multiproc.mkdir()
    data = prepare_demo(directory, {"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "WSREJECT_LOG_LEVEL": "WARNING"})
    with running_server("uvicorn-websockets", DEMO_APP, env=data.env, extra_args=["--workers", "2"], startup_timeout=90) as server:
        yield server, data.tokens, multiproc, data.env


def scrape(server) -> Samples:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(server.http_url("/metrics"), timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("wsreject_")
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(server, condition: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def handshake(server, path: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return ws_connect(server.url(path), headers=headers)


def test_handshakes_latency_and_open_connections(demo):
    server, tokens, multiproc, _env = demo
    before = scrape(server)

    async def scenario():
        bob = await handshake(server, "/ws/rooms/lobby/", tokens["bob"])
        assert isinstance(bob, Denied) and bob.status == 403
        anonymous = await handshake(server, "/ws/private/")
        assert isinstance(anonymous, Denied) and anonymous.status == 401
        browser = await handshake(server, "/ws/browser/private/")  # close-code mode: accept, then 4401
        assert isinstance(browser, Accepted)
        assert "Not authenticated" in str(await browser.recv())
        with pytest.raises(ConnectionClosed):
            await browser.recv()
        assert browser.close_code == 4401
        alice = await handshake(server, "/ws/browser/rooms/lobby/", tokens["alice"])
        assert isinstance(alice, Accepted)
        opened = wait_for(server, lambda s: value(s, "wsreject_open_connections", endpoint="rooms") == 1)
        assert value(opened, "wsreject_open_connections", endpoint="rooms") == 1
        await alice.close()

    asyncio.run(scenario())

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    def settled(samples: Samples) -> bool:
        return (
            delta(samples, "wsreject_handshakes_total", endpoint="private", outcome="denied", status="401") == 2
            and delta(samples, "wsreject_handshakes_total", endpoint="rooms", outcome="accepted", status="101") == 1
            and value(samples, "wsreject_open_connections", endpoint="rooms") == 0
        )

    after = wait_for(server, settled)
    assert delta(after, "wsreject_handshakes_total", endpoint="rooms", outcome="denied", status="403") == 1
    assert delta(after, "wsreject_handshakes_total", endpoint="private", outcome="denied", status="401") == 2
    # the close-code denial began with an accept: it is counted denied, never accepted
    assert delta(after, "wsreject_handshakes_total", endpoint="private", outcome="accepted", status="101") == 0
    assert delta(after, "wsreject_handshakes_total", endpoint="rooms", outcome="accepted", status="101") == 1
    assert value(after, "wsreject_open_connections", endpoint="rooms") == 0
    assert delta(after, "wsreject_decision_seconds_count", endpoint="rooms", outcome="accepted") == 1
    assert delta(after, "wsreject_decision_seconds_count", endpoint="private", outcome="denied") == 2
    assert value(after, "wsreject_decision_seconds_bucket", endpoint="private", outcome="denied", le="+Inf") >= 2
    assert list(multiproc.glob("*.db")), "the workers write their values where PROMETHEUS_MULTIPROC_DIR says"


def test_random_paths_add_no_series(demo):
    server, _tokens, _multiproc, _env = demo

    async def flood(paths: list[str]) -> list[int]:
        async def one(path: str) -> int:
            result = await handshake(server, path)
            assert isinstance(result, Denied)
            return result.status

        statuses: list[int] = []
        for start in range(0, len(paths), 25):  # bounded concurrency, 127.0.0.1 only
            statuses += await asyncio.gather(*(one(path) for path in paths[start : start + 25]))
        return statuses

    asyncio.run(flood(["/ws/nowhere/", "/ws/private/"]))  # the series a flood would touch exist
    before = wait_for(server, lambda s: value(s, "wsreject_handshakes_total", endpoint="(unmatched)", outcome="denied", status="404") >= 1)
    paths = [f"/{secrets.token_hex(6)}/{secrets.token_urlsafe(8)}" for _ in range(200)]
    paths += [f"/ws/private/{secrets.token_hex(4)}" for _ in range(50)]  # near a route, still no route
    assert set(asyncio.run(flood(paths))) == {404}
    target = value(before, "wsreject_handshakes_total", endpoint="(unmatched)", outcome="denied", status="404") + len(paths)
    after = wait_for(
        server, lambda s: value(s, "wsreject_handshakes_total", endpoint="(unmatched)", outcome="denied", status="404") >= target
    )
    assert value(after, "wsreject_handshakes_total", endpoint="(unmatched)", outcome="denied", status="404") == target
    assert set(after) == set(before), f"new series: {sorted(set(after) - set(before))[:5]}"
    assert not any(path in json.dumps(list(after)) for path in paths[:20])


def dashboard_queries() -> list[str]:
    dashboard = json.loads(Path(DASHBOARD).read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


#: A user of their own (no process has decided for them yet) holding the room permission directly.
FRANK = """
from django.contrib.auth.models import Permission, User
from wsreject.authentication.tokens import issue_token
frank = User.objects.create_user('frank')
frank.user_permissions.add(Permission.objects.get(content_type__app_label='chat', codename='join_room'))
result(issue_token(frank, name='metrics')[1])
"""


@pytest.fixture(scope="module")
def revoked(demo):
    """frank's room connection, then his permission removed from a third process: the demo has no
    Redis, so the worker holding it re-checks within ``MAX_STALENESS`` (5 s) and closes it."""
    server, _tokens, _multiproc, env = demo
    token = django_shell(env, FRANK)
    before = scrape(server)

    async def scenario() -> tuple[int | None, str | None]:
        held = await hold("frank in lobby", server, "/ws/rooms/lobby/", bearer(token))
        try:
            django_shell(env, "from django.contrib.auth.models import User\nUser.objects.get(username='frank').user_permissions.clear()\n")
            assert held.watcher is not None
            await asyncio.wait([held.watcher], timeout=15)
            return held.code, held.reason
        finally:
            await close_all([held])

    closed = asyncio.run(scenario())
    return before, closed


def test_a_revoked_connection_is_counted_by_endpoint_and_reason(demo, revoked):
    server, _tokens, _multiproc, _env = demo
    before, (code, reason) = revoked
    assert (code, reason) == (4403, "Not allowed to join this room"), "not closed by revocation"
    labels = {"endpoint": "rooms", "reason": "not_allowed"}
    target = value(before, "wsreject_revocations_total", **labels) + 1
    after = wait_for(server, lambda s: value(s, "wsreject_revocations_total", **labels) >= target)
    assert value(after, "wsreject_revocations_total", **labels) == target
    revocations = {labels for name, labels in after if name == "wsreject_revocations_total"}
    assert revocations == {(("endpoint", "rooms"), ("reason", "not_allowed"))}, revocations  # no path, nothing else


def test_the_grafana_dashboard_queries_only_exported_names(demo, revoked):
    server, tokens, _multiproc, _env = demo
    asyncio.run(handshake(server, "/ws/private/"))
    exported: dict[str, set[str]] = {}
    for name, labels in scrape(server):
        exported.setdefault(name, set()).update(label for label, _value in labels)
    queries = dashboard_queries()
    assert len(queries) >= 4
    for query in queries:
        names = set(re.findall(r"\bwsreject_[a-z_]+", query))
        assert names, query
        for name in names:
            assert name in exported, f"{name} (in {query!r}) is not exported; exported: {sorted(exported)}"
        used = {label for group in re.findall(r"(?:by|without)\s*\(([^)]*)\)", query) for label in group.split(",")}
        used |= set(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", query))
        known = set().union(*(exported[name] for name in names))
        assert {label.strip() for label in used if label.strip()} <= known, query
