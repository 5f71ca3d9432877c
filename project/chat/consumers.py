"""The "rooms" scenario (shared/conformance/scenario.md) as Channels consumers."""

import json
from urllib.parse import parse_qsl

from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer, WebsocketConsumer

from wsreject import DenialResponse, DenyHandshake, DenyWithResponse
from wsreject.consumers import AuthorizedConsumer
from wsreject.permissions import BasePermission, IsStaff
from wsreject.throttling import Throttle

from .models import Room


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """Sends JSON as FastAPI's ``send_json`` does: compact, non-ASCII kept as is."""

    @classmethod
    async def encode_json(cls, content):
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


class EchoConsumer(AsyncWebsocketConsumer):
    """Case 1: anyone may connect; text comes back as sent."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class UserGreetingMixin:
    async def connect(self):
        await self.accept()
        await self.send_json({"user": self.scope["user"].get_username()})


class PrivateConsumer(UserGreetingMixin, AuthorizedConsumer, JsonConsumer):
    """Cases 2-5, 15: login required (401 "Not authenticated" / "Invalid credentials")."""

    login_required = True


class RoomConsumer(AuthorizedConsumer, JsonConsumer):
    """Cases 6-9: permission first, then the room's existence (no existence leak)."""

    permission_required = "chat.join_room"
    permission_denied_message = "Not allowed to join this room"

    def get_permission_object(self):
        try:
            return Room.objects.get(name=self.scope["url_route"]["kwargs"]["name"])
        except Room.DoesNotExist:
            raise DenyHandshake(404, "Room not found") from None

    @property
    def group_name(self) -> str:
        return f"room-{self.scope['url_route']['kwargs']['name']}"

    async def connect(self):
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        room = self.scope["url_route"]["kwargs"]["name"]
        await self.send_json({"room": room, "user": self.scope["user"].get_username()})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        message = {"user": self.scope["user"].get_username(), "text": str(content.get("text", ""))[:1000]}
        await self.channel_layer.group_send(self.group_name, {"type": "chat.message", "message": message})

    async def chat_message(self, event):
        await self.send_json(event["message"])


class StaffConsumer(UserGreetingMixin, AuthorizedConsumer, JsonConsumer):
    """Cases 10-11: staff only."""

    permission_classes = [IsStaff]


class MaintenanceConsumer(AsyncWebsocketConsumer):
    """Case 12: closed for everyone, with a hint when to come back."""

    async def connect(self):
        raise DenyHandshake(503, "Down for maintenance", headers={"Retry-After": "120"})


class LimitedConsumer(AuthorizedConsumer, JsonConsumer):
    """Case 13: three handshakes per client per minute."""

    permission_classes = [Throttle("3/60s")]

    async def connect(self):
        await self.accept()
        await self.send_json({"ok": True})


class Explodes(BasePermission):
    def has_permission(self, scope, consumer):
        raise RuntimeError("secret internal state: database password is hunter2")


class BrokenConsumer(AuthorizedConsumer, AsyncWebsocketConsumer):
    """Case 16: a check fails unexpectedly; the client sees a bare 500 and nothing of the error."""

    permission_classes = [Explodes]


class TeapotConsumer(WebsocketConsumer):
    """Case 17: an arbitrary response (a sync consumer, to show both kinds work)."""

    def connect(self):
        raise DenyWithResponse(
            DenialResponse(
                418,
                headers={"x-teapot": "short-and-stout"},
                body="I'm a teapot",
                media_type="text/plain; charset=utf-8",
            )
        )


class DenyConsumer(AsyncWebsocketConsumer):
    """Conformance: deny with the status in the path, ``?detail=`` and repeated ``?h=name:value``."""

    async def connect(self):
        status = self.scope["url_route"]["kwargs"]["status"]
        params = parse_qsl(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        detail = None
        headers = []
        for key, value in params:
            if key == "detail":
                detail = value
            elif key == "h":
                name, _, header_value = value.partition(":")
                headers.append((name, header_value))
        raise DenyHandshake(status, detail, headers=headers)


class SubprotocolConsumer(JsonConsumer):
    """Conformance: choose the first offered of chat.v1/chat.v2; offered but unsupported is 400."""

    supported = ("chat.v1", "chat.v2")

    async def connect(self):
        offered = self.scope.get("subprotocols") or []
        chosen = next((p for p in offered if p in self.supported), None)
        if offered and chosen is None:
            raise DenyHandshake(400, "Unsupported subprotocol")
        await self.accept(subprotocol=chosen)
        await self.send_json({"subprotocol": chosen})
