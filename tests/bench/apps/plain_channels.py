"""The demo's endpoints written on stock Channels, the way its documentation teaches.

``AuthMiddlewareStack`` puts the session's user in ``scope["user"]``; a consumer that
refuses calls ``close()`` before ``accept()``. The server then answers its own bare
``403`` — stock Channels has no other way to refuse, so every denial here is a 403
(credential-less, a valid session without permission, a forged cookie alike), and an
unknown path is no denial at all (``URLRouter`` raises; the server logs a traceback and
answers 500), so the bench does not play that scenario here.

Same settings, database and sessions as the demo (``project.settings``); the echo
endpoint is the demo's own ``EchoConsumer``.

    uvicorn tests.bench.apps.plain_channels:application
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from project.chat.consumers import EchoConsumer, JsonConsumer
from project.chat.models import Room


class PrivateConsumer(JsonConsumer):
    """Logged-in users only."""

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close()
            return
        await self.accept()
        await self.send_json({"user": user.get_username()})


class RoomConsumer(JsonConsumer):
    """Users with ``chat.join_room``, into a room that exists; then the room's group."""

    joined = False

    @property
    def room_name(self) -> str:
        return self.scope["url_route"]["kwargs"]["name"]

    @database_sync_to_async
    def may_join(self) -> bool:
        user = self.scope["user"]
        return (
            user.is_authenticated
            and user.has_perm("chat.join_room")
            and Room.objects.filter(name=self.room_name).exists()
        )

    async def connect(self) -> None:
        if not await self.may_join():
            await self.close()
            return
        await self.channel_layer.group_add(f"room-{self.room_name}", self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json({"room": self.room_name, "user": self.scope["user"].get_username()})

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(f"room-{self.room_name}", self.channel_name)


websocket_routes = [
    path("ws/echo/", EchoConsumer.as_asgi()),
    path("ws/private/", PrivateConsumer.as_asgi()),
    path("ws/rooms/<slug:name>/", RoomConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_routes)),
    }
)
