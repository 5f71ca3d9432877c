"""``decide(scope, user=...)`` agrees with a live handshake carrying that user's token, and the
trace records each check once, only when asked."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model

from tests.routing.test_decide import live
from wsreject import trace
from wsreject.decision import decide


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("username", ["alice", "bob", "carol", "dave"])
@pytest.mark.parametrize("path", ["/ws/rooms/lobby/", "/ws/rooms/nowhere/", "/ws/private/", "/ws/staff/", "/ws/echo/"])
def test_deciding_as_a_user_agrees_with_their_token(demo_tokens, username, path):
    user = get_user_model().objects.get(username=username)
    decision = async_to_sync(decide)({"path": path}, user=user)
    assert decision.status == live(path, demo_tokens[username]), (username, path)


@pytest.mark.django_db(transaction=True)
def test_a_presented_credential_does_not_change_the_given_user(demo_tokens):
    bob = get_user_model().objects.get(username="bob")
    headers = [(b"authorization", f"Bearer {demo_tokens['alice']}".encode())]
    decision = async_to_sync(decide)({"path": "/ws/rooms/lobby/", "headers": headers}, user=bob)
    assert (decision.status, decision.user.username) == (403, "bob")


@pytest.mark.django_db(transaction=True)
def test_the_trace_is_kept_only_inside_tracing(demo_tokens):
    alice = get_user_model().objects.get(username="alice")
    assert not trace.active()
    trace.record("outside")  # a no-op when off
    with trace.tracing() as steps:
        async_to_sync(decide)({"path": "/ws/rooms/lobby/"}, user=alice)
    checks = [step.check for step in steps]
    assert checks == [
        "Origin",
        "authentication",
        "access rules",
        "HasPermissions('chat.join_room',)",
        "object checks on <Room: lobby>",
    ]
    assert all(step.passed for step in steps)
    assert not trace.active()
    with trace.tracing() as again:
        pass
    assert again == []
