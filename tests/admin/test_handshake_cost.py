"""What a handshake costs once the caches are warm: database queries and thread hops.

Measured in process, with the demo's local-memory cache (with Redis the rule
version is read in one worker-thread hop instead, and no more queries are made).
Warm numbers, queries:

* no credential (``/ws/echo/``, or ``/ws/private/`` denied 401): **0**;
* alice on ``/ws/private/``: **1** — her token, joined to her user;
* alice on ``/ws/rooms/lobby/``: **2** — her token and the room (the object the
  consumer checks); her permission set and the access rules come from the cache.
  Uncached, Django would add 2 (user and group permissions);
* the same with an access rule restricting ``/ws/*`` to a group: still **2**
  (the group ids are cached too).

Cold (first handshake after the cache is cleared) alice on ``/ws/rooms/lobby/``
costs 5: the rules (1), the token (1), her permissions (2), the room (1); with
the group rule 6 (her groups, 1 more).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches

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
    cold = cost(query_counter, "/ws/rooms/lobby/", alice)
    assert cold == ((6, 101) if with_rule else (5, 101))

    assert cost(query_counter, "/ws/rooms/lobby/", alice) == (2, 101)  # token + room
    assert cost(query_counter, "/ws/rooms/dev/", alice) == (2, 101)
    assert cost(query_counter, "/ws/private/", alice) == (1, 101)  # token
    assert cost(query_counter, "/ws/private/") == (0, 401)
    cost(query_counter, "/ws/rooms/lobby/", demo_tokens["bob"])  # bob's sets, cold
    assert cost(query_counter, "/ws/rooms/lobby/", demo_tokens["bob"]) == (1, 403)  # token


def test_warm_rules_cost_no_thread_hop(demo_tokens, thread_hop_counter):
    """With a local cache the rule version is read on the event loop: a handshake with
    no credential to an endpoint that needs one is refused without leaving it."""
    connect("/ws/private/")  # loads the rules once
    before = thread_hop_counter.count
    assert connect("/ws/private/").status_code == 401
    hops = thread_hop_counter.items[before:]
    assert not [hop for hop in hops if "rules" in hop or "check_user" in hop], hops
    assert len(hops) <= 1, hops  # what Channels and its test communicator do themselves
