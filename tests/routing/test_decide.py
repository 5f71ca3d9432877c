"""``wsreject.decision.decide``: the live handshake's decision, again, without a socket.

Each answer is compared with what a live in-process handshake on the same
application gets, and the probe must leave no trace (no consumer built, no
throttle budget spent)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from project.asgi import application
from tests.helpers import bearer
from wsreject.decision import decide
from wsreject.models import AccessRule
from wsreject.testing import Accepted, HandshakeCommunicator


def live(path: str, token: str | None = None) -> int:
    async def run() -> int:
        communicator = HandshakeCommunicator(application, "/", headers=bearer(token) if token else [])
        communicator.scope.update(path=path, raw_path=path.encode())  # exactly this spelling
        result = await communicator.handshake(close_code=True)
        if isinstance(result, Accepted):
            await communicator.disconnect()
            return 101
        return result.status_code

    return async_to_sync(run)()


def probe(path: str, token: str | None = None, **kwargs):
    scope = {"path": path, "headers": bearer(token) if token else []}
    return async_to_sync(decide)(scope, **kwargs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "user", "status"),
    [
        ("/ws/echo/", None, 101),
        ("/ws/private/", None, 401),
        ("/ws/private/", "alice", 101),
        ("/ws/staff/", "alice", 403),
        ("/ws/nowhere/", None, 404),
        ("/ws//echo/", None, 101),
        ("/ws/browser/private/", None, 401),
    ],
)
def test_decide_agrees_with_a_live_handshake(demo_tokens, path, user, status):
    token = demo_tokens[user] if user else None
    decision = probe(path, token)
    assert decision.status == status
    assert live(path, token) == status
    if status != 404:
        assert decision.endpoint is not None
        assert decision.endpoint.name == path.strip("/").split("/")[-1]
    else:
        assert decision.endpoint is None


@pytest.mark.django_db(transaction=True)
def test_decide_reports_endpoint_arguments_and_user(demo_tokens):
    decision = probe("/ws//rooms/lobby/", demo_tokens["alice"])
    assert decision.endpoint is not None
    assert (decision.endpoint.name, decision.endpoint.kwargs, decision.endpoint.path) == (
        "rooms",
        {"name": "lobby"},
        "/ws/rooms/lobby/",
    )
    assert decision.user.username == "alice"


@pytest.mark.django_db(transaction=True)
def test_a_disabled_rule_is_decided_on_the_route_not_the_spelling(demo_tokens):
    AccessRule.objects.create(endpoint="/ws/rooms/lobby/", enabled=False, retry_after=30)
    for path in ("/ws/rooms/lobby/", "//ws///rooms/lobby/"):
        assert probe(path, demo_tokens["alice"]).status == 503
        assert live(path, demo_tokens["alice"]) == 503
    assert probe("/ws/browser/rooms/lobby/", demo_tokens["alice"]).status != 503  # the other mount: another endpoint
    assert probe("/ws/rooms/other/", demo_tokens["alice"]).status != 503  # other arguments


@pytest.mark.django_db(transaction=True)
def test_decide_peeks_at_a_throttle_without_spending_it(demo_tokens):
    limit = 0
    while probe("/ws/limited/", demo_tokens["alice"]).admitted and limit < 20:
        limit += 1  # probes alone never spend the budget
        if limit == 10:
            break
    assert limit == 10
    statuses = []
    for _ in range(10):
        statuses.append(live("/ws/limited/", demo_tokens["alice"]))
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429, statuses
    assert probe("/ws/limited/", demo_tokens["alice"]).status == 429  # the peek sees the spent budget
