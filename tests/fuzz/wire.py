"""A blocking raw-socket client: exact request bytes out, the answer parsed byte for byte.

``tests/support/wsclient.py`` builds its request line from an ASCII ``str`` and closes at
once on a ``101``; the fuzz tests need arbitrary bytes in the request target and, after a
``101``, the first frames (close-code denials are an accept, a ``{"detail"}`` frame and a
close ``4000 + status``). Timeouts only bound a broken server; nothing waits for them
in a passing run: every accepted demo consumer answers the frame sent right after
the ``101`` (the echo consumer echoes it, the others greet first).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from dataclasses import dataclass

from tests.support.wsclient import expected_accept
from wsreject.probe.frames import FrameError, Opcode, close_payload, encode_frame, parse_frame

from .checks import Outcome
from .requests import wire_request

TIMEOUT = 10.0
MAX_HEAD = 256 * 1024


@dataclass
class Connection:
    sock: socket.socket
    buffer: bytes = b""
    received: bytes = b""

    def fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.received += chunk
        self.buffer += chunk
        return bool(chunk)

    def read_until(self, marker: bytes, limit: int) -> bytes | None:
        while marker not in self.buffer:
            if len(self.buffer) > limit or not self.fill():
                return None
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_exactly(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            if not self.fill():
                return None
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_to_eof(self, limit: int = 1 << 20) -> bytes:
        try:
            while len(self.buffer) < limit and self.fill():
                pass
        except OSError:
            pass
        data, self.buffer = self.buffer, b""
        return data

    def read_chunked(self) -> bytes:
        body = b""
        while True:
            size_line = self.read_until(b"\r\n", 1024)
            if size_line is None:
                return body
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.read_until(b"\r\n", MAX_HEAD)  # (no trailers are sent)
                return body
            chunk = self.read_exactly(size + 2)
            if chunk is None:
                return body
            body += chunk[:-2]

    def frame(self) -> tuple[int, bytes] | None:
        """The next server frame as ``(opcode, payload)``; None when the connection ends first.
        A frame that breaks RFC 6455 raises :class:`~wsreject.probe.frames.FrameError`."""
        while (parsed := parse_frame(self.buffer, MAX_HEAD)) is None:
            if not self.fill():
                return None
        frame, used = parsed
        self.buffer = self.buffer[used:]
        return int(frame.opcode), frame.payload


def masked_text_frame(text: bytes) -> bytes:
    return encode_frame(Opcode.TEXT, text)


def close_frame(code: int = 1000) -> bytes:
    return encode_frame(Opcode.CLOSE, close_payload(code))


def parse_head(head: bytes) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
    status_line, *lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        headers.append((name.lower() if sep else line, value.strip(b" \t") if sep else b""))
    return int(parts[1]), parts[2].decode("latin-1") if len(parts) > 2 else "", headers


def handshake(host: str, port: int, target: bytes, headers: list[tuple[bytes, bytes]], *, poke: bool = False) -> Outcome:
    """Send one upgrade request; return what came back (see :class:`~tests.fuzz.checks.Outcome`).

    After a ``101`` the first frame tells an accept from a close-code denial. Only a
    consumer that never speaks first (the echo) needs a message to answer: ``poke`` sends
    one right after the ``101``. Poking a close-code denial would race with the server
    closing the connection (a reset can lose the frames), so nothing else is poked."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = wire_request(target, headers, host, port, key)
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        connection = Connection(sock)
        try:
            sock.sendall(request)
        except OSError as exc:  # the server may close on a request it refuses outright
            return Outcome(None, "none", note=f"send failed: {exc!r}", wire=connection.read_to_eof())
        try:
            head = connection.read_until(b"\r\n\r\n", MAX_HEAD)
        except ConnectionResetError:
            return Outcome(None, "none", note="reset before a response", wire=connection.received)
        if head is None:
            return Outcome(None, "none", note="closed before a complete response head", wire=connection.received)
        parsed = parse_head(head)
        if parsed is None:
            return Outcome(None, "none", note=f"not an HTTP response: {head[:200]!r}", wire=connection.received)
        status, reason, response_headers = parsed
        if status != 101:
            lengths = [v for k, v in response_headers if k == b"content-length"]
            chunked = any(b"chunked" in v.lower() for k, v in response_headers if k == b"transfer-encoding")
            if chunked:
                body = connection.read_chunked()
            elif lengths and lengths[0].isdigit():
                body = connection.read_exactly(int(lengths[0])) or connection.read_to_eof()
            else:  # delimited by the close
                body = connection.read_to_eof()
            return Outcome(status, "http", response_headers, body, wire=connection.received, reason=reason)
        accepts = [v for k, v in response_headers if k == b"sec-websocket-accept"]
        if accepts != [expected_accept(key).encode("ascii")]:
            return Outcome(
                101, "accepted", response_headers, note=f"bad Sec-WebSocket-Accept {accepts!r}", wire=connection.received
            )
        return _after_accept(connection, response_headers, poke)


def _after_accept(connection: Connection, response_headers: list[tuple[bytes, bytes]], poke: bool) -> Outcome:
    """Tell an accept from a close-code denial by the first frames."""
    try:
        if poke:
            connection.sock.sendall(masked_text_frame(b"{}"))
        first = connection.frame()
    except TimeoutError:
        return Outcome(101, "accepted", response_headers, note=f"silent for {TIMEOUT:g} s after 101", wire=connection.received)
    except FrameError as exc:
        return Outcome(101, "accepted", response_headers, note=f"a broken frame after 101: {exc}", wire=connection.received)
    if first is None:
        return Outcome(101, "accepted", response_headers, note="closed after 101 without a frame", wire=connection.received)
    opcode, payload = first
    if opcode == 0x8:  # closed at once
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        if 4000 <= code <= 4999:
            return Outcome(
                code - 4000,
                "close_code",
                response_headers,
                b"",
                wire=connection.received,
                reason=payload[2:].decode("utf-8", "replace"),
            )
        return Outcome(101, "accepted", response_headers, note=f"closed {code} at once", wire=connection.received)
    try:
        message = json.loads(payload)
    except ValueError:
        message = payload
    if isinstance(message, dict) and set(message) == {"detail"}:
        second = connection.frame()
        if second is not None and second[0] == 0x8 and len(second[1]) >= 2:
            code = struct.unpack("!H", second[1][:2])[0]
            if 4000 <= code <= 4999:
                return Outcome(
                    code - 4000,
                    "close_code",
                    response_headers,
                    payload,
                    wire=connection.received,
                    reason=second[1][2:].decode("utf-8", "replace"),
                )
    with contextlib.suppress(OSError):
        connection.sock.sendall(close_frame())
    return Outcome(101, "accepted", response_headers, greeting=message, wire=connection.received)
