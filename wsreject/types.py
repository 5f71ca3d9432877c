"""The ASGI type aliases, in one place: what wsreject's modules pass between them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ASGIApp", "HeaderPairs", "Message", "Receive", "Scope", "Send"]

#: An ASGI connection scope (wsreject's keys: see :mod:`wsreject.scope`).
Scope = dict[str, Any]
#: An ASGI event, sent or received.
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Raw HTTP headers, as ASGI carries them.
HeaderPairs = tuple[tuple[bytes, bytes], ...]
