"""AuthorizedConsumer (wsreject/consumers.py) on the four Channels WebSocket consumer bases."""

from __future__ import annotations

import json
import logging
import threading
import uuid

import pytest
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.urls import path

from project.chat.models import Room
from tests.helpers import bearer
from wsreject import DenyHandshake
from wsreject.authentication import CredentialsMiddleware, aresolve_user
from wsreject.consumers import AuthorizedConsumer
from wsreject.middleware import DenialMiddleware, RouteNotFoundMiddleware
from wsreject.permissions import HasPermissions, IsAuthenticated, IsStaff
from wsreject.testing import HandshakeCommunicator

from .backends import BACKENDS
from .util import challenge_for, denial_headers, disconnect

BASES = [WebsocketConsumer, AsyncWebsocketConsumer, JsonWebsocketConsumer, AsyncJsonWebsocketConsumer]
BASE_IDS = [base.__name__ for base in BASES]
ASYNC_BASES = [base for base in BASES if not base._sync]
SECRET = "hunter2-secret-internal-state"

by_base = pytest.mark.parametrize("base", BASES, ids=BASE_IDS)
by_async_base = pytest.mark.parametrize("base", ASYNC_BASES, ids=[b.__name__ for b in ASYNC_BASES])


# --- building consumers --------------------------------------------------------------------------


def greeting_connect(base):
    """connect(): accept, then send {"user": <username>} (loading the user properly)."""
    if base._sync:

        def connect(self):
            self.accept()
            self.send(text_data=json.dumps({"user": self.scope["user"].get_username()}))

    else:

        async def connect(self):
            await self.accept()
            user = await aresolve_user(self.scope)
            await self.send(text_data=json.dumps({"user": user.get_username()}))

    return connect


def raising_connect(base, exc):
    if base._sync:

        def connect(self):
            raise exc

    else:

        async def connect(self):
            raise exc

    return connect


def make(base, **attrs):
    """An AuthorizedConsumer on ``base`` with ``attrs`` (connect greets unless given)."""
    attrs.setdefault("connect", greeting_connect(base))
    return type(f"Probe{base.__name__}", (AuthorizedConsumer, base), attrs)


def room_object(self):
    try:
        return Room.objects.get(name=self.scope["url_route"]["kwargs"]["name"])
    except Room.DoesNotExist:
        raise DenyHandshake(404, "Room not found") from None


def application(consumer, *, denial=True):
    routes = URLRouter([path("ws/rooms/<slug:name>/", consumer.as_asgi()), path("ws/x/", consumer.as_asgi())])
    inner = CredentialsMiddleware(RouteNotFoundMiddleware(routes))
    # a short decision timeout: a consumer that never answers fails fast with 503
    return DenialMiddleware(inner, decision_timeout=0.5) if denial else inner


async def connect_as(consumer, token=None, path_="/ws/x/", *, denial=True, **kwargs):
    headers = bearer(token) if token else []
    communicator = HandshakeCommunicator(application(consumer, denial=denial), path_, headers=headers, **kwargs)
    result = await communicator.handshake(timeout=2)
    return communicator, result


async def expect_accepted(consumer, token, path_="/ws/x/", user=None):
    communicator, result = await connect_as(consumer, token, path_)
    assert result.accepted, (result.status_code, result.body)
    if user is not None:
        assert json.loads(await communicator.receive_from()) == {"user": user}
    await disconnect(communicator)


async def expect_denied(consumer, token, status, detail, path_="/ws/x/", **kwargs):
    communicator, result = await connect_as(consumer, token, path_, **kwargs)
    assert not result.accepted
    assert (result.status_code, result.body) == (status, json.dumps({"detail": detail}, separators=(",", ":")).encode())
    if status == 401:
        assert result.headers == denial_headers(result.body, (b"www-authenticate", challenge_for(detail)))
    await communicator.wait(timeout=1)  # the application ended, raising nothing
    return result


# --- declared checks -------------------------------------------------------------------------------


@by_base
async def test_login_required(demo_tokens, base):
    consumer = make(base, login_required=True)
    await expect_denied(consumer, None, 401, "Not authenticated")
    await expect_denied(consumer, "no-such-token", 401, "Invalid credentials")
    await expect_denied(consumer, demo_tokens["dave"], 401, "Invalid credentials")
    await expect_accepted(consumer, demo_tokens["alice"], user="alice")


@by_base
async def test_permission_required_str(demo_tokens, base):
    consumer = make(base, permission_required="chat.join_room", permission_denied_message="Members only")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Members only")
    await expect_denied(consumer, None, 401, "Not authenticated")
    await expect_accepted(consumer, demo_tokens["alice"], user="alice")


@by_base
async def test_permission_required_iterable(demo_tokens, base):
    both = make(base, permission_required=("chat.join_room", "chat.add_room"))
    await expect_denied(both, demo_tokens["alice"], 403, "Forbidden")
    one = make(base, permission_required=["chat.join_room"])
    await expect_accepted(one, demo_tokens["alice"], user="alice")


@by_base
async def test_permission_classes_composites(demo_tokens, base):
    staff_or_member = make(base, permission_classes=[IsStaff | HasPermissions("chat.join_room")])
    await expect_accepted(staff_or_member, demo_tokens["alice"], user="alice")
    await expect_accepted(staff_or_member, demo_tokens["carol"], user="carol")
    await expect_denied(staff_or_member, demo_tokens["bob"], 403, "Staff only")  # the left-most failure
    members_not_staff = make(base, permission_classes=(IsAuthenticated, ~IsStaff))
    await expect_denied(members_not_staff, demo_tokens["carol"], 403, "Forbidden")
    await expect_denied(members_not_staff, None, 401, "Not authenticated")
    await expect_accepted(members_not_staff, demo_tokens["bob"], user="bob")


@by_base
async def test_checks_run_in_order_login_first(demo_tokens, base):
    consumer = make(base, login_required=True, permission_required="chat.join_room", permission_classes=[IsStaff])
    await expect_denied(consumer, None, 401, "Not authenticated")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Forbidden")  # permission_required before classes
    await expect_denied(consumer, demo_tokens["alice"], 403, "Staff only")


@by_base
async def test_permission_object_is_looked_up_after_the_permission_check(demo_tokens, base):
    """No existence leak: without the permission, a missing room is a 403 like any other."""
    looked_up = []

    def get_permission_object(self):
        looked_up.append(self.scope["url_route"]["kwargs"]["name"])
        return room_object(self)

    consumer = make(
        base,
        permission_required="chat.join_room",
        permission_denied_message="Not allowed to join this room",
        get_permission_object=get_permission_object,
    )
    await expect_denied(consumer, demo_tokens["bob"], 403, "Not allowed to join this room", "/ws/rooms/nowhere/")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Not allowed to join this room", "/ws/rooms/lobby/")
    assert looked_up == []
    await expect_denied(consumer, demo_tokens["alice"], 404, "Room not found", "/ws/rooms/nowhere/")
    await expect_accepted(consumer, demo_tokens["alice"], "/ws/rooms/lobby/", user="alice")
    assert looked_up == ["nowhere", "lobby"]


@pytest.fixture
def object_backend(settings):
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    settings.TEST_OPEN_ROOMS = ["lobby"]
    return settings


@by_base
async def test_object_permission_required_with_an_object_backend(demo_tokens, object_backend, base):
    consumer = make(
        base,
        login_required=True,
        object_permission_required="chat.join_room",
        permission_denied_message="Room closed to you",
        get_permission_object=room_object,
    )
    await expect_accepted(consumer, demo_tokens["bob"], "/ws/rooms/lobby/", user="bob")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Room closed to you", "/ws/rooms/dev/")
    # the global permission alone does not open a room
    await expect_denied(consumer, demo_tokens["alice"], 403, "Room closed to you", "/ws/rooms/dev/")
    await expect_denied(consumer, None, 401, "Not authenticated", "/ws/rooms/lobby/")
    object_backend.TEST_OPEN_ROOMS = ["lobby", "dev"]
    await expect_accepted(consumer, demo_tokens["bob"], "/ws/rooms/dev/", user="bob")


@by_base
async def test_handle_no_permission_can_change_the_status(demo_tokens, base):
    def handle_no_permission(self, denial):
        if denial.status_code == 403:
            raise DenyHandshake(404, "Room not found")
        raise denial

    consumer = make(base, permission_required="chat.join_room", handle_no_permission=handle_no_permission)
    await expect_denied(consumer, demo_tokens["bob"], 404, "Room not found")
    await expect_denied(consumer, None, 401, "Not authenticated")
    await expect_accepted(consumer, demo_tokens["alice"], user="alice")


# --- connect() and its errors ---------------------------------------------------------------------


@by_base
async def test_connect_raising_deny_handshake(transactional_db, base):
    consumer = make(base, connect=raising_connect(base, DenyHandshake(409, "Conflict!", headers={"X-Why": "because"})))
    communicator, result = await connect_as(consumer)
    assert result.status_code == 409
    assert result.body == b'{"detail":"Conflict!"}'
    assert result.headers == denial_headers(result.body, (b"x-why", b"because"))
    await communicator.wait(timeout=1)


@by_base
async def test_connect_raising_an_unexpected_error_is_a_bare_500(transactional_db, base, caplog):
    caplog.set_level(logging.INFO)
    consumer = make(base, connect=raising_connect(base, RuntimeError(SECRET)))
    communicator, result = await connect_as(consumer)
    assert (result.status_code, result.body) == (500, b'{"detail":"Internal Server Error"}')
    assert all(SECRET.encode() not in value for _, value in result.headers)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert errors and errors[0].exc_info[1].args == (SECRET,)
    await communicator.wait(timeout=1)


@by_base
async def test_per_consumer_close_code_mode(transactional_db, base):
    consumer = make(base, login_required=True, denial_mode="close_code")
    communicator = HandshakeCommunicator(application(consumer), "/ws/x/")
    result = await communicator.handshake(timeout=2, close_code=True)
    assert (result.denial_mode, result.close_code, result.reason) == ("close_code", 4401, "Not authenticated")
    assert result.json() == {"detail": "Not authenticated"}
    await communicator.wait(timeout=1)

    raising = make(base, denial_mode="close_code", connect=raising_connect(base, DenyHandshake(409, "Conflict!")))
    communicator = HandshakeCommunicator(application(raising), "/ws/x/")
    result = await communicator.handshake(timeout=2, close_code=True)
    assert (result.denial_mode, result.close_code, result.reason) == ("close_code", 4409, "Conflict!")
    await communicator.wait(timeout=1)


@by_base
async def test_stack_close_code_mode_is_followed(transactional_db, base):
    consumer = make(base, login_required=True)
    app = DenialMiddleware(CredentialsMiddleware(consumer.as_asgi()), denial_mode="close_code")
    communicator = HandshakeCommunicator(app, "/ws/x/")
    result = await communicator.handshake(timeout=2, close_code=True)
    assert (result.denial_mode, result.close_code) == ("close_code", 4401)
    await communicator.wait(timeout=1)


@by_base
async def test_without_the_extension_the_fallback_is_used(transactional_db, base):
    consumer = make(base, login_required=True)
    communicator, result = await connect_as(consumer, denial_response=False)
    assert (result.denial_mode, result.status_code) == ("close", 403)
    await communicator.wait(timeout=1)


@by_base
async def test_consumer_sends_its_own_denial_without_denial_middleware(transactional_db, base):
    consumer = make(base, login_required=True)
    communicator, result = await connect_as(consumer, denial=False)
    assert (result.status_code, result.body) == (401, b'{"detail":"Not authenticated"}')
    await communicator.wait(timeout=1)

    raising = make(base, connect=raising_connect(base, DenyHandshake(409, "Conflict!")))
    communicator, result = await connect_as(raising, denial=False)
    assert (result.status_code, result.body) == (409, b'{"detail":"Conflict!"}')
    await communicator.wait(timeout=1)


# --- groups -----------------------------------------------------------------------------------------


@pytest.fixture
async def layer():
    channel_layer = get_channel_layer()
    await channel_layer.flush()
    yield channel_layer
    await channel_layer.flush()


@by_base
async def test_groups_are_discarded_on_denial(transactional_db, layer, base):
    group = f"probe-{uuid.uuid4().hex}"
    consumer = make(base, groups=[group], connect=raising_connect(base, DenyHandshake(403, "No")))
    communicator, result = await connect_as(consumer)
    assert result.status_code == 403
    await communicator.wait(timeout=1)
    assert not layer.groups.get(group)


@by_base
async def test_groups_are_joined_when_accepted(transactional_db, layer, base):
    """The counterpart: the group does hold the channel of an accepted consumer."""
    group = f"probe-{uuid.uuid4().hex}"
    consumer = make(base, groups=[group], connect=base.connect)
    communicator, result = await connect_as(consumer)
    assert result.accepted
    assert len(layer.groups.get(group, {})) == 1
    await disconnect(communicator)


@by_base
async def test_no_group_is_joined_when_authorization_fails(transactional_db, layer, base):
    group = f"probe-{uuid.uuid4().hex}"
    consumer = make(base, groups=[group], login_required=True)
    communicator, result = await connect_as(consumer)
    assert result.status_code == 401
    await communicator.wait(timeout=1)
    assert not layer.groups.get(group)


@by_base
async def test_a_refusal_decided_in_a_thread_never_touches_the_channel_layer(demo_tokens, layer, base, monkeypatch, thread_hop_counter):
    """Bob's token is not cached yet, so the checks run in a worker thread: still before Channels
    sets the consumer up. (A channel-layer read left pending by a refused consumer kept the task,
    and with channels_redis a Redis connection, alive for seconds after every such denial.)"""
    calls = []
    for name in ("new_channel", "group_add", "receive"):
        original = getattr(layer, name)

        def recording(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(layer, name, recording)
    group = f"probe-{uuid.uuid4().hex}"
    consumer = make(base, groups=[group], permission_required="chat.join_room", permission_denied_message="Members only")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Members only")
    assert "AuthorizedConsumer.authorize" in thread_hop_counter.items  # decided in a thread
    assert calls == []
    assert not layer.groups.get(group)


# --- cost of a refusal --------------------------------------------------------------------------------


@by_async_base
async def test_anonymous_on_login_required_is_refused_on_the_event_loop(base, thread_hop_counter, query_counter):
    """No credential, login required: decided on the event loop (and without the database: this
    test has no database access at all), with no thread hop at all — not even the one Channels'
    AsyncConsumer.dispatch makes per message (aclose_old_connections)."""
    authorize_threads = []

    def authorize(self):
        authorize_threads.append(threading.current_thread())
        AuthorizedConsumer.authorize(self)

    consumer = make(base, login_required=True, permission_required="chat.join_room", authorize=authorize)
    communicator, result = await connect_as(consumer)
    assert (result.status_code, result.body) == (401, b'{"detail":"Not authenticated"}')
    await communicator.wait(timeout=1)
    assert authorize_threads == [threading.current_thread()], "run once, on the event loop's thread"
    assert thread_hop_counter.count == 0, thread_hop_counter.items
    assert query_counter.count == 0


@by_async_base
async def test_a_token_costs_hops_only_while_cold(demo_tokens, base, thread_hop_counter):
    """Cold: the user is loaded before the consumer (one hop), the permission set in the checks'
    hop. Warm (both cached in the process): no hop at all."""
    consumer = make(base, login_required=True, permission_required="chat.join_room", permission_denied_message="Members only")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Members only")
    wsreject_hops = [name for name in thread_hop_counter.items if "close_old_connections" not in name and name != "no_op"]
    assert wsreject_hops == ["resolve_user", "AuthorizedConsumer.authorize"], wsreject_hops
    before = thread_hop_counter.count
    await expect_denied(consumer, demo_tokens["bob"], 403, "Members only")
    assert thread_hop_counter.items[before:] == []


@by_base
async def test_allow_any_consumer_accepts_anonymous(transactional_db, base):
    consumer = make(base)
    await expect_accepted(consumer, None, user="")


@by_base
async def test_object_permission_without_an_object_does_not_let_everyone_in(demo_tokens, object_backend, base):
    """object_permission_required declared, get_permission_object() left at its default (None):
    nothing can grant an object permission, so the handshake must not be accepted (fail closed)."""
    consumer = make(base, object_permission_required="chat.join_room", permission_denied_message="Room closed to you")
    await expect_denied(consumer, demo_tokens["bob"], 403, "Room closed to you")
    await expect_denied(consumer, None, 401, "Not authenticated")
