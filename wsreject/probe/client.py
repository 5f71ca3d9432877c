"""One WebSocket handshake over a plain or TLS socket, and what came of it.

:func:`probe` connects, sends the upgrade request, reads the answer and returns an
:class:`Accepted`, a :class:`Denied` or a :class:`CloseCodeDenied`; anything else (no
connection, a timeout, a malformed answer, TLS) raises :class:`ProbeFailure`.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass

from .frames import (
    Close,
    FrameError,
    Opcode,
    close_payload,
    encode_frame,
    parse_close,
    parse_frame,
)
from .http import HEAD_END, MalformedResponse, ResponseHead, body_framing, parse_head
from .request import UpgradeRequest

__all__ = [
    "CLOSE_CODE_BASE",
    "CLOSE_CODE_RANGE",
    "CLOSING_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "MAX_BODY",
    "MAX_HEAD",
    "MAX_MESSAGE",
    "NORMAL_CLOSURE",
    "Accepted",
    "CloseCodeDenied",
    "Denied",
    "Message",
    "Outcome",
    "ProbeFailure",
    "probe",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_WAIT = 0.5  # after an accept: how long to listen for a close-code denial
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
MAX_MESSAGE = 64 * 1024
CLOSE_CODE_RANGE = range(4000, 5000)
CLOSE_CODE_BASE = 4000
NORMAL_CLOSURE = 1000
CLOSING_TIMEOUT = 1.0  # waiting for the server's side of the closing handshake


class ProbeFailure(Exception):
    """Neither accepted nor denied: no connection, a timeout, TLS, a malformed answer (exit 2).

    ``head`` is the response head when one was read.
    """

    def __init__(self, message: str, head: ResponseHead | None = None) -> None:
        super().__init__(message)
        self.head = head


@dataclass(frozen=True)
class Message:
    """A complete data message received after the accept."""

    opcode: Opcode  # TEXT or BINARY
    payload: bytes

    @property
    def text(self) -> str | None:
        if self.opcode is not Opcode.TEXT:
            return None
        return self.payload.decode("utf-8", errors="replace")

    def detail(self) -> str | None:
        """The detail of a ``{"detail": ...}`` text message (non-string details as JSON), else None."""
        try:
            data = json.loads(self.payload) if self.opcode is Opcode.TEXT else None
        except ValueError:
            return None
        if not isinstance(data, dict) or set(data) != {"detail"}:
            return None
        detail = data["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)


@dataclass(frozen=True)
class Accepted:
    url: str
    head: ResponseHead
    subprotocol: str | None
    messages: tuple[Message, ...] = ()  # what arrived while listening
    close: Close | None = None  # the server's close frame, when it closed while we listened
    note: str | None = None  # something unusual seen after the accept
    exit_code = 0


@dataclass(frozen=True)
class Denied:
    url: str
    head: ResponseHead
    body: bytes
    truncated: bool = False  # the body is longer than the probe reads
    note: str | None = None  # how the body ended, when that is unusual
    exit_code = 1


@dataclass(frozen=True)
class CloseCodeDenied:
    """Accepted, then at once (a ``{"detail": ...}`` frame and) a close with 4000–4999."""

    url: str
    head: ResponseHead
    subprotocol: str | None
    close: Close
    detail: str | None  # from the frame; None when no frame came
    exit_code = 1

    @property
    def status(self) -> int:
        assert self.close.code is not None
        return self.close.code - CLOSE_CODE_BASE


Outcome = Accepted | Denied | CloseCodeDenied


class _Stream:
    """A socket with a receive buffer; every read is bounded by a deadline (monotonic)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False
        self.reset = False

    def fill(self, deadline: float) -> bool:
        """Receive more bytes into the buffer; False at EOF. ``TimeoutError`` at the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            self.reset = isinstance(exc, ConnectionResetError)
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def probe(
    request: UpgradeRequest,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    wait: float = DEFAULT_WAIT,
    insecure: bool = False,
) -> Outcome:
    """Perform ``request``'s handshake; after an accept, listen ``wait`` seconds for a close-code denial.

    ``timeout`` bounds connecting and reading the whole answer to the request.
    """
    target = request.target
    deadline = time.monotonic() + timeout
    sock = _connect(target.host, target.port, target.tls, insecure, deadline, timeout)
    try:
        stream = _Stream(sock)
        _send(stream, request.encode(), timeout)
        head = _read_head(stream, deadline, timeout)
        if head.status != 101:
            body, truncated, note = _read_body(stream, head, deadline, timeout)
            return Denied(target.url, head, body, truncated, note)
        subprotocol = _check_accept(request, head)
        return _listen(stream, target.url, head, subprotocol, time.monotonic() + wait)
    finally:
        sock.close()


def _connect(
    host: str, port: int, tls: bool, insecure: bool, deadline: float, timeout: float, alpn: tuple[str, ...] = ()
) -> socket.socket:
    """A connected socket (TLS-wrapped for ``tls``, offering ``alpn`` protocols), or :class:`ProbeFailure`."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.001))
    except socket.gaierror as exc:
        raise ProbeFailure(f"cannot resolve {host!r}: {exc.strerror}") from None
    except ConnectionRefusedError:
        raise ProbeFailure(f"connection refused by {where}") from None
    except TimeoutError:
        raise ProbeFailure(f"timed out after {timeout:g} s connecting to {where}") from None
    except OSError as exc:
        raise ProbeFailure(f"cannot connect to {where}: {exc.strerror or exc}") from None
    if not tls:
        return sock
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        reason = exc.verify_message or exc.reason
        raise ProbeFailure(f"TLS with {where}: certificate verification failed: {reason} (--insecure skips it)") from None
    except ssl.SSLError as exc:
        sock.close()
        raise ProbeFailure(f"TLS with {where} failed: {exc.reason or exc}") from None
    except TimeoutError:
        sock.close()
        raise ProbeFailure(f"timed out after {timeout:g} s in the TLS handshake with {where}") from None
    except OSError as exc:
        sock.close()
        raise ProbeFailure(f"TLS with {where} failed: {exc.strerror or exc}") from None


def _send(stream: _Stream, data: bytes, timeout: float) -> None:
    try:
        stream.send(data)
    except TimeoutError:
        raise ProbeFailure(f"timed out after {timeout:g} s sending the request") from None
    except OSError as exc:
        raise ProbeFailure(f"the connection failed while sending the request: {exc.strerror or exc}") from None


def _read_head(stream: _Stream, deadline: float, timeout: float) -> ResponseHead:
    while True:
        end = HEAD_END.search(stream.buffer)
        if end is not None and end.start() <= MAX_HEAD:
            raw = stream.take(end.end())[: end.start()]
            try:
                return parse_head(raw)
            except MalformedResponse as exc:
                raise ProbeFailure(f"malformed response: {exc}") from None
        if len(stream.buffer) > MAX_HEAD:
            raise ProbeFailure(f"malformed response: the response head exceeds {MAX_HEAD // 1024} KiB")
        received = len(stream.buffer)
        try:
            more = stream.fill(deadline)
        except TimeoutError:
            if received:
                raise ProbeFailure(
                    f"timed out after {timeout:g} s in the middle of the response head ({received} bytes received)"
                ) from None
            raise ProbeFailure(f"timed out after {timeout:g} s waiting for a response") from None
        except OSError as exc:
            raise ProbeFailure(f"the connection failed while reading the response: {exc.strerror or exc}") from None
        if not more:
            how = "reset the connection" if stream.reset else "closed the connection"
            if received:
                raise ProbeFailure(f"truncated response: the server {how} after {received} bytes of the response head")
            raise ProbeFailure(f"the server {how} without answering")


def _read_body(stream: _Stream, head: ResponseHead, deadline: float, timeout: float) -> tuple[bytes, bool, str | None]:
    """(body, truncated at MAX_BODY, a note on how it ended)."""
    try:
        framing = body_framing(head)
    except MalformedResponse as exc:
        raise ProbeFailure(f"malformed response: {exc}", head) from None
    try:
        if framing.chunked:
            return _read_chunked(stream, head, deadline)
        if framing.length is not None:
            wanted = min(framing.length, MAX_BODY)
            while len(stream.buffer) < wanted:
                if not stream.fill(deadline):
                    raise ProbeFailure(
                        f"truncated response: HTTP {head.status}, content-length {framing.length} "
                        f"but the connection closed after {len(stream.buffer)} bytes of body",
                        head,
                    )
            return stream.take(wanted), framing.length > MAX_BODY, None
        while len(stream.buffer) <= MAX_BODY and stream.fill(deadline):
            pass
    except TimeoutError:
        if framing.length is not None or framing.chunked:
            raise ProbeFailure(
                f"timed out after {timeout:g} s reading the body of HTTP {head.status} ({len(stream.buffer)} bytes received)",
                head,
            ) from None
        return stream.take(MAX_BODY), False, f"no content-length and the connection stayed open: body read for {timeout:g} s"
    except OSError as exc:
        raise ProbeFailure(f"the connection failed while reading the body: {exc.strerror or exc}", head) from None
    truncated = len(stream.buffer) > MAX_BODY
    return stream.take(MAX_BODY), truncated, None


def _read_chunked(stream: _Stream, head: ResponseHead, deadline: float) -> tuple[bytes, bool, str | None]:
    body = bytearray()

    def line() -> bytes:
        while b"\r\n" not in stream.buffer[:4096]:
            if len(stream.buffer) > 4096 or not stream.fill(deadline):
                raise ProbeFailure(f"truncated response: HTTP {head.status}, a chunked body that does not end", head)
        return stream.take(stream.buffer.index(b"\r\n") + 2)[:-2]

    while True:
        size_field = line().split(b";")[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ProbeFailure(f"malformed response: a chunk size {size_field[:20]!r}", head) from None
        if size == 0:
            while line():  # trailer fields, up to the blank line
                pass
            return bytes(body[:MAX_BODY]), len(body) > MAX_BODY, None
        while len(stream.buffer) < size + 2:
            if not stream.fill(deadline):
                raise ProbeFailure(f"truncated response: HTTP {head.status}, a chunk that does not end", head)
        body += stream.take(size + 2)[:-2]
        if len(body) > MAX_BODY:
            return bytes(body[:MAX_BODY]), True, None


def _check_accept(request: UpgradeRequest, head: ResponseHead) -> str | None:
    """The selected subprotocol, once the 101 is a valid accept of ``request`` (RFC 6455 §4.1)."""

    def fail(problem: str) -> ProbeFailure:
        return ProbeFailure(f"invalid handshake: the server answered 101 {problem}", head)

    if "websocket" not in head.tokens("upgrade"):
        raise fail("without 'Upgrade: websocket'")
    if "upgrade" not in head.tokens("connection"):
        raise fail("without 'Connection: Upgrade'")
    accepts = head.values("sec-websocket-accept")
    if accepts != [request.accept]:
        got = ", ".join(accepts) if accepts else "none"
        raise fail(f"with a wrong Sec-WebSocket-Accept (expected {request.accept}, got {got})")
    if head.values("sec-websocket-extensions"):
        raise fail(f"with extensions the probe did not offer: {head.value('sec-websocket-extensions')}")
    selected = head.values("sec-websocket-protocol")
    if not selected:
        return None
    if len(selected) > 1 or selected[0] not in request.subprotocols:
        offered = ", ".join(request.subprotocols) or "none"
        raise fail(f"selecting subprotocol {', '.join(selected)!r}, not one offered ({offered})")
    return selected[0]


def _listen(stream: _Stream, url: str, head: ResponseHead, subprotocol: str | None, deadline: float) -> Outcome:
    """Read what the server sends at once after its accept, then close politely with 1000."""
    messages: list[Message] = []
    close: Close | None = None
    note: str | None = None
    fragments: list[bytes] = []
    fragmented: Opcode | None = None  # the opcode of a message still arriving in fragments
    try:
        while close is None and _only_a_detail(messages):
            parsed = parse_frame(stream.buffer, MAX_MESSAGE)
            if parsed is None:
                if not stream.fill(deadline):
                    note = "the server dropped the connection without a close frame"
                    break
                continue
            frame, used = parsed
            del stream.buffer[:used]
            if frame.opcode is Opcode.CLOSE:
                close = parse_close(frame.payload)
            elif frame.opcode is Opcode.PING:
                stream.send(encode_frame(Opcode.PONG, frame.payload))
            elif frame.opcode is not Opcode.PONG:
                if (frame.opcode is Opcode.CONTINUATION) != (fragmented is not None):
                    raise FrameError("a continuation frame outside a message, or a message inside one")
                if fragmented is None:
                    fragmented = frame.opcode
                fragments.append(frame.payload)
                if sum(map(len, fragments)) > MAX_MESSAGE:
                    raise FrameError(f"a message over {MAX_MESSAGE} bytes")
                if frame.fin:
                    messages.append(Message(fragmented, b"".join(fragments)))
                    fragments, fragmented = [], None
    except TimeoutError:
        pass
    except FrameError as exc:
        raise ProbeFailure(f"protocol error after the accept: {exc}", head) from None
    except OSError as exc:
        note = f"the connection failed after the accept: {exc.strerror or exc}"
    if not stream.eof:
        _close_politely(stream, received_close=close is not None)
    if close is not None and close.code in CLOSE_CODE_RANGE and _only_a_detail(messages):
        detail = messages[0].detail() if messages else None
        return CloseCodeDenied(url, head, subprotocol, close, detail)
    return Accepted(url, head, subprotocol, tuple(messages), close, note)


def _only_a_detail(messages: list[Message]) -> bool:
    """Nothing yet, or only a ``{"detail": ...}`` message: a close-code denial is still possible."""
    return not messages or (len(messages) == 1 and messages[0].detail() is not None)


def _close_politely(stream: _Stream, *, received_close: bool) -> None:
    """Send a close frame with 1000 and wait briefly for the server's close (or EOF)."""
    try:
        stream.send(encode_frame(Opcode.CLOSE, close_payload(NORMAL_CLOSURE)))
        deadline = time.monotonic() + CLOSING_TIMEOUT
        while not received_close:
            parsed = parse_frame(stream.buffer, MAX_MESSAGE)
            if parsed is None:
                if not stream.fill(deadline):
                    return
                continue
            frame, used = parsed
            del stream.buffer[:used]
            received_close = frame.opcode is Opcode.CLOSE
        while stream.fill(deadline):  # the server closes the TCP connection first (RFC 6455 §7.1.1)
            stream.buffer.clear()
    except (OSError, FrameError):
        pass
