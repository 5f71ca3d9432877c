"""The handshake a proxy describes, as the WebSocket scope the ASGI server would build.

nginx (``auth_request``) sends ``X-Original-URI`` and ``X-Original-Method``;
Traefik and Caddy (``forwardAuth``/``forward_auth``) send ``X-Forwarded-Uri``,
``X-Forwarded-Method``, ``X-Forwarded-Host`` and ``X-Forwarded-Proto``. The
client's own credentials and handshake headers come as the proxy forwards them:
``Authorization``, ``Cookie``, ``Origin``, ``Sec-WebSocket-Protocol`` (and
``User-Agent``, for logs). The client's address is the last ``X-Forwarded-For``
entry (the one the proxy added), else ``X-Real-IP``. Only a trusted proxy's
description is read (:mod:`wsreject.edge.views` checks the caller first).
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from ..http import DENIAL_EXTENSION
from ..types import Scope
from .target import BadTarget, parse_target

__all__ = ["CLIENT_HEADERS", "described_scope"]

#: The client's headers copied into the scope (lower-case), in this order.
CLIENT_HEADERS = ("authorization", "cookie", "origin", "sec-websocket-protocol", "user-agent")


def _header(request: HttpRequest, name: str) -> str | None:
    return request.META.get("HTTP_" + name.upper().replace("-", "_"))


def _client(request: HttpRequest) -> str | None:
    forwarded = [hop.strip() for hop in (_header(request, "X-Forwarded-For") or "").split(",") if hop.strip()]
    address = forwarded[-1] if forwarded else _header(request, "X-Real-IP")
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address.strip().removeprefix("[").removesuffix("]")))
    except ValueError:
        raise BadTarget("X-Forwarded-For does not end with an IP address") from None


def described_scope(request: HttpRequest) -> Scope:
    """The WebSocket scope of the handshake ``request`` describes; :class:`BadTarget` when
    the description is missing or malformed (the view answers 400)."""
    uri = _header(request, "X-Original-URI")
    if uri is None:
        uri = _header(request, "X-Forwarded-Uri")
    if uri is None:
        raise BadTarget("no X-Original-URI or X-Forwarded-Uri: which request is this about?")
    method = _header(request, "X-Original-Method") or _header(request, "X-Forwarded-Method") or "GET"
    if method != "GET":
        raise BadTarget(f"a WebSocket handshake is a GET, not {method[:20]!r}")
    target = parse_target(uri)
    proto = (_header(request, "X-Forwarded-Proto") or "http").lower()
    if proto not in ("http", "https", "ws", "wss"):
        raise BadTarget("X-Forwarded-Proto is not http or https")
    host = _header(request, "X-Forwarded-Host") or _header(request, "Host") or ""
    headers: list[tuple[bytes, bytes]] = [(b"host", host.encode("latin-1"))] if host else []
    for name in CLIENT_HEADERS:
        value = _header(request, name)
        if value is not None:
            headers.append((name.encode("ascii"), value.encode("latin-1")))
    protocols = _header(request, "Sec-WebSocket-Protocol") or ""
    client = _client(request)
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "wss" if proto in ("https", "wss") else "ws",
        "path": target.path,
        "raw_path": target.raw_path,
        "root_path": "",
        "query_string": target.query_string,
        "headers": headers,
        "client": [client, 0] if client is not None else None,
        "server": None,
        "subprotocols": [p.strip() for p in protocols.split(",") if p.strip()],
        "extensions": {DENIAL_EXTENSION: {}},
    }
