"""Routings of the constructs issue 16 lists, each under the recommended stack."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path, re_path

from tests.core.asgi_apps import accept_app
from wsreject.middleware import DenialMiddlewareStack

from .generate import OtherAttributeWrapper, RewritePath


def opaque(router):
    """A project wrapper that hides the router it calls (a closure): nothing can see into it."""

    async def app(scope, receive, send):
        return await router(scope, receive, send)

    app._path_routing = True
    return app


behind_channels_auth = URLRouter([path("x/", accept_app, name="t-x"), path("y/", accept_app, name="t-y")])
behind_other_attribute = URLRouter([path("room/<int:number>/", accept_app, name="o-room")])
hidden = URLRouter([path("z/", accept_app, name="hidden-z")])
nested_stack = URLRouter([path("n/", accept_app, name="n")])
flagged = [
    re_path(r"(?i)^chat/(?:v1/)?(?P<room>[a-z]+)/$", accept_app, name="chat"),
    re_path(r"^(?:feed|news)/(?P<id>[0-9]+)/$", accept_app, name="feed"),
    path("num/<int:n>/", accept_app, name="num"),
]
routes = [
    re_path(r"^t/", AuthMiddlewareStack(behind_channels_auth)),
    path("o/", OtherAttributeWrapper(behind_other_attribute)),
    path("h/", opaque(hidden)),
    path("s/", DenialMiddlewareStack(nested_stack)),
    path("plain/", accept_app, name="plain"),
    *flagged,
]
application = DenialMiddlewareStack(RewritePath(URLRouter(routes)))
