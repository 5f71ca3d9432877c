"""The app trusts the edge's vouch, in process against the demo's ``project.asgi.application``:
only from a configured proxy, only fresh, only for its own path, only for an active user; a
trusted vouch sets the user, skips the authenticators, the access rules and the throttles'
counting, and a ``decide()`` run (revocation's re-check) never takes it."""

from __future__ import annotations

import logging
import time

import pytest
from django.contrib.auth import get_user_model
from django.core import signing

from project.asgi import application
from wsreject import reporting
from wsreject.decision import decide
from wsreject.edge.signing import VOUCH_HEADER, vouch
from wsreject.testing import HandshakeCommunicator

PROXY = ("127.0.0.1", 40000)
OUTSIDER = ("192.0.2.7", 40000)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch) -> None:
    monkeypatch.setattr(reporting, "_warned", {})


def vouched(path: str, user_id: object = None, query: bytes = b"") -> list[tuple[bytes, bytes]]:
    return [(VOUCH_HEADER.lower().encode(), vouch(path.encode(), query, user_id).encode())]


async def handshake(path: str, headers=(), client=PROXY):
    communicator = HandshakeCommunicator(application, path, headers=list(headers), client=client)
    return communicator, await communicator.handshake(timeout=2)


async def test_a_vouched_handshake_is_the_vouched_user_without_credentials(demo_tokens) -> None:
    alice = await get_user_model().objects.aget(username="alice")
    communicator, result = await handshake("/ws/private/", vouched("/ws/private/", alice.pk))
    assert result.accepted, (result.status_code, result.body)
    assert (await communicator.receive_json_from()) == {"user": "alice"}
    await communicator.disconnect()


async def test_vouched_handshakes_do_not_count_against_the_throttle(demo_tokens) -> None:
    for _ in range(5):  # the edge counted these: the app lets them through uncounted
        communicator, result = await handshake("/ws/limited/", vouched("/ws/limited/"))
        assert result.accepted, (result.status_code, result.body)
        await communicator.disconnect()
    for attempt in range(3):  # the budget (3/60s) is whole for the direct ones
        communicator, result = await handshake("/ws/limited/")
        assert result.accepted, f"direct attempt {attempt + 1}: {result.status_code}"
        await communicator.disconnect()
    _, result = await handshake("/ws/limited/")
    assert result.status_code == 429


async def test_the_access_rules_are_not_applied_again(demo_tokens) -> None:
    from wsreject.models import AccessRule

    await AccessRule.objects.acreate(endpoint="/ws/echo/", enabled=False, retry_after=9)
    _, direct = await handshake("/ws/echo/")
    assert direct.status_code == 503
    communicator, result = await handshake("/ws/echo/", vouched("/ws/echo/"))
    assert result.accepted, (result.status_code, result.body)
    await communicator.disconnect()


async def test_the_consumers_own_checks_still_run(demo_tokens) -> None:
    bob = await get_user_model().objects.aget(username="bob")  # not staff
    _, result = await handshake("/ws/staff/", vouched("/ws/staff/", bob.pk))
    assert result.status_code == 403


def untrusted(why: str, pk: object) -> tuple[list[tuple[bytes, bytes]], tuple[str, int]]:
    """Headers and client of a vouch for ``/ws/private/`` (user ``pk``) the app must not take."""
    if why == "from a peer that is not a configured proxy":
        return vouched("/ws/private/", pk), OUTSIDER
    if why == "issued for another path":
        return vouched("/ws/echo/", pk), PROXY
    if why == "issued for another query":
        return vouched("/ws/private/", pk, b"x=1"), PROXY
    if why == "forged":
        token = vouch(b"/ws/private/", b"", pk)
        return [(b"x-wsreject-vouch", (token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")).encode())], PROXY
    assert why == "twice"
    return vouched("/ws/private/", pk) * 2, PROXY


@pytest.mark.parametrize(
    "why",
    ["from a peer that is not a configured proxy", "issued for another path", "issued for another query", "forged", "twice"],
)
async def test_a_vouch_not_to_trust_is_decided_normally_and_logged_once(demo_tokens, caplog, why) -> None:
    alice = await get_user_model().objects.aget(username="alice")
    headers, client = untrusted(why, alice.pk)
    with caplog.at_level(logging.WARNING, logger="wsreject"):
        for _ in range(2):
            _, result = await handshake("/ws/private/", headers, client=client)
            assert result.status_code == 401, why
    warnings = [r for r in caplog.records if VOUCH_HEADER in r.getMessage()]
    assert len(warnings) == 1, why


async def test_an_expired_vouch_is_not_trusted(demo_tokens, monkeypatch) -> None:
    alice = await get_user_model().objects.aget(username="alice")
    headers = vouched("/ws/private/", alice.pk)
    later = time.time() + 11  # the demo's VOUCH_TTL is the default, 10 s
    monkeypatch.setattr(signing.time, "time", lambda: later)
    _, result = await handshake("/ws/private/", headers)
    assert result.status_code == 401


async def test_a_vouch_for_an_inactive_user_is_not_trusted(demo_tokens) -> None:
    alice = await get_user_model().objects.aget(username="alice")
    alice.is_active = False
    await alice.asave()
    _, result = await handshake("/ws/private/", vouched("/ws/private/", alice.pk))
    assert result.status_code == 401


async def test_decide_never_takes_a_vouch(demo_tokens) -> None:
    alice = await get_user_model().objects.aget(username="alice")
    scope = {"path": "/ws/private/", "headers": vouched("/ws/private/", alice.pk), "client": list(PROXY)}
    decision = await decide(scope)
    assert decision.status == 401


async def test_a_ticket_spent_at_the_edge_is_not_asked_for_again(demo_tokens) -> None:
    from django.test import AsyncRequestFactory

    from wsreject.authentication.tickets import issue_ticket
    from wsreject.edge.views import forward_auth

    alice = await get_user_model().objects.aget(username="alice")
    ticket, _ = issue_ticket(alice)
    target = f"/ws/private/?ticket={ticket}"
    request = AsyncRequestFactory().get("/wsreject/edge/auth/", headers={"X-Original-URI": target})
    request.META["REMOTE_ADDR"] = PROXY[0]
    answer = await forward_auth(request)  # the edge spends the ticket
    assert answer.status_code == 200 and answer["X-Auth-Request-User"] == "alice"
    _, again = await handshake(target)
    assert again.status_code == 401, "the ticket is single-use"
    communicator, result = await handshake(target, [(b"x-wsreject-vouch", answer[VOUCH_HEADER].encode())])
    assert result.accepted, (result.status_code, result.body)
    assert (await communicator.receive_json_from()) == {"user": "alice"}
    await communicator.disconnect()
