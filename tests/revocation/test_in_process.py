"""What revocation does to one application, in process (the local-memory profile): the consumer's
``on_access_revoked()`` is asked first, a plain consumer is closed by wsreject, a sync consumer
too, the signal and the log line, a throttle never closes, and nothing stays registered."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import URLRouter
from django.contrib.auth import get_user_model
from django.urls import path

from wsreject.authentication.tokens import issue_token
from wsreject.connections import registry
from wsreject.consumers import AuthorizedConsumer
from wsreject.middleware import DenialMiddlewareStack, LoginRequiredMiddleware
from wsreject.revocation import _recheckers, recheck
from wsreject.signals import connection_revoked
from wsreject.testing import Accepted, HandshakeCommunicator
from wsreject.throttling import Throttle

pytestmark = pytest.mark.django_db(transaction=True)  # the change must commit: bumps run on commit


class KeepsOpen(AuthorizedConsumer, AsyncWebsocketConsumer):
    login_required = True

    async def on_access_revoked(self, denial):
        await self.send(text_data=json.dumps({"revoked": denial.status_code}))  # and stays open


class DefaultClose(AuthorizedConsumer, AsyncWebsocketConsumer):
    login_required = True


class SyncDefault(AuthorizedConsumer, WebsocketConsumer):
    login_required = True


class Plain(AsyncWebsocketConsumer):
    pass


class Limited(AuthorizedConsumer, AsyncWebsocketConsumer):
    permission_classes = [Throttle("1/60s")]


application = DenialMiddlewareStack(
    URLRouter(
        [
            path("keeps/", KeepsOpen.as_asgi()),
            path("default/", DefaultClose.as_asgi()),
            path("sync/", SyncDefault.as_asgi()),
            path("plain/", LoginRequiredMiddleware(Plain.as_asgi())),
            path("limited/", Limited.as_asgi()),
        ]
    )
)


@database_sync_to_async
def user_with_token(name: str) -> tuple[object, str]:
    user = get_user_model().objects.create_user(name)
    return user, issue_token(user)[1]


@database_sync_to_async
def deactivate(user) -> None:
    user.is_active = False
    user.save()


async def opened(path: str, token: str | None = None) -> HandshakeCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    communicator = HandshakeCommunicator(application, path, headers=headers)
    assert isinstance(await communicator.handshake(), Accepted)
    return communicator


async def test_consumers_are_asked_first_others_are_closed(caplog):
    alice, token = await user_with_token("alice")
    bob, bob_token = await user_with_token("bob")
    keeps, default, sync, plain = [await opened(p, token) for p in ("/keeps/", "/default/", "/sync/", "/plain/")]
    bystander = await opened("/default/", bob_token)
    revoked = []

    def receiver(sender, **kwargs):
        revoked.append((kwargs["code"], kwargs["reason"], kwargs["user"].username))

    connection_revoked.connect(receiver)
    try:
        with caplog.at_level(logging.INFO, logger="wsreject"):
            await deactivate(alice)
            assert json.loads((await keeps.receive_output(5))["text"]) == {"revoked": 401}
            for communicator in (default, sync, plain):
                close = await communicator.receive_output(5)
                assert close == {"type": "websocket.close", "code": 4401, "reason": "Invalid credentials"}
    finally:
        connection_revoked.disconnect(receiver)
    assert sorted(revoked) == [(4401, "Invalid credentials", "alice")] * 3
    lines = [record.getMessage() for record in caplog.records if "access revoked" in record.getMessage()]
    assert len(lines) == 3 and all("closed with 4401" in line for line in lines)
    assert await bystander.receive_nothing(0.3)  # bob's connection was not touched
    assert await keeps.receive_nothing(0.1)  # kept open by its consumer
    for communicator in (default, sync, plain):  # the application heard the disconnect and returned
        await communicator.send_input({"type": "websocket.disconnect", "code": 4401})
        await communicator.wait(5)
    for communicator in (keeps, bystander):
        await communicator.disconnect()
    assert len(registry) == 0


async def test_a_spent_throttle_never_closes_an_open_connection():
    first = await opened("/limited/")
    second = HandshakeCommunicator(application, "/limited/")
    refused = await second.handshake()
    assert refused.status_code == 429  # the budget is spent: a new handshake is refused
    recheck(list(registry))
    workers = list(_recheckers[asyncio.get_running_loop()].workers)
    assert workers
    await asyncio.wait(workers, timeout=5)  # the re-check ran to its end
    assert await first.receive_nothing(0.1)
    await first.disconnect()
    assert len(registry) == 0


@database_sync_to_async
def ticket_for(name: str) -> tuple[object, str]:
    from wsreject.authentication.tickets import issue_ticket

    user = get_user_model().objects.create_user(name)
    return user, issue_ticket(user)[0]


@database_sync_to_async
def disable(endpoint: str) -> None:
    from wsreject.models import AccessRule

    AccessRule.objects.create(endpoint=endpoint, enabled=False)


async def test_a_ticket_connection_is_decided_again_as_its_user_not_by_its_spent_ticket():
    """A ticket is spent by its handshake: presenting it again would refuse every ticket connection
    on the first change that re-checks it. It is decided again for the user it was opened as."""
    carol, ticket = await ticket_for("carol")
    communicator = HandshakeCommunicator(application, f"/default/?ticket={ticket}")
    assert isinstance(await communicator.handshake(), Accepted)
    await disable("/sync/")  # every connection is decided again; carol's still passes
    assert await communicator.receive_nothing(1.0)
    await deactivate(carol)  # now she does not
    close = await communicator.receive_output(5)
    assert close == {"type": "websocket.close", "code": 4401, "reason": "Invalid credentials"}
    await communicator.send_input({"type": "websocket.disconnect", "code": 4401})
    await communicator.wait(5)
    assert len(registry) == 0
