"""Consumers that refuse in ``connect()`` with headers, served by real servers
(``tests.e2e.denial_path_app:application``) for :mod:`tests.e2e.test_denial_path`.

``/ws/sync/`` is a synchronous ``AuthorizedConsumer``, ``/ws/async/`` its async twin; both raise
``DenyHandshake(423, ..., headers=...)``. ``/ws/sync-close-code/`` is the sync one with
``denial_mode = "close_code"`` under a stack that says ``"http"`` (the consumer's attribute wins).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from wsreject import DenyHandshake  # noqa: E402
from wsreject.consumers import AuthorizedConsumer  # noqa: E402
from wsreject.middleware import DenialMiddleware, RouteNotFoundMiddleware  # noqa: E402

DETAIL = "The vault is locked"
HEADERS = {"Retry-After": "60", "X-Denied-By": "connect"}


def refusal() -> DenyHandshake:
    return DenyHandshake(423, DETAIL, headers=HEADERS)


class SyncVault(AuthorizedConsumer, WebsocketConsumer):
    def connect(self):
        raise refusal()


class AsyncVault(AuthorizedConsumer, AsyncWebsocketConsumer):
    async def connect(self):
        raise refusal()


class SyncBrowserVault(SyncVault):
    denial_mode = "close_code"


websocket = DenialMiddleware(
    RouteNotFoundMiddleware(
        URLRouter(
            [
                path("ws/sync/", SyncVault.as_asgi()),
                path("ws/async/", AsyncVault.as_asgi()),
                path("ws/sync-close-code/", SyncBrowserVault.as_asgi()),
            ]
        )
    ),
    denial_mode="http",
)
application = ProtocolTypeRouter({"http": django_application, "websocket": websocket})
