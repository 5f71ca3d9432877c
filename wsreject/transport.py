"""How a denial leaves: one function, whatever the server can do.

* ``http`` — the server advertises ``websocket.http.response``: the response goes
  out as ``websocket.http.response.start`` + ``websocket.http.response.body``.
* ``close`` — no extension: ``websocket.close`` before accept, which every
  server answers with its own bare ``403``.
* ``close_code`` — accept, send one text frame ``{"detail": ...}``, then close
  with code ``4000 + status`` and the detail as reason (browsers can read this,
  never an HTTP status). The frame is there because some servers drop reasons.
"""

from __future__ import annotations

import logging
from typing import Any

from .conf import DENIAL_MODES, FALLBACKS, wsreject_settings
from .denial import DenialResponse, render_json
from .signals import connection_denied

logger = logging.getLogger("wsreject")

EXTENSION = "websocket.http.response"
CLOSE_CODE_BASE = 4000
MAX_REASON_BYTES = 123  # RFC 6455 §5.5: a control frame payload is 125 bytes, 2 are the code.


def supports_denial_response(scope: dict[str, Any]) -> bool:
    """Whether the server advertises the ASGI WebSocket Denial Response extension."""
    extensions = scope.get("extensions") or {}
    return EXTENSION in extensions


def resolve_mode(scope: dict[str, Any], mode: str | None = None) -> str:
    """The transport for this connection: ``"http"``, ``"close"`` or ``"close_code"``."""
    mode = mode or wsreject_settings.DENIAL_MODE
    if mode not in DENIAL_MODES:
        raise ValueError(f"unknown denial mode {mode!r}; expected one of {DENIAL_MODES}")
    if mode == "close_code":
        return "close_code"
    if supports_denial_response(scope):
        return "http"
    fallback = wsreject_settings.FALLBACK
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown WSREJECT FALLBACK {fallback!r}; expected one of {FALLBACKS}")
    return fallback


def truncate_utf8(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes without splitting a character.

    Lone surrogates, which UTF-8 cannot carry, become ``?``.
    """
    encoded = text.encode("utf-8", errors="replace")
    return encoded[:limit].decode("utf-8", errors="ignore")


def denial_messages(scope: dict[str, Any], response: DenialResponse, mode: str | None = None) -> tuple[str, list[dict]]:
    """The transport for this connection and the ASGI messages that send ``response`` on it."""
    transport = resolve_mode(scope, mode)
    if transport == "http":
        return transport, response.asgi_messages()
    if transport == "close_code":
        frame = render_json({"detail": response.detail}).decode()
        close = {"type": "websocket.close", "code": CLOSE_CODE_BASE + response.status_code, "reason": truncate_utf8(response.detail)}
        return transport, [{"type": "websocket.accept"}, {"type": "websocket.send", "text": frame}, close]
    return transport, [{"type": "websocket.close"}]


async def send_denial(scope: dict[str, Any], send, response: DenialResponse, mode: str | None = None) -> str:
    """Send ``response`` as this connection's transport allows; return the transport used.

    The caller must already have received ``websocket.connect``. Every denial is
    logged once on the ``wsreject`` logger and announced by ``connection_denied``.
    """
    transport, messages = denial_messages(scope, response, mode)
    for message in messages:
        await send(message)
    record_denial(scope, response, transport)
    return transport


def record_denial(scope: dict[str, Any], response: DenialResponse, transport: str) -> None:
    """Log the denial and send ``connection_denied``; a failing receiver is logged, not raised."""
    log_denial(scope, response, transport)
    for receiver, result in connection_denied.send_robust(sender=None, scope=scope, response=response, transport=transport):
        if isinstance(result, Exception):
            logger.error("connection_denied receiver %r failed", receiver, exc_info=result)


def log_denial(scope: dict[str, Any], response: DenialResponse, transport: str) -> None:
    logger.info(
        "WebSocket denied: path=%s status=%d detail=%s user=%s client=%s transport=%s",
        escape(scope.get("path", "")),
        response.status_code,
        escape(response.detail),
        known_user_id(scope),
        client_address(scope),
        transport,
    )


def escape(text: str) -> str:
    """Control characters as ``\\xNN`` so a value cannot forge log lines."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    if not client:
        return "-"
    host, port = client[0], client[1] if len(client) > 1 else None
    return escape(f"{host}:{port}" if port is not None else str(host))


def known_user_id(scope: dict[str, Any]) -> str:
    """The user's id when it is already loaded; never a query for the log's sake."""
    from .auth import loaded_user  # late: auth imports Django's auth models

    user = loaded_user(scope)
    if user is None or not getattr(user, "is_authenticated", False):
        return "-"
    return escape(str(user.pk))
