"""The denial: an HTTP answer to a WebSocket handshake, and the exception that carries it.

``raise DenyHandshake(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})``
anywhere before ``accept()`` and the client receives::

    HTTP/1.1 401 Unauthorized
    www-authenticate: Bearer
    content-length: 30
    content-type: application/json

    {"detail":"Not authenticated"}

which is byte for byte what FastAPI's ``http_exception_handler`` renders.
``raise DenyWithResponse(DenialResponse(418, headers=..., body=b"..."))`` sends an
arbitrary response instead. Statuses, headers and details are checked when the
denial is built, so a bad value fails where it was written, never on the wire:
a denial is a client or server error (400-599), nothing else.

How any other exception raised before accept becomes a denial is decided by an
*exception handler* (``WSREJECT["EXCEPTION_HANDLER"]``, or the
``exception_handler`` argument of ``DenialMiddleware``), in the style of DRF's
``EXCEPTION_HANDLER``: ``handler(exc, scope)`` returns a :class:`DenialResponse`,
or None for "unexpected" (a logged 500). :func:`default_exception_handler`
understands Django's ``Http404``, ``PermissionDenied`` and
``SuspiciousOperation``, and answers ``503`` with ``Retry-After`` when a
dependency (the database, the cache, the channel layer) is unreachable.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404

from .conf import wsreject_settings
from .http import body_allowed, has_content_length, header_problem, render_json, status_phrase
from .reporting import UNCOMMITTED_TEST_DATA, log_unexpected, uncommitted_test_data, warn_rate_limited
from .types import HeaderPairs, Scope

__all__ = [
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
    "UNAVAILABLE_EXCEPTIONS",
    "UNAVAILABLE_RETRY_AFTER",
    "DenialResponse",
    "DenyHandshake",
    "DenyWithResponse",
    "ExceptionHandler",
    "HeaderInput",
    "closed_transport",
    "default_exception_handler",
    "denial_for_exception",
    "is_unavailable",
    "normalize_headers",
    "prebuilt_denial",
    "unavailable",
    "validate_status",
]

logger = logging.getLogger("wsreject")

HeaderInput = Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None
ExceptionHandler = Callable[[BaseException, Scope], "DenialResponse | None"]

INTERNAL_ERROR = "Internal Server Error"
SERVICE_UNAVAILABLE = "Service Unavailable"
#: Seconds a client is asked to wait when a dependency is unreachable.
UNAVAILABLE_RETRY_AFTER = 5


def validate_status(status_code: Any) -> int:
    """``status_code`` if it is a client or server error status (400-599), else raise."""
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        raise TypeError(f"status_code must be an int, not {type(status_code).__name__}")
    if not 400 <= status_code <= 599:
        raise ValueError(
            f"a denial's status must be a client or server error (400-599), got {status_code}; "
            "a handshake is accepted with accept(), never with a 1xx, 2xx or 3xx denial"
        )
    return status_code


def _to_bytes(part: Any, what: str) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        try:
            return part.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {what} {part!r} is not latin-1; encode it (e.g. RFC 8187) first") from None
    raise TypeError(f"header {what} must be str or bytes, not {type(part).__name__}")


def normalize_headers(headers: HeaderInput) -> HeaderPairs:
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
        problem = header_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        result.append((name, value))
    return tuple(result)


def _text(detail: Any) -> str:
    text = str(detail)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"detail {text!r} is not valid Unicode text") from None
    return text


@functools.lru_cache(maxsize=64)
def _valid_media_type(media_type: str) -> bool:
    """Whether ``media_type`` may be sent as ``content-type`` (a project uses a handful)."""
    try:
        return header_problem(b"content-type", media_type.encode("latin-1")) is None
    except UnicodeEncodeError:
        return False


class DenialResponse:
    """A complete HTTP response to a handshake: status, headers and body.

    ``media_type`` becomes ``content-type`` after ``content-length``, where
    Starlette puts it (a ``content-type`` in ``headers`` stays where it is).
    ``detail`` is what close-code mode and the log line show (it defaults to
    the reason phrase); it is never put on the wire in HTTP mode.
    """

    __slots__ = ("body", "detail", "headers", "media_type", "status_code")

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
        self.detail = status_phrase(status_code) if detail is None else _text(detail)
        has_type = any(name == b"content-type" for name, _ in self.headers)
        if media_type is not None and not _valid_media_type(media_type):
            raise ValueError(f"invalid media_type {media_type!r}")
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

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), decoded as latin-1."""
        key = name.lower().encode("latin-1")
        return next((value.decode("latin-1") for header, value in self.headers if header == key), None)

    def __repr__(self) -> str:
        return f"<DenialResponse {self.status_code} {self.detail!r}>"


class DenyHandshake(Exception):
    """Refuse the handshake with ``status_code``, a JSON ``{"detail": ...}`` body and headers.

    ``detail`` defaults to the status phrase and may be anything JSON can
    encode, as with FastAPI's ``HTTPException``. It is rendered here, so a detail
    that cannot be sent fails where it was written.
    """

    def __init__(self, status_code: int, detail: Any = None, headers: HeaderInput = None) -> None:
        self.detail = status_phrase(status_code) if isinstance(status_code, int) and detail is None else detail
        try:
            body = render_json({"detail": self.detail})
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise ValueError(f"detail {self.detail!r} cannot be rendered as JSON: {exc}") from None
        text = self.detail if isinstance(self.detail, str) else render_json(self.detail).decode()
        # The one validation of a denial: DenialResponse's (status, headers, body), here, once.
        self._response = DenialResponse(status_code, headers=headers, body=body, detail=text, media_type="application/json")
        self.status_code = self._response.status_code
        self.headers = self._response.headers
        super().__init__(status_code, self.detail)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def response(self) -> DenialResponse:
        """The response rendered (and validated) when the exception was built, as FastAPI
        renders it: compact JSON ``{"detail": ...}``."""
        return self._response


class DenyWithResponse(DenyHandshake):
    """Refuse the handshake with an arbitrary :class:`DenialResponse` (already validated: a
    prebuilt response can be raised again and again at no cost)."""

    def __init__(self, response: DenialResponse) -> None:
        if not isinstance(response, DenialResponse):
            raise TypeError("DenyWithResponse needs a DenialResponse")
        self._response = response
        self.status_code = response.status_code
        self.detail = response.detail
        self.headers = response.headers
        Exception.__init__(self, response.status_code, response.detail)


@functools.lru_cache(maxsize=256)
def _prebuilt(status_code: int, detail: Any, headers: HeaderPairs) -> DenialResponse:
    return DenyHandshake(status_code, detail, headers).response()


def prebuilt_denial(status_code: int, detail: Any = None, headers: HeaderPairs = ()) -> DenyHandshake:
    """``DenyHandshake(status_code, detail, headers)`` from a cache of rendered responses: the
    checks that refuse with the same answer again and again render it once."""
    try:
        return DenyWithResponse(_prebuilt(status_code, detail, headers))
    except TypeError:  # an unhashable detail (a dict): render it each time
        return DenyHandshake(status_code, detail, headers)


# --- exceptions raised before accept ---------------------------------------------------------


def _unavailable_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "a dependency cannot be reached", not "a bug"."""
    types: list[type[BaseException]] = [OperationalError, InterfaceError, ConnectionError, TimeoutError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:
        pass
    else:
        types += [RedisConnectionError, RedisTimeoutError]
    return tuple(types)


UNAVAILABLE_EXCEPTIONS = _unavailable_types()


def closed_transport(exc: BaseException) -> bool:
    """uvloop's ``RuntimeError`` for a write on a connection the peer already reset (where
    asyncio's own loop raises ``ConnectionError`` or nothing): a pooled Redis connection
    left over from an outage fails so on its first use after the server came back."""
    return (
        isinstance(exc, RuntimeError)
        and str(exc).startswith("unable to perform operation on")
        and str(exc).endswith("the handler is closed")
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says a dependency is unreachable."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, UNAVAILABLE_EXCEPTIONS) or closed_transport(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def unavailable() -> DenialResponse:
    """``503`` with ``Retry-After``: a dependency is down, come back soon."""
    return DenyHandshake(503, SERVICE_UNAVAILABLE, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}).response()


def default_exception_handler(exc: BaseException, scope: Scope) -> DenialResponse | None:
    """The denial for an exception raised before accept, or None when it is unexpected.

    Django's exceptions render with the status phrase only: their messages are
    written for developers and may hold internals. Raise :class:`DenyHandshake`
    to choose the detail.
    """
    if isinstance(exc, DenyHandshake):
        return exc.response()
    if isinstance(exc, Http404):
        return DenyHandshake(404).response()
    if isinstance(exc, PermissionDenied):
        return DenyHandshake(403).response()
    if isinstance(exc, SuspiciousOperation):
        logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
        return DenyHandshake(400).response()
    if is_unavailable(exc):
        if uncommitted_test_data(exc):  # a test's mistake, not an outage: say the fix, every time
            logger.warning("WebSocket handshake answered 503: %r; %s.", exc, UNCOMMITTED_TEST_DATA)
            return DenyHandshake(
                503, f"{SERVICE_UNAVAILABLE}: {UNCOMMITTED_TEST_DATA}", headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}
            ).response()
        warn_rate_limited(
            f"unavailable:{type(exc).__name__}",
            "A dependency is unreachable during a WebSocket handshake; answering 503: %r",
            exc,
        )
        return unavailable()
    return None


def denial_for_exception(exc: BaseException, scope: Scope, handler: ExceptionHandler | None = None) -> DenialResponse:
    """What to send for ``exc``: the handler's answer, else a logged 500 with nothing of ``exc``."""
    if handler is None:
        handler = wsreject_settings.exception_handler()
    try:
        response = handler(exc, scope)
    except Exception as handler_error:
        log_unexpected(f"The WebSocket exception handler {handler!r} failed; answering 500", handler_error)
        response = None
    if response is None:
        log_unexpected("Unhandled error before accept; answering 500", exc)  # one traceback, then a count
        return DenyHandshake(500, INTERNAL_ERROR).response()
    return response
