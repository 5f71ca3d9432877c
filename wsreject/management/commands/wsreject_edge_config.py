"""``manage.py wsreject_edge_config {nginx,caddy} --listen HOST:PORT --app HOST:PORT [--backend HOST:PORT]``.

Prints an nginx or Caddy configuration in which the routing's WebSocket paths are
decided by the forward-auth view on ``--app`` and proxied to ``--backend`` (default:
``--app``) with the identity headers (``WSREJECT_EDGE["IDENTITY_HEADERS"]``).
Needs ``wsreject.edge.urls`` mounted (``include("wsreject.edge.urls")``).
"""

from __future__ import annotations

import posixpath
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from wsreject.edge.conf import edge_settings
from wsreject.edge.configs import address, caddy_config, nginx_config, websocket_prefixes

__all__ = ["Command"]


class Command(BaseCommand):
    help = "Print an nginx or Caddy configuration that asks wsreject before proxying WebSockets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("proxy", choices=["nginx", "caddy"])
        parser.add_argument("--listen", required=True, help="HOST:PORT the proxy listens on")
        parser.add_argument("--app", required=True, help="HOST:PORT of this Django app (serves the forward-auth view)")
        parser.add_argument("--backend", help="HOST:PORT of the WebSocket backend (default: --app)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            listen, app = address(options["listen"]), address(options["app"])
            backend = address(options["backend"] or options["app"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            auth_path = reverse("wsreject_edge:auth")
            nginx_path, denial_path = reverse("wsreject_edge:auth_nginx"), reverse("wsreject_edge:denial")
        except NoReverseMatch:
            raise CommandError('mount the endpoints first: path("wsreject/edge/", include("wsreject.edge.urls"))') from None
        edge_root = posixpath.commonpath([auth_path, nginx_path, denial_path]).rstrip("/") + "/"
        prefixes = websocket_prefixes(import_string(settings.ASGI_APPLICATION))
        headers = [name for name, _ in edge_settings().identity_headers]
        if options["proxy"] == "nginx":
            text = nginx_config(
                listen=listen, app=app, backend=backend, prefixes=prefixes, identity_headers=headers,
                auth_path=nginx_path, denial_path=denial_path, edge_root=edge_root,
            )  # fmt: skip
        else:
            text = caddy_config(
                listen=listen,
                app=app,
                backend=backend,
                prefixes=prefixes,
                identity_headers=headers,
                auth_path=auth_path,
                edge_root=edge_root,
            )
        self.stdout.write(text, ending="")
