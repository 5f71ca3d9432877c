"""What wsreject reads from, and keeps in, an ASGI WebSocket scope.

Keys wsreject adds (every copy of the scope made by inner layers shares the
objects they point to):

* ``"wsreject.handshake"`` — the connection's :class:`~wsreject.handshake.Handshake`;
* ``"user"`` and ``"session"`` — as Channels' ``AuthMiddleware`` sets them;
* ``"wsreject.vouched"`` — True when the edge in front decided this handshake already
  (:mod:`wsreject.edge.trust`): access rules and throttles are not applied again.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import LazyObject, empty

from .types import Scope

__all__ = ["HANDSHAKE_KEY", "client_address", "escape", "header_values", "known_user_id", "loaded_user"]

HANDSHAKE_KEY = "wsreject.handshake"
VOUCHED_KEY = "wsreject.vouched"


def header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of request header ``name`` (lower-case bytes), in order."""
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


def loaded_user(scope: Scope) -> Any:
    """``scope["user"]`` if it is loaded already, else None (never triggers a query)."""
    user = scope.get("user")
    if isinstance(user, LazyObject) and getattr(user, "_wrapped", empty) is empty:
        return None
    return user


def escape(text: object) -> str:
    """Control characters as ``\\xNN`` so a value cannot forge log lines."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def client_address(scope: Scope) -> str:
    """``host:port`` of the client, escaped for logs, or ``-``."""
    client = scope.get("client")
    if not client:
        return "-"
    host, port = client[0], client[1] if len(client) > 1 else None
    return escape(f"{host}:{port}" if port is not None else str(host))


def known_user_id(scope: Scope) -> str:
    """The user's id when it is already loaded; never a query for the log's sake."""
    user = loaded_user(scope)
    if user is None or not getattr(user, "is_authenticated", False):
        return "-"
    return escape(str(user.pk))
