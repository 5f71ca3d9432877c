"""Daphne's WebSocket protocol, taught the ASGI *WebSocket Denial Response* extension.

:class:`DenialWebSocketProtocol` subclasses :class:`daphne.ws_protocol.WebSocketProtocol`
and changes what happens while the handshake is undecided, and how a connection ends:

* ``websocket.http.response.start`` / ``.body`` are buffered (body capped at
  :attr:`~DenialWebSocketProtocol.max_denial_body_size`) and written as one HTTP/1.1
  response with ``content-length`` and ``connection: close``; the TCP connection is then
  closed cleanly (FIN, never a reset).
* An application that sent ``websocket.http.response.start`` and then returns or raises
  before any body gets its status with an empty body (as uvicorn and hypercorn do). A
  second ``start`` is refused (``send()`` raises) without replacing the first.
* Any other broken message sequence, a status outside 200-599, and an application that
  returns, raises or is cancelled before it accepted or finished a denial, is answered
  ``500 Internal Server Error`` at once and logged with the message that broke it. The
  application's ``send()`` raises :class:`InvalidDenial`. No 1xx ever leaves as a denial.
* ``websocket.accept`` honours ``headers`` (validated like denial headers; the server's
  own ``Upgrade``, ``Connection`` and ``Sec-WebSocket-*`` cannot be overridden) and
  ``subprotocol``.
* An application that has neither accepted nor denied when the handshake times out is
  answered ``503`` ``{"detail":"Connection check timed out"}`` instead of autobahn's
  TCP abort or Daphne's bare 403.
* ``websocket.close`` before accept keeps Daphne's meaning (403), and every HTTP answer
  autobahn writes (its own handshake validation too) gets a standard status line and
  ``content-length``: no exception text ever reaches the status line.
* A non-ASCII ``Sec-WebSocket-Protocol`` is answered ``400`` before Daphne sees it.
* After accept, ``websocket.close`` passes its ``reason`` on to the client, and
  ``websocket.disconnect`` carries the client's ``code`` and ``reason``.
* No socket outlives its application: when it returns or raises after accept without
  closing, the connection is closed with 1011 (as hypercorn does).

Once the handshake has been answered, later messages from the application are dropped
silently, exactly as Daphne drops messages for a connection that is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import txaio
from autobahn.util import encode_truncate
from autobahn.websocket.types import ConnectionDeny
from daphne.ws_protocol import WebSocketProtocol

from ..http import (
    DENIAL_EXTENSION,
    FRAMING_HEADERS,
    RESPONSE_BODY,
    RESPONSE_START,
    body_allowed,
    has_content_length,
    header_problem,
    reason_phrase,
    render_json,
)
from ..types import Message

logger = logging.getLogger(__name__)

__all__ = ["DENIAL_EXTENSION", "DenialWebSocketProtocol", "InvalidDenial"]

Headers = list[tuple[bytes, bytes]]

#: Largest denial body buffered by default (``--max-denial-body-size``).
DEFAULT_MAX_DENIAL_BODY_SIZE = 1024 * 1024

#: Close codes of RFC 6455 §7.4.1 (and IANA's 1012-1014) an endpoint may send, besides 1000.
SERVER_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class InvalidDenial(ValueError):
    """The application broke the denial response extension's message sequence."""


class DuplicateStart(InvalidDenial):
    """A second ``websocket.http.response.start``: refused, the first one stands."""


def render_response(
    status: int, headers: Headers, body: bytes = b"", server_name: str = ""
) -> bytes:
    """Serialize one complete HTTP/1.1 response that ends the connection.

    The application's headers go out as given, except the framing headers
    (``content-length``, ``transfer-encoding``, ``connection``, ``upgrade``): the
    server knows the real length and always closes, so it writes those itself
    (never two of them). ``server`` is added,
    as Daphne does for HTTP, unless the application set one or the name is empty.
    """
    lines = [b"HTTP/1.1 %d %s" % (status, reason_phrase(status).encode("ascii"))]
    lines += [name + b": " + value for name, value in headers if name.lower() not in FRAMING_HEADERS]
    if server_name and not any(name.lower() == b"server" for name, _ in headers):
        lines.append(b"server: " + server_name.encode())
    if not body_allowed(status):  # 1xx, 204, 205, 304 (RFC 9110 §15)
        body = b""
    if has_content_length(status):  # all but 1xx, 204, 304: 205 says 0, as Starlette does
        lines.append(b"content-length: %d" % len(body))
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def plain_response(status: int, server_name: str = "", headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A server-generated error: the reason phrase as a text/plain body."""
    headers = [*headers, (b"content-type", b"text/plain; charset=utf-8")]
    return render_response(status, headers, reason_phrase(status).encode("ascii"), server_name)


def json_response(status: int, detail: str, server_name: str = "") -> bytes:
    """A server-generated denial in FastAPI's shape: compact ``{"detail": ...}``."""
    body = render_json({"detail": detail})
    return render_response(status, [(b"content-type", b"application/json")], body, server_name)


#: Headers of the 101 the server writes itself: an application's ``websocket.accept``
#: may not set them (``sec-websocket-protocol`` is the ``subprotocol`` key's).
HANDSHAKE_HEADERS = FRAMING_HEADERS | {
    b"sec-websocket-accept",
    b"sec-websocket-protocol",
    b"sec-websocket-extensions",
}


def is_denial_status(status: int) -> bool:
    """A final status a handshake may be denied with: 200-599 (never 1xx: a proxy that
    trusts a 101 switches the connection to tunnel mode)."""
    return 200 <= status <= 599


def validated_status(message: Message) -> int:
    status = message.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidDenial(f"{RESPONSE_START} has an invalid status: {status!r}")
    if not is_denial_status(status):
        raise InvalidDenial(f"{RESPONSE_START} has status {status}: a 1xx is not a denial")
    return int(status)


def header_pairs(message: Message) -> list[tuple[bytes, bytes]]:
    """The ``headers`` of ``message`` as checked ``(bytes, bytes)`` pairs."""
    kind = message.get("type")
    raw_headers = message.get("headers") or []
    if not isinstance(raw_headers, (list, tuple)):
        raise InvalidDenial(f"{kind} headers must be a list, not {type(raw_headers).__name__}")
    pairs = []
    for pair in raw_headers:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise InvalidDenial(f"{kind} header is not a [name, value] pair: {pair!r}") from None
        if not (isinstance(name, bytes) and isinstance(value, bytes)):
            raise InvalidDenial(f"{kind} header name and value must be bytes: {pair!r}")
        pairs.append((name, value))
    return pairs


def validated_headers(message: Message) -> Headers:
    headers = []
    for name, value in header_pairs(message):
        if name.lower() in FRAMING_HEADERS:
            continue  # the server writes its own framing (Starlette sends content-length)
        problem = header_problem(name, value)
        if problem is not None:
            raise InvalidDenial(f"{RESPONSE_START}: {problem}")
        headers.append((name, value))
    return headers


def validated_accept_headers(message: Message) -> dict[str, list[str]]:
    """The ``headers`` of ``websocket.accept`` (ASGI spec 2.1), in autobahn's form.

    Checked as denial headers are (token names, no control bytes: no response
    splitting), and none may replace what the server writes for the handshake
    itself. Values must be UTF-8, which autobahn writes back byte for byte."""
    headers: dict[str, list[str]] = {}
    for name, value in header_pairs(message):
        if name.lower() in HANDSHAKE_HEADERS:
            raise InvalidDenial(f"websocket.accept may not set the {name.decode('latin-1')!r} header")
        problem = header_problem(name, value)
        if problem is not None:
            raise InvalidDenial(f"websocket.accept: {problem}")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidDenial(f"websocket.accept header {name.decode('ascii')!r} is not UTF-8") from None
        headers.setdefault(name.decode("ascii"), []).append(text)
    return headers


@dataclass
class PendingDenial:
    """A denial response between its ``start`` and its last ``body`` message."""

    status: int
    headers: Headers
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    #: Whether a ``body`` message arrived: a denial cut off after one is incomplete.
    body_started: bool = False

    def add(self, chunk: bytes, limit: int) -> None:
        self.body_started = True
        if not body_allowed(self.status):
            return  # HTTP forbids a body here: drop it rather than fail
        self.size += len(chunk)
        if self.size > limit:
            raise InvalidDenial(
                f"denial response body exceeds {limit} bytes (the server's --max-denial-body-size)"
            )
        self.chunks.append(bytes(chunk))

    def render(self, server_name: str) -> bytes:
        return render_response(self.status, self.headers, b"".join(self.chunks), server_name)

    def detail(self) -> str | None:
        """The ``detail`` of a JSON body (for the log), or None."""
        if not any(name.lower() == b"content-type" and value.startswith(b"application/json") for name, value in self.headers):
            return None
        try:
            data = json.loads(b"".join(self.chunks))
        except ValueError:
            return None
        detail = data.get("detail") if isinstance(data, dict) else None
        return str(detail)[:200] if detail is not None else None


def undecodable(request: Any) -> str | None:
    """What in the request Daphne's ``onConnect`` would fail to decode (ASCII only), or None."""
    if not request.path.isascii():
        return "non-ASCII path"
    for name, value in request.headers.items():
        if not name.isascii():
            return "non-ASCII header name"
        if name == "sec-websocket-protocol" and not value.isascii():
            return "non-ASCII Sec-WebSocket-Protocol"
    return None


class DenialWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol plus HTTP denial responses (see the module docstring)."""

    #: Largest denial body buffered when the server does not say
    #: (``DenialServer.max_denial_body_size``); a larger one is answered 500.
    max_denial_body_size = DEFAULT_MAX_DENIAL_BODY_SIZE
    #: What a handshake left undecided past its timeout is answered with.
    timeout_status = 503
    timeout_detail = "Connection check timed out"

    # Per-connection state; class defaults until the handshake reaches Daphne.
    seen_by_daphne = False
    pending_denial: PendingDenial | None = None
    # Bytes for autobahn's failHandshake() to write instead of its bare status line.
    prepared_response: bytes | None = None

    # --- handshake --------------------------------------------------------------------

    def onConnect(self, request: Any) -> Any:
        """Refuse what Daphne cannot decode with a 400 (Daphne would answer 500), then let
        Daphne build the scope."""
        problem = undecodable(request)
        if problem is not None:
            logger.info("Refusing WebSocket handshake: %s", problem)
            raise ConnectionDeny(400, reason_phrase(400))
        self.seen_by_daphne = True
        return super().onConnect(request)

    def handshake_pending(self) -> bool:
        """Whether the application still owes an answer to the opening handshake."""
        return self.state == self.STATE_CONNECTING and "handshake_deferred" in vars(self)

    def answer_handshake(self, status: int, response: bytes, detail: str | None = None) -> bool:
        """Deny the pending handshake with ``response`` and close; ``False`` if too late.

        The handshake deferred is fired exactly once, through autobahn's own path
        (``failHandshake`` → :meth:`sendHttpErrorResponse` → clean ``dropConnection``).
        """
        if not self.handshake_pending():
            return False
        if not is_denial_status(status):  # never a 1xx, whoever chose it
            logger.error("WebSocket %s: refusing to send status %d as a denial; answering 500", self.path_for_log(), status)
            status, response, detail = 500, plain_response(500, self.factory.server), None
        deferred = self.handshake_deferred
        del self.handshake_deferred
        self.pending_denial = None
        self.prepared_response = response
        deferred.errback(ConnectionDeny(status, reason_phrase(status)))
        self.server.protocol_disconnected(self)
        details = self.action_details(status=status, detail=detail or reason_phrase(status))
        self.server.log_action("websocket", "rejected", details)
        return True

    def answer_internal_error(self, why: str) -> None:
        """Log ``why`` and answer the handshake 500, if it is still pending."""
        logger.error("WebSocket %s: %s", self.path_for_log(), why)
        self.answer_handshake(500, plain_response(500, self.factory.server))

    def answer_timeout(self) -> None:
        logger.warning(
            "WebSocket %s: application neither accepted nor denied in time; answering %d",
            self.path_for_log(),
            self.timeout_status,
        )
        response = json_response(self.timeout_status, self.timeout_detail, self.factory.server)
        self.answer_handshake(self.timeout_status, response)

    def sendHttpErrorResponse(self, code: int, reason: str, responseHeaders: Any = None) -> None:
        """Write the prepared response, or a well-formed plain one for autobahn's errors.

        Autobahn's version writes ``reason`` (which can carry exception text) into the
        status line and sends neither ``content-length`` nor a body.
        """
        response, self.prepared_response = self.prepared_response, None
        if self.state == self.STATE_CLOSED:
            return  # the client is gone: nothing to write to
        if response is None:
            if not is_denial_status(code):
                logger.error("Refusing to send status %d to a WebSocket handshake; answering 500", code)
                code, responseHeaders = 500, None
            extra = [(str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in responseHeaders or ()]
            response = plain_response(code, self.factory.server, extra)
        self.sendData(response)

    def onOpenHandshakeTimeout(self) -> None:
        """Answer 503 when the application is the one keeping the handshake waiting.

        Autobahn's batched timer rounds the deadline *down* to a whole second (a 5 s
        timeout fires after 4 to 5 s), so the application first gets what is left of
        its full timeout, counted from when Daphne received the request. A client that
        never finished sending its request still gets autobahn's abort.
        """
        if not self.handshake_pending():
            super().onOpenHandshakeTimeout()
            return
        remaining = self.openHandshakeTimeout - self.duration()
        if remaining > 0:
            self.openHandshakeTimeoutCall = txaio.call_later(remaining, self.onOpenHandshakeTimeout)  # type: ignore[attr-defined]
        else:
            self.openHandshakeTimeoutCall = None
            self.answer_timeout()

    # --- application messages ---------------------------------------------------------

    def handle_reply(self, message: Message) -> None:
        kind = message.get("type")
        if self.state == self.STATE_CLOSED:
            logger.debug("Dropping %s for %s: connection already answered", kind, self.path_for_log())
            return
        try:
            if kind == RESPONSE_START:
                self.start_denial(message)
            elif kind == RESPONSE_BODY:
                self.continue_denial(message)
            elif self.pending_denial is not None:
                raise InvalidDenial(f"{kind} after {RESPONSE_START}")
            elif kind == "websocket.accept":
                self.accept(message)
            elif kind == "websocket.send" and self.state == self.STATE_CONNECTING:
                raise InvalidDenial("websocket.send before websocket.accept")
            elif kind == "websocket.close" and self.state != self.STATE_CONNECTING:
                self.serverClose(code=message.get("code"), reason=message.get("reason"))
            else:
                super().handle_reply(message)
        except DuplicateStart as error:
            # The first start stands: the application's status goes out when it ends.
            logger.error(
                "WebSocket %s: invalid message from application: second %s refused, the first one's status %d stands: %s",
                self.path_for_log(), RESPONSE_START, self.pending_denial.status if self.pending_denial else 0, error,
            )
            raise
        except InvalidDenial as error:
            self.answer_internal_error(f"invalid message from application: {error}")
            raise

    def accept(self, message: Message) -> None:
        """``websocket.accept`` with its ``subprotocol`` and ``headers``, both checked first."""
        if not self.handshake_pending():
            raise InvalidDenial("websocket.accept after the handshake was answered")
        subprotocol = message.get("subprotocol")
        self.check_accepted_subprotocol(subprotocol)
        headers = validated_accept_headers(message)
        deferred = self.handshake_deferred
        del self.handshake_deferred
        deferred.callback((subprotocol, headers))  # autobahn's (protocol, headers) result
        logger.debug("WebSocket %s accepted by application", self.client_addr)

    def start_denial(self, message: Message) -> None:
        if self.pending_denial is not None:
            raise DuplicateStart(f"Expected ASGI message '{RESPONSE_BODY}' but got '{RESPONSE_START}'.")
        if not self.handshake_pending():
            raise InvalidDenial(f"{RESPONSE_START} after the handshake was accepted")
        self.pending_denial = PendingDenial(validated_status(message), validated_headers(message))

    def continue_denial(self, message: Message) -> None:
        denial = self.pending_denial
        if denial is None:
            raise InvalidDenial(f"{RESPONSE_BODY} without {RESPONSE_START}")
        body = message.get("body", b"")
        if not isinstance(body, (bytes, bytearray)):
            raise InvalidDenial(f"{RESPONSE_BODY} body must be bytes, not {type(body).__name__}")
        denial.add(bytes(body), self.body_limit())
        if not message.get("more_body", False):
            self.send_denial(denial)

    def send_denial(self, denial: PendingDenial) -> None:
        logger.debug("WebSocket %s denied with %d", self.path_for_log(), denial.status)
        self.answer_handshake(denial.status, denial.render(self.factory.server), denial.detail())

    def body_limit(self) -> int:
        return int(getattr(self.server, "max_denial_body_size", self.max_denial_body_size))

    def check_accepted_subprotocol(self, subprotocol: str | None) -> None:
        """Autobahn raises inside its deferred for an unoffered subprotocol, leaving the
        handshake stuck; refuse it here instead."""
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise InvalidDenial(f"accepted subprotocol must be a string, not {type(subprotocol).__name__}")
        if subprotocol is not None and subprotocol not in self.websocket_protocols:
            raise InvalidDenial(f"accepted subprotocol {subprotocol!r} was not offered by the client")

    def serverClose(self, code: int | None = None, reason: str | None = None) -> None:
        """Close after accept, passing the application's reason on (Daphne drops it).

        Autobahn's ``sendClose`` accepts only 1000 and 3000-4999 from an application and
        raises for the codes RFC 6455 gives servers (1001 going away, 1011 internal error,
        1013 try again later ...): those frames are sent directly."""
        code = 1000 if code is None else code
        if code in SERVER_CLOSE_CODES:
            self.sendCloseFrame(code=code, reasonUtf8=encode_truncate(reason, 123) if reason else None)
        else:
            self.sendClose(code=code, reason=reason or None)

    # --- application lifecycle and Daphne's periodic checks ---------------------------

    def application_finished(self, instance: asyncio.Future[Any]) -> None:
        """Done-callback of the application task: answer at once a handshake it left
        undecided (Daphne would wait for its checker or the timeout), and close a
        connection it accepted and left open (Daphne leaves it open for good)."""
        if instance.cancelled():
            how = "was cancelled"
        elif instance.exception() is not None:
            how = "raised"  # Daphne's application checker logs the traceback
        else:
            how, result = "returned", instance.result()
            if result is not None:
                logger.error("WebSocket %s: application should return None, returned %r", self.path_for_log(), result)
        if self.handshake_pending():
            denial = self.pending_denial
            if denial is not None and not denial.body_started:
                # start and no body: the application's status, empty (uvicorn, hypercorn)
                self.send_denial(denial)
            else:
                self.answer_internal_error(f"application {how} before accepting or denying the handshake")
        elif self.state == self.STATE_OPEN:
            logger.debug("WebSocket %s: application %s with the connection open; closing it", self.path_for_log(), how)
            # Hypercorn's choice: the application did not say how the session ends, so
            # the client is told it did not end normally (uvicorn drops the TCP: 1006).
            self.sendCloseFrame(code=1011)

    def handle_exception(self, exception: BaseException) -> None:
        """Called by Daphne's application checker; must not raise into its loop."""
        if self.handshake_pending():
            self.answer_internal_error("application raised before accepting or denying the handshake")
        elif self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=1011)

    def check_timeouts(self) -> None:
        """Daphne's periodic check, with a 503 for an undecided handshake and never an
        exception (Daphne calls ``serverReject()``/``serverClose()`` here even when
        those raise)."""
        try:
            if self.state == self.STATE_CONNECTING:
                if self.handshake_pending() and self.handshake_expired():
                    self.answer_timeout()
            else:
                super().check_timeouts()
        except Exception:
            logger.exception("WebSocket %s: timeout check failed", self.path_for_log())

    def handshake_expired(self) -> bool:
        """Past Daphne's connect timeout, or its whole-connection timeout (-1: none)."""
        limits = (self.server.websocket_connect_timeout, self.server.websocket_timeout)
        return any(limit >= 0 and self.duration() > limit for limit in limits)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """Settle a handshake the client walked away from, then Daphne's bookkeeping
        (skipped when autobahn refused the request before Daphne ever saw it)."""
        deferred = self.__dict__.pop("handshake_deferred", None)
        if deferred is not None:
            # Autobahn's failHandshake() finds the connection closed and writes nothing.
            deferred.errback(ConnectionDeny(499, "Client closed the connection"))
        if self.seen_by_daphne:
            self.report_close(code, reason)

    def report_close(self, code: int | None, reason: str | None) -> None:
        """Daphne's bookkeeping on close, with a ``websocket.disconnect`` that carries
        ``code`` and ``reason`` (Daphne sends only the code). A connection lost without
        a closing handshake is 1006 with an empty reason (autobahn's diagnostic text is
        not the peer's reason); a close frame without a code is 1005."""
        self.server.protocol_disconnected(self)
        logger.debug("WebSocket closed for %s", self.client_addr)
        if code is None:
            code = self.CLOSE_STATUS_CODE_NULL
        peer_reason = "" if code == self.CLOSE_STATUS_CODE_ABNORMAL_CLOSE else (reason or "")
        if not self.muted and hasattr(self, "application_queue"):
            self.application_queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": peer_reason})
        self.server.log_action("websocket", "disconnected", self.action_details())

    # --- logging helpers --------------------------------------------------------------

    def path_for_log(self) -> str:
        request = vars(self).get("request")
        return request.path if request is not None else "(no request)"

    def action_details(self, **extra: Any) -> dict[str, Any]:
        client = self.client_addr
        return {"path": self.request.path, "client": f"{client[0]}:{client[1]}" if client else None, **extra}
