"""How a denial leaves: one path, whatever the server can do.

The *denial mode* of a connection says how:

* ``http`` — the server advertises ``websocket.http.response``: the response goes
  out as ``websocket.http.response.start`` + ``websocket.http.response.body``.
* ``close`` — ``http`` asked for on a server without the extension (the
  ``FALLBACK``): ``websocket.close`` before accept, which every server answers
  with its own bare ``403``.
* ``close_code`` — accept, send one text frame ``{"detail": ...}``, then close
  with code ``4000 + status`` and the detail as reason (browsers can read this,
  never an HTTP status). The frame is there because some servers drop reasons.

:func:`deny` is the only way a denial is sent: it waits for ``websocket.connect``
when asked to, sends the messages of :func:`denial_messages`, treats a client
that left mid-denial as normal (a DEBUG line), and records the denial once
(:func:`~wsreject.reporting.record_denial`). It is the last step of the one
denial path, :meth:`wsreject.handshake.Handshake.refuse`; a synchronous consumer
takes that path on the event loop (``async_to_sync``), never a second sender.
"""

from __future__ import annotations

import asyncio
import logging

from .conf import DENIAL_MODES, FALLBACKS, wsreject_settings
from .denial import DenialResponse
from .http import DENIAL_EXTENSION, render_json
from .reporting import record_denial
from .scope import escape
from .types import Message, Receive, Scope, Send

__all__ = [
    "CLOSE_CODE_BASE",
    "MAX_REASON_BYTES",
    "denial_messages",
    "deny",
    "resolve_denial_mode",
    "supports_denial_response",
    "truncate_utf8",
]

logger = logging.getLogger("wsreject")

CLOSE_CODE_BASE = 4000
MAX_REASON_BYTES = 123  # RFC 6455 §5.5: a control frame payload is 125 bytes, 2 are the code.


def supports_denial_response(scope: Scope) -> bool:
    """Whether the server advertises the ASGI WebSocket Denial Response extension."""
    return DENIAL_EXTENSION in (scope.get("extensions") or {})


def resolve_denial_mode(scope: Scope, denial_mode: str | None = None) -> str:
    """How a denial leaves this connection: ``"http"``, ``"close"`` or ``"close_code"``."""
    mode = denial_mode or wsreject_settings.DENIAL_MODE
    if mode not in DENIAL_MODES:
        raise ValueError(f"unknown denial mode {mode!r}; expected one of {DENIAL_MODES}")
    if mode == "close_code":
        return mode
    if supports_denial_response(scope):
        return "http"
    fallback: str = wsreject_settings.FALLBACK
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown WSREJECT FALLBACK {fallback!r}; expected one of {FALLBACKS}")
    return fallback


def truncate_utf8(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes without splitting a character.

    Lone surrogates, which UTF-8 cannot carry, become ``?``.
    """
    return text.encode("utf-8", errors="replace")[:limit].decode("utf-8", errors="ignore")


def denial_messages(scope: Scope, response: DenialResponse, denial_mode: str | None = None) -> tuple[str, list[Message]]:
    """The resolved denial mode and the ASGI messages that send ``response`` in it."""
    mode = resolve_denial_mode(scope, denial_mode)
    if mode == "http":
        return mode, response.asgi_messages()
    if mode == "close_code":
        frame = render_json({"detail": response.detail}).decode()
        close = {
            "type": "websocket.close",
            "code": CLOSE_CODE_BASE + response.status_code,
            "reason": truncate_utf8(response.detail),
        }
        return mode, [{"type": "websocket.accept"}, {"type": "websocket.send", "text": frame}, close]
    return mode, [{"type": "websocket.close"}]


def _client_left(scope: Scope, exc: BaseException) -> None:
    logger.debug("WebSocket %s: the client left while its denial was sent (%r)", escape(scope.get("path", "")), exc)


async def deny(
    scope: Scope,
    send: Send,
    response: DenialResponse,
    *,
    denial_mode: str | None = None,
    receive: Receive | None = None,
) -> str | None:
    """Send ``response`` on this connection; return the denial mode used, or None if the client left.

    Pass ``receive`` when ``websocket.connect`` may not have been read yet:
    ASGI lets an application answer only after it.
    """
    if receive is not None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return None  # websocket.disconnect: nobody to answer
    mode, messages = denial_messages(scope, response, denial_mode)
    try:
        for message in messages:
            await send(message)
    except OSError as exc:  # uvicorn's ClientDisconnected and friends
        _client_left(scope, exc)
        return None
    record_denial(scope, response, mode)
    if mode == "http":
        # One turn of the event loop before the application returns: the server has closed
        # the connection by then. uvicorn's websockets-sansio (its default) otherwise logs
        # "ASGI callable returned without completing handshake." at ERROR after every denial.
        await asyncio.sleep(0)
    return mode
