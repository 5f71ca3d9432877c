"""The handshake over HTTP/2: RFC 8441's extended CONNECT, with the ``h2`` package (optional).

:func:`probe_h2` opens one HTTP/2 connection (cleartext with prior knowledge for ``ws://``,
TLS with ALPN ``h2`` for ``wss://``), waits for the server's SETTINGS to offer
``SETTINGS_ENABLE_CONNECT_PROTOCOL``, sends ``:method CONNECT`` with ``:protocol websocket``
and reads the answer: a 2xx is the accept (RFC 8441 §5; there is no 101 and no
``Sec-WebSocket-Accept``), anything else is a denial whose body ends with the stream.
After an accept the stream's DATA carries ordinary RFC 6455 frames, so the listening is
:mod:`.client`'s. :class:`H2Stream` is also what the test suite plays its cases through.

``h2`` is installed with ``pip install 'wsreject[http2]'``; without it :func:`require_h2`
raises :class:`~wsreject.probe.request.UsageError`.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .client import (
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT,
    MAX_BODY,
    Denied,
    Outcome,
    ProbeFailure,
    _connect,
    _listen,
    _Stream,
)
from .http import ResponseHead
from .request import UpgradeRequest, UsageError, mask_value

if TYPE_CHECKING:
    from h2.connection import H2Connection

__all__ = ["CONNECTION_SPECIFIC", "HTTP2", "INSTALL_HINT", "H2Stream", "connect_headers", "describe_h2", "probe_h2", "require_h2"]

HTTP2 = "HTTP/2"
# RFC 9113 §8.2.2: fields that are about the HTTP/1.1 connection are malformed in HTTP/2.
CONNECTION_SPECIFIC = frozenset({"connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding"})
INSTALL_HINT = "HTTP/2 needs the h2 package: pip install 'wsreject[http2]'"


def require_h2() -> None:
    """:class:`UsageError` with the install command when ``h2`` is missing."""
    try:
        import h2.connection  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


def connect_headers(request: UpgradeRequest) -> list[tuple[str, str]]:
    """The extended CONNECT's fields, in the order sent: the pseudo-headers (``:authority``
    from a ``Host`` header when one is given), then ``sec-websocket-version``, the offered
    subprotocols, Origin, cookies and the extra headers with their names lower-cased.

    A connection-specific field (``Connection``, ``Upgrade`` ...) is a :class:`UsageError`:
    HTTP/2 forbids them."""
    target = request.target
    authority = next((value for name, value in request.headers if name.lower() == "host"), target.host_header)
    fields = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https" if target.tls else "http"),
        (":path", target.resource),
        (":authority", authority),
        ("sec-websocket-version", "13"),
    ]
    if request.subprotocols:
        fields.append(("sec-websocket-protocol", ", ".join(request.subprotocols)))
    if request.origin is not None:
        fields.append(("origin", request.origin))
    if request.cookies:
        fields.append(("cookie", "; ".join(f"{name}={value}" for name, value in request.cookies)))
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == "host":
            continue
        if lowered in CONNECTION_SPECIFIC or (lowered == "te" and value.strip().lower() != "trailers"):
            raise UsageError(f"{name}: a connection-specific header, not allowed in HTTP/2 (RFC 9113 §8.2.2)")
        fields.append((lowered, value))
    return fields


def describe_h2(request: UpgradeRequest) -> list[str]:
    """The request's fields as text, credentials masked."""
    return [f"{name}: {mask_value(name, value)}" for name, value in connect_headers(request)]


def _encode(value: str) -> bytes:
    """Latin-1 where it fits (HTTP's obs-text), otherwise UTF-8: as the HTTP/1.1 request."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


class H2Stream(_Stream):
    """One extended CONNECT stream on an HTTP/2 connection of its own.

    After :meth:`open`, ``head`` is the response (``http_version`` "HTTP/2", no reason
    phrase). The stream's DATA arrives in ``buffer`` as :class:`_Stream`'s bytes do;
    ``eof`` means the server ended the stream (END_STREAM), ``reset`` that it reset it
    (``reset_code``) or the connection went away. :meth:`send` writes DATA on the stream.
    """

    def __init__(self, sock: socket.socket, connection: H2Connection) -> None:
        super().__init__(sock)
        self.connection = connection
        self.stream_id = 0
        self.head: ResponseHead | None = None
        self.interim: list[ResponseHead] = []  # 1xx responses before the final one
        self.reset_code: int | None = None
        self.connect_protocol: bool | None = None  # the server's SETTINGS_ENABLE_CONNECT_PROTOCOL
        self.settings_received = False

    @classmethod
    def open(cls, request: UpgradeRequest, *, timeout: float = DEFAULT_TIMEOUT, insecure: bool = False) -> H2Stream:
        """Connect, send the extended CONNECT and read the response head (the body is left)."""
        require_h2()
        from h2.config import H2Configuration
        from h2.connection import H2Connection

        fields = connect_headers(request)
        target = request.target
        deadline = time.monotonic() + timeout
        sock = _connect(target.host, target.port, target.tls, insecure, deadline, timeout, alpn=("h2",))
        if isinstance(sock, ssl.SSLSocket) and sock.selected_alpn_protocol() != "h2":
            sock.close()
            raise ProbeFailure(f"the server at {target.host_header} did not agree to HTTP/2 (ALPN h2) in the TLS handshake")
        stream = cls(sock, H2Connection(H2Configuration(client_side=True, header_encoding=None)))
        try:
            stream._start(fields, deadline, timeout)
        except BaseException:
            stream.close()
            raise
        return stream

    def _start(self, fields: Sequence[tuple[str, str]], deadline: float, timeout: float) -> None:
        self.connection.initiate_connection()
        self._flush()
        while not self.settings_received:
            if not self._receive(deadline, timeout, "waiting for the server's HTTP/2 SETTINGS") and not self.settings_received:
                how = "(ws:// needs cleartext HTTP/2 with prior knowledge)" if not isinstance(self.sock, ssl.SSLSocket) else ""
                raise ProbeFailure(f"the server closed the connection without HTTP/2 SETTINGS: it does not speak HTTP/2 here {how}".rstrip())
        if not self.connect_protocol:
            raise ProbeFailure(
                "the server does not offer WebSockets over HTTP/2: no SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)"
            )
        self.stream_id = self.connection.get_next_available_stream_id()
        from h2.exceptions import ProtocolError

        try:
            self.connection.send_headers(self.stream_id, [(name.encode("ascii"), _encode(value)) for name, value in fields])
        except ProtocolError as exc:  # a field HTTP/2 does not allow (h2 validates what it sends)
            raise ProbeFailure(f"the request cannot be sent over HTTP/2: {exc}") from None
        self._flush()
        while self.head is None:
            if not self._receive(deadline, timeout, "waiting for a response") and self.head is None:
                how = f"reset the stream (error code {self.reset_code})" if self.reset_code is not None else "closed the connection"
                raise ProbeFailure(f"the server {how} without answering")

    def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            self.sock.sendall(data)

    def _receive(self, deadline: float, timeout: float, doing: str) -> bool:
        """Read and handle one chunk; False once the stream (or the connection) is over."""
        try:
            return self.fill(deadline)
        except TimeoutError:
            raise ProbeFailure(f"timed out after {timeout:g} s {doing}") from None
        except OSError as exc:
            raise ProbeFailure(f"the connection failed {doing}: {exc.strerror or exc}") from None

    def fill(self, deadline: float) -> bool:
        """Read from the socket until the stream has more data or is over; False when over."""
        from h2 import events
        from h2.exceptions import ProtocolError
        from h2.settings import SettingCodes

        before = len(self.buffer)
        waiting_for_head = self.head is None
        while not self.eof and len(self.buffer) == before:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                chunk = b""
            if not chunk:
                self.eof = self.reset = True
                break
            try:
                received = self.connection.receive_data(chunk)
            except ProtocolError as exc:
                if not self.settings_received and chunk.startswith(b"HTTP/1."):
                    status = chunk.split(b"\r\n", 1)[0].decode("latin-1")
                    raise ProbeFailure(f"the server answered in HTTP/1 ({status!r}): it does not speak HTTP/2 here") from None
                raise ProbeFailure(f"HTTP/2 protocol error: {exc}", self.head) from None
            for event in received:
                if isinstance(event, events.RemoteSettingsChanged):
                    self.settings_received = True
                    changed = event.changed_settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL)
                    if changed is not None:
                        self.connect_protocol = changed.new_value == 1
                elif getattr(event, "stream_id", None) != self.stream_id or not self.stream_id:
                    if isinstance(event, events.ConnectionTerminated):
                        self.eof = self.reset = True
                elif isinstance(event, events.InformationalResponseReceived):
                    self.interim.append(_head(event.headers or []))
                elif isinstance(event, events.ResponseReceived):
                    self.head = _head(event.headers or [])
                elif isinstance(event, events.DataReceived):
                    self.buffer += event.data or b""
                    self.connection.acknowledge_received_data(event.flow_controlled_length or 0, self.stream_id)
                elif isinstance(event, events.StreamEnded):
                    self.eof = True
                elif isinstance(event, events.StreamReset):
                    self.eof = self.reset = True
                    self.reset_code = int(event.error_code) if event.error_code is not None else None
            self._flush()
            if waiting_for_head:
                break  # the caller waits for SETTINGS or the head: one chunk at a time
        return len(self.buffer) > before or not self.eof

    def send(self, data: bytes) -> None:
        self.connection.send_data(self.stream_id, data)
        self._flush()

    def read_body(self, deadline: float, limit: int = MAX_BODY) -> tuple[bytes, bool]:
        """(the rest of the stream's DATA up to ``limit``, whether the stream ended); stops at the deadline."""
        try:
            while not self.eof and len(self.buffer) <= limit:
                self.fill(deadline)
        except (TimeoutError, OSError):
            pass
        return self.take(limit), self.eof and not self.reset

    def close(self) -> None:
        """GOAWAY and close the socket (errors ignored: the answer has been read)."""
        try:
            self.connection.close_connection()
            self._flush()
        except Exception:  # closing a connection the server may have closed already: nothing to report
            pass
        self.sock.close()


def _head(fields: Sequence[tuple[bytes, bytes]] | Sequence[tuple[str, str]]) -> ResponseHead:
    status = 0
    headers: list[tuple[str, str]] = []
    for raw_name, raw_value in fields:
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        if name == ":status":
            status = int(value)
        elif not name.startswith(":"):
            headers.append((name, value))
    return ResponseHead(HTTP2, status, "", tuple(headers))


def _selected_subprotocol(request: UpgradeRequest, head: ResponseHead) -> str | None:
    selected = head.values("sec-websocket-protocol")
    if not selected:
        return None
    if len(selected) > 1 or selected[0] not in request.subprotocols:
        offered = ", ".join(request.subprotocols) or "none"
        raise ProbeFailure(f"invalid handshake: the server accepted selecting subprotocol {', '.join(selected)!r}, not one offered ({offered})", head)
    return selected[0]


def probe_h2(
    request: UpgradeRequest,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    wait: float = DEFAULT_WAIT,
    insecure: bool = False,
) -> Outcome:
    """:func:`~wsreject.probe.client.probe` over HTTP/2: the same outcomes, from an extended CONNECT."""
    stream = H2Stream.open(request, timeout=timeout, insecure=insecure)
    try:
        head = stream.head
        assert head is not None
        if not 200 <= head.status < 300:
            body, ended = stream.read_body(time.monotonic() + timeout)
            truncated = len(body) >= MAX_BODY and not ended
            note = None if ended else "the server did not end the stream: body read until the timeout"
            return Denied(request.target.url, head, body, truncated, note)
        subprotocol = _selected_subprotocol(request, head)
        return _listen(stream, request.target.url, head, subprotocol, time.monotonic() + wait)
    finally:
        stream.close()
