"""WebSocket routes of the demo: the "rooms" scenario at exactly its paths (``/ws/...``).

The same endpoints are mounted again under ``/ws/browser/``, where denials use
close-code mode (4000 + status, the detail as reason): what a browser page can read.
"""

from channels.routing import URLRouter
from django.urls import path

from project.chat import consumers
from wsreject.middleware import DenialMiddleware

endpoints = [
    path("echo/", consumers.EchoConsumer.as_asgi()),
    path("private/", consumers.PrivateConsumer.as_asgi()),
    path("rooms/<slug:name>/", consumers.RoomConsumer.as_asgi()),
    path("staff/", consumers.StaffConsumer.as_asgi()),
    path("maintenance/", consumers.MaintenanceConsumer.as_asgi()),
    path("limited/", consumers.LimitedConsumer.as_asgi()),
    path("broken/", consumers.BrokenConsumer.as_asgi()),
    path("teapot/", consumers.TeapotConsumer.as_asgi()),
    path("deny/<int:status>/", consumers.DenyConsumer.as_asgi()),
    path("subprotocol/", consumers.SubprotocolConsumer.as_asgi()),
]

websocket_routes = [
    path("ws/browser/", DenialMiddleware(URLRouter(endpoints), denial_mode="close_code")),
    path("ws/", URLRouter(endpoints)),
]
