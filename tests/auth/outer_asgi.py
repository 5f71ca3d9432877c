"""The demo's routes inside the wsreject stack, inside Channels' ``AllowedHostsOriginValidator``
(as projects migrating from ``AuthMiddlewareStack`` often leave it), plus one endpoint whose
permission no model declares."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from project.asgi import django_asgi_app
from project.routing import websocket_routes
from wsreject.consumers import AuthorizedConsumer
from wsreject.middleware import DenialMiddlewareStack

MODERATE = "chat.moderate_rooms"


class ModeratorConsumer(AuthorizedConsumer, AsyncJsonWebsocketConsumer):
    """Needs a permission that only this consumer declares (created by ``migrate``)."""

    permission_required = MODERATE
    permission_names = {MODERATE: "Can moderate rooms over a WebSocket"}

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": self.scope["user"].get_username()})


routes = [path("ws/moderate/", ModeratorConsumer.as_asgi(), name="moderate"), *websocket_routes]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(DenialMiddlewareStack(URLRouter(routes))),
    }
)
