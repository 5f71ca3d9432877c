"""Tiny test-only ASGI applications and stacks (some deliberately misconfigured, for the checks)."""

from __future__ import annotations

import asyncio
import json

from channels.auth import AuthMiddleware
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.contrib.auth import get_user_model
from django.urls import path

from wsreject.authentication import AuthenticationFailed, BaseAuthenticator, CredentialsMiddleware, aresolve_user, authorization
from wsreject.middleware import (
    DenialMiddleware,
    DenialMiddlewareStack,
    LoginRequiredMiddleware,
    OriginMiddleware,
    PermissionMiddleware,
    RouteNotFoundMiddleware,
)
from wsreject.permissions import IsAuthenticated
from wsreject.scope import loaded_user


async def accept_app(scope, receive, send):
    """Accepts, then sends the route it saw; ends on disconnect."""
    message = await receive()
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    route = scope.get("url_route", {})
    await send({"type": "websocket.send", "text": json.dumps({"path": scope["path"], "kwargs": route.get("kwargs", {})})})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def whoami_app(scope, receive, send):
    """Accepts and reports the user (loading it with aresolve_user)."""
    await receive()
    await send({"type": "websocket.accept"})
    user = await aresolve_user(scope)
    await send({"type": "websocket.send", "text": json.dumps({"user": user.get_username() if user else None})})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def lazy_probe_app(scope, receive, send):
    """Accepts without touching the user; reports whether it is loaded."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps({"loaded": loaded_user(scope) is not None})})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def sleeping_app(scope, receive, send):
    await asyncio.sleep(30)


class FixedTokens(BaseAuthenticator):
    """A custom authenticator without a database: ``Bearer good-token`` is an unsaved active user."""

    def get_credential(self, scope):
        found = authorization(scope)
        return found[1] if found and found[0].lower() == "bearer" and found[1].endswith("-token") else None

    def authenticate(self, scope, credential):
        if credential == "good-token":
            return get_user_model()(pk=10_000, username="tokenuser", is_active=True)
        if credential == "inactive-token":
            return get_user_model()(pk=10_001, username="sleepy", is_active=False)
        if credential == "expired-token":
            from wsreject.authentication import CredentialExpired

            raise CredentialExpired()
        if credential == "broken-token":
            raise RuntimeError("secret internal state")
        if credential == "drf-failed-token":
            from rest_framework.exceptions import AuthenticationFailed as DRFAuthenticationFailed

            raise DRFAuthenticationFailed("Token revoked")
        if credential == "other-token":
            return None  # not mine after all
        raise AuthenticationFailed()


class AsyncFixedTokens(FixedTokens):
    """The same, written ``async def`` (wsreject awaits it)."""

    async def authenticate(self, scope, credential):
        return FixedTokens.authenticate(self, scope, credential)


# --- stacks for the system checks (ASGI_APPLICATION points here) ----------------------------------

# E010: OriginMiddleware outside the DenialMiddleware.
origin_outside_denial = ProtocolTypeRouter(
    {"websocket": OriginMiddleware(DenialMiddleware(CredentialsMiddleware(URLRouter([path("ws/", accept_app)]))))}
)

# E010 for a route-level PermissionMiddleware and RouteNotFoundMiddleware with no DenialMiddleware at all.
no_denial_at_all = RouteNotFoundMiddleware(
    CredentialsMiddleware(URLRouter([path("ws/private/", LoginRequiredMiddleware(accept_app))]))
)

# W011: a permission check with nothing putting a user in the scope.
permission_without_credentials = DenialMiddleware(PermissionMiddleware(accept_app, IsAuthenticated))

# No W011: Channels' own AuthMiddleware provides the user.
permission_with_channels_auth = DenialMiddleware(AuthMiddleware(PermissionMiddleware(accept_app, IsAuthenticated)))

# Clean: the recommended stack with a nested, route-level check.
clean_application = ProtocolTypeRouter(
    {
        "websocket": DenialMiddlewareStack(
            URLRouter(
                [
                    path("ws/private/", LoginRequiredMiddleware(accept_app)),
                    path("ws/browser/", DenialMiddleware(URLRouter([path("x/", accept_app)]), denial_mode="close_code")),
                ]
            )
        )
    }
)


class CountingConsumer(AsyncWebsocketConsumer):
    """Counts how many instances were ever built."""

    instances = 0

    def __init__(self, *args, **kwargs):
        type(self).instances += 1
        super().__init__(*args, **kwargs)
