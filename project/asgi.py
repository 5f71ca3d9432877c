"""ASGI entry point of the demo: Django for HTTP, the wsreject stack for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from project.routing import websocket_routes  # noqa: E402
from wsreject.metrics import MetricsMiddleware  # noqa: E402
from wsreject.middleware import DenialMiddlewareStack  # noqa: E402

if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": MetricsMiddleware(DenialMiddlewareStack(URLRouter(websocket_routes))),
    }
)
