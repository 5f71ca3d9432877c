"""What a handshake costs once the caches are warm: database queries and thread hops.

Measured in process, with the demo's local-memory cache (with Redis the cache
reads happen in one worker-thread hop instead, and no more queries are made).
Warm numbers, queries:

* no credential (``/ws/echo/``, or ``/ws/private/`` denied 401): **0**;
* alice on ``/ws/private/``: **0** — her token's owner and her user are cached;
* alice on ``/ws/rooms/lobby/``: **1** — the room (the object the consumer
  checks); her permission set and the access rules come from the cache;
* bob denied on ``/ws/rooms/lobby/`` (403): **0**, and no thread hop;
* the same with an access rule restricting ``/ws/*`` to a group: the same (the
  group ids are cached too).

Cold (first handshake after the cache is cleared) alice on ``/ws/rooms/lobby/``
costs 6: the rules (1), the token's owner (1), her user (1), her permissions
(2), the room (1); with the group rule 7 (her groups, 1 more).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches

from wsreject.cache.versions import local
from wsreject.models import AccessRule

from .conftest import connect

pytestmark = pytest.mark.django_db(transaction=True)


def cost(counter, path, token=None) -> tuple[int, int]:
    before = counter.count
    result = connect(path, token)
    return counter.count - before, getattr(result, "status_code", 101)


@pytest.mark.parametrize("with_rule", [False, True], ids=["no-rules", "group-rule"])
def test_queries_per_handshake_with_a_warm_cache(demo_tokens, query_counter, with_rule):
    if with_rule:
        rule = AccessRule.objects.create(endpoint="/ws/*")
        rule.groups.add(Group.objects.get(name="members"))
    alice = demo_tokens["alice"]
    caches["default"].clear()
    local.clear()  # the in-process layer in front of the local-memory cache
    cold = cost(query_counter, "/ws/rooms/lobby/", alice)
    assert cold == ((7, 101) if with_rule else (6, 101)), query_counter.items[-8:]

    assert cost(query_counter, "/ws/rooms/lobby/", alice) == (1, 101)  # the room
    assert cost(query_counter, "/ws/rooms/dev/", alice) == (1, 101)
    assert cost(query_counter, "/ws/private/", alice) == (0, 101)
    assert cost(query_counter, "/ws/private/") == (0, 401)
    cost(query_counter, "/ws/rooms/lobby/", demo_tokens["bob"])  # bob's sets, cold
    assert cost(query_counter, "/ws/rooms/lobby/", demo_tokens["bob"]) == (0, 403)


@pytest.mark.parametrize(
    "path,user,status",
    [("/ws/private/", None, 401), ("/ws/private/", "alice", 101), ("/ws/rooms/lobby/", "bob", 403), ("/ws/staff/", "alice", 403)],
)
def test_warm_decisions_cost_no_thread_hop(demo_tokens, thread_hop_counter, path, user, status):
    """With a local cache everything a decision reads is on the event loop: no worker thread for
    a refusal (not even Channels' own per-message hop), and none of wsreject's for an accept
    without an object (Channels still closes stale database connections before ``connect()``:
    ``aclose_old_connections``, ``no_op`` under its test communicator)."""
    token = demo_tokens[user] if user else None
    connect(path, token)  # warms the rules, the token's owner, the user, the permission sets
    before = thread_hop_counter.count
    result = connect(path, token)
    assert getattr(result, "status_code", 101) == status
    hops = thread_hop_counter.items[before:]
    if status == 101:
        hops = [hop for hop in hops if hop not in ("no_op", "close_old_connections")]
    assert hops == [], hops
