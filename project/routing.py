"""WebSocket routes of the demo: the "rooms" scenario at exactly its paths (``/ws/...``).

The same endpoints are mounted again under ``/ws/browser/``, where denials use
close-code mode (4000 + status, the detail as reason): what a browser page can read.
Route names let one access rule in the admin cover both mounts ("rooms").
"""

from channels.routing import URLRouter
from django.urls import path

from project.chat import consumers
from wsreject.middleware import DenialMiddleware

endpoints = [
    path("echo/", consumers.EchoConsumer.as_asgi(), name="echo"),
    path("private/", consumers.PrivateConsumer.as_asgi(), name="private"),
    path("rooms/<slug:name>/", consumers.RoomConsumer.as_asgi(), name="rooms"),
    path("staff/", consumers.StaffConsumer.as_asgi(), name="staff"),
    path("maintenance/", consumers.MaintenanceConsumer.as_asgi(), name="maintenance"),
    path("limited/", consumers.LimitedConsumer.as_asgi(), name="limited"),
    path("broken/", consumers.BrokenConsumer.as_asgi(), name="broken"),
    path("teapot/", consumers.TeapotConsumer.as_asgi(), name="teapot"),
    path("deny/<int:status>/", consumers.DenyConsumer.as_asgi(), name="deny"),
    path("subprotocol/", consumers.SubprotocolConsumer.as_asgi(), name="subprotocol"),
]

websocket_routes = [
    path("ws/browser/", DenialMiddleware(URLRouter(endpoints), denial_mode="close_code")),
    path("ws/", URLRouter(endpoints)),
]
