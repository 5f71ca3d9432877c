"""The denial: an HTTP answer to a WebSocket handshake, and the exception that carries it.

``raise DenyHandshake(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})``
anywhere before ``accept()`` and the client receives::

    HTTP/1.1 401 Unauthorized
    www-authenticate: Bearer
    content-length: 29
    content-type: application/json

    {"detail":"Not authenticated"}

which is byte for byte what FastAPI's ``http_exception_handler`` renders.
``raise DenyWithResponse(DenialResponse(418, headers=..., body=b"..."))`` sends an
arbitrary response instead. Headers are validated when the denial is built, so a
bad value fails where it was written, not on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Union

HeaderInput = Union[Mapping[Any, Any], Iterable[tuple[Any, Any]], None]
Headers = tuple[tuple[bytes, bytes], ...]

# RFC 9110 token characters for field names.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control bytes are refused in values: C0 (except TAB), DEL and C1. C1 matters
# because str.splitlines() treats \x85 as a line break (Daphne CVE-2026-44546).
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Framing headers are the transport's business, never the application's.
_RESERVED = frozenset({b"content-length", b"transfer-encoding", b"connection", b"upgrade"})


def status_phrase(status_code: int) -> str:
    """The standard reason phrase ("Unauthorized"), or "" for an unregistered code."""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


def body_allowed(status_code: int) -> bool:
    """HTTP forbids content on 1xx, 204, 205 and 304 responses (RFC 9110 §15)."""
    return not (status_code < 200 or status_code in (204, 205, 304))


def has_content_length(status_code: int) -> bool:
    """Whether the response states its length: all but 1xx, 204 and 304 (205 says 0), as Starlette."""
    return not (status_code < 200 or status_code in (204, 304))


def validate_status(status_code: Any) -> int:
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        raise TypeError(f"status_code must be an int, not {type(status_code).__name__}")
    if not 100 <= status_code <= 599:
        raise ValueError(f"status_code must be between 100 and 599, got {status_code}")
    return status_code


def _to_bytes(part: Any, what: str) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        try:
            return part.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"header {what} {part!r} is not latin-1; encode it (e.g. RFC 8187) first"
            ) from None
    raise TypeError(f"header {what} must be str or bytes, not {type(part).__name__}")


def normalize_headers(headers: HeaderInput) -> Headers:
    """Validate headers and return them as ASGI pairs with lower-case names.

    Accepts a mapping or an iterable of (name, value) pairs, each str or bytes;
    repeated names are kept (``[("Vary", "a"), ("Vary", "b")]``).
    """
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    result = []
    for item in items:
        try:
            raw_name, raw_value = item
        except (TypeError, ValueError):
            raise TypeError(f"a header must be a (name, value) pair, got {item!r}") from None
        name = _to_bytes(raw_name, "name").lower()
        value = _to_bytes(raw_value, "value")
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"header {name.decode()!r} has a control character in its value")
        if name in _RESERVED:
            raise ValueError(f"header {name.decode()!r} is set by the transport, not by a denial")
        result.append((name, value))
    return tuple(result)


class DenialResponse:
    """A complete HTTP response to a handshake: status, headers and body.

    ``media_type`` becomes ``content-type`` after ``content-length``, where
    Starlette puts it (a ``content-type`` in ``headers`` stays where it is).
    ``detail`` is what close-code mode and the log line show (it defaults to
    the status phrase); it is never put on the wire in HTTP mode.
    """

    __slots__ = ("status_code", "headers", "body", "detail", "media_type")

    def __init__(
        self,
        status_code: int,
        *,
        headers: HeaderInput = None,
        body: bytes | str = b"",
        detail: str | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = validate_status(status_code)
        self.headers = normalize_headers(headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
        if body and not body_allowed(status_code):
            raise ValueError(f"a {status_code} response cannot carry a body")
        self.body = body
        self.detail = status_phrase(status_code) if detail is None else str(detail)
        try:
            self.detail.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"detail {self.detail!r} is not valid Unicode text") from None
        has_type = any(name == b"content-type" for name, _ in self.headers)
        self.media_type = None if has_type or not body_allowed(status_code) else media_type

    def asgi_messages(self) -> list[dict[str, Any]]:
        """The two messages of the ASGI WebSocket Denial Response extension."""
        headers = list(self.headers)
        if has_content_length(self.status_code):
            headers.append((b"content-length", str(len(self.body)).encode("ascii")))
        if self.media_type:  # after content-length, where Starlette puts it
            headers.append((b"content-type", self.media_type.encode("latin-1")))
        return [
            {"type": "websocket.http.response.start", "status": self.status_code, "headers": headers},
            {"type": "websocket.http.response.body", "body": self.body},
        ]

    def __repr__(self) -> str:
        return f"<DenialResponse {self.status_code} {self.detail!r}>"


class DenyHandshake(Exception):
    """Refuse the handshake with ``status_code``, a JSON ``{"detail": ...}`` body and headers.

    ``detail`` defaults to the status phrase and may be anything JSON can
    encode, as with FastAPI's ``HTTPException``. It is rendered here, so a detail
    that cannot be sent fails where it was written.
    """

    def __init__(self, status_code: int, detail: Any = None, headers: HeaderInput = None) -> None:
        self.status_code = validate_status(status_code)
        self.detail = status_phrase(status_code) if detail is None else detail
        self.headers = normalize_headers(headers)
        try:
            self._body = render_json({"detail": self.detail})
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise ValueError(f"detail {self.detail!r} cannot be rendered as JSON: {exc}") from None
        super().__init__(status_code, self.detail)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def response(self) -> DenialResponse:
        """Render as FastAPI does: compact JSON, or no body where HTTP allows none."""
        text_detail = self.detail if isinstance(self.detail, str) else render_json(self.detail).decode()
        if not body_allowed(self.status_code):
            return DenialResponse(self.status_code, headers=self.headers, detail=text_detail)
        return DenialResponse(
            self.status_code,
            headers=self.headers,
            body=self._body,
            detail=text_detail,
            media_type="application/json",
        )


class DenyWithResponse(DenyHandshake):
    """Refuse the handshake with an arbitrary :class:`DenialResponse`."""

    def __init__(self, response: DenialResponse) -> None:
        if not isinstance(response, DenialResponse):
            raise TypeError("DenyWithResponse needs a DenialResponse")
        self._response = response
        super().__init__(response.status_code, response.detail, response.headers)

    def response(self) -> DenialResponse:
        return self._response


def render_json(data: Any) -> bytes:
    """JSON exactly as Starlette's ``JSONResponse`` writes it."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
