"""Differential test: wsreject decides on the endpoint plain Channels reaches (issue 16, item 5).

For each generated routing (:mod:`tests.routing.generate`) and request spelling:

1. plain Channels (the same tree without wsreject) says which leaf and ``url_route`` the
   spelling reaches, or that no route matches;
2. ``wsreject.decide`` on the tree under wsreject names the same leaf with the same
   converted arguments (no route: 404), and a live in-process handshake through the
   real stack reaches that leaf (101) — never a 404 or 500 that plain Channels would
   not give;
3. a disabled rule on that endpoint (by its exact path, written differently from the
   request, and by its route name) refuses with 503, and a rule on another endpoint
   does not.

The rule store is the only part replaced: the compiled rules of each case are what
``acurrent_rules()`` returns (loading rules from the database is tested elsewhere,
and against real servers in ``test_servers.py``).

Environment: ``WSREJECT_ROUTING_EXAMPLES`` (routings; default 700 on CI, 60 locally),
``WSREJECT_ROUTING_SPELLINGS`` (spellings per routing, default 8),
``WSREJECT_ROUTING_SEED`` (default 20261205). Cases = routings x spellings; CI runs
at least 5 000.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.urls.exceptions import Resolver404
from hypothesis import HealthCheck, given, seed, settings

from wsreject import enforcement
from wsreject.decision import decide
from wsreject.rules import Rule, RuleSet, compile_rules

from .generate import Spec, build, canonical, mutate, specs, spell

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLES = int(os.environ.get("WSREJECT_ROUTING_EXAMPLES", "700" if ON_CI else "60"))
SPELLINGS = int(os.environ.get("WSREJECT_ROUTING_SPELLINGS", "8"))
SEED = int(os.environ.get("WSREJECT_ROUTING_SEED", "20261205"))
CASES: list[int] = []

Truth = tuple[int, tuple[Any, ...], tuple[tuple[str, Any], ...]] | None


def scope_for(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        **extra,
    }


async def plain_truth(app: Any, path: str) -> Truth:
    """Where plain Channels routes ``path``: (leaf, args, kwargs), or None for no route."""
    seen: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    try:
        await app(scope_for(path, **{"test.seen": seen, "test.accept": False}), receive, send)
    except (ValueError, Resolver404):
        assert not seen
        return None
    assert len(seen) == 1, seen
    return seen[0]  # type: ignore[no-any-return]


async def live(app: Any, path: str) -> tuple[int, Truth]:
    """A handshake through the real stack in process: (status, the leaf that ran)."""
    seen: list[Any] = []
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope_for(path, **{"test.seen": seen, "test.accept": True}), receive, send)
    kinds = [message["type"] for message in sent]
    closes = [message for message in sent if message["type"] == "websocket.close"]
    if closes and closes[0].get("code", 1000) >= 4000:
        status = closes[0]["code"] - 4000
    elif "websocket.http.response.start" in kinds:
        status = sent[kinds.index("websocket.http.response.start")]["status"]
    elif "websocket.accept" in kinds:
        status = 101
    else:
        status = 403  # closed before accept: the server's own 403
    return status, seen[0] if seen else None


def ruleset(version: str, *endpoints: str) -> RuleSet:
    rules = tuple(Rule(pk, endpoint, False, 7, "Down", 403, "") for pk, endpoint in enumerate(endpoints, 1))
    return compile_rules(version, rules)


@pytest.fixture(scope="module", autouse=True)
def enough_cases():
    """CI must have run at least 5 000 generated cases when the module ends."""
    yield
    if ON_CI and CASES:
        assert len(CASES) >= 5000, f"only {len(CASES)} generated cases ran"


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch) -> list[RuleSet]:
    """The rule set every handshake sees: ``rules[0]``."""
    current = [RuleSet("")]

    async def acurrent_rules() -> RuleSet:
        return current[0]

    monkeypatch.setattr(enforcement, "acurrent_rules", acurrent_rules)
    return current


def check_case(
    spec: Spec, plain: Any, guarded: Any, path: str, others: list[tuple[str, Truth, str | None]], rules: list[RuleSet], case: int
) -> None:
    rules[0] = RuleSet("")
    truth = async_to_sync(plain_truth)(plain, path)
    decision = async_to_sync(decide)(scope_for(path), application=guarded)
    status, reached = async_to_sync(live)(guarded, path)
    where = f"path={path!r} spec={spec!r}"
    if truth is None:
        assert decision.status == 404, f"decide: {decision.status} for no route; {where}"
        assert status == 404, f"live: {status} for no route; {where}"
        return
    assert decision.endpoint is not None, where
    got = (decision.endpoint.application.leaf_id, *decision.endpoint.arguments)
    assert got == truth, f"decide reached {got}, Channels {truth}; {where}"
    assert decision.admitted, f"decide refused {decision.status}; {where}"
    assert (status, reached) == (101, truth), f"live: {status} at {reached}, Channels {truth}; {where}"

    # A disabled rule on this endpoint refuses it: by its exact path (spelled canonically) ...
    rules[0] = ruleset(f"exact-{case}", canonical(path))
    assert async_to_sync(decide)(scope_for(path), application=guarded).status == 503, f"exact rule {canonical(path)!r}; {where}"
    assert async_to_sync(live)(guarded, path)[0] == 503, f"live, exact rule {canonical(path)!r}; {where}"
    # ... and by its route name.
    name = decision.endpoint.name
    if name is not None:
        rules[0] = ruleset(f"name-{case}", name)
        assert async_to_sync(decide)(scope_for(path), application=guarded).status == 503, f"name rule {name!r}; {where}"
    # A rule on another endpoint does not.
    for other_path, other_truth, other_name in others:
        if other_truth is None or other_truth == truth:
            continue
        endpoints = [canonical(other_path)] + ([other_name] if other_name and other_name not in decision.endpoint.names else [])
        rules[0] = ruleset(f"other-{case}-{other_path}", *endpoints)
        assert async_to_sync(decide)(scope_for(path), application=guarded).admitted, (
            f"rules {endpoints} on {other_truth}; {where}"
        )
        break


@pytest.mark.django_db
@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False, database=None)
@given(spec=specs())
def test_wsreject_decides_on_the_endpoint_channels_reaches(rules, spec):
    rng = random.Random(repr(spec))
    plain, guarded = build(spec, wsreject=False), build(spec, wsreject=True)
    leaves = spec.leaves()
    paths = []
    for index in range(SPELLINGS):
        chain, _ = rng.choice(leaves)
        text = spell(spec, chain, rng)
        paths.append(mutate(text, rng) if index % 4 == 3 else text)
    others = []
    for chain, leaf in leaves:
        other = spell(spec, chain, rng)
        others.append((other, async_to_sync(plain_truth)(plain, other), leaf.name))
    for path in paths:
        CASES.append(1)
        check_case(spec, plain, guarded, path, others, rules, len(CASES))
