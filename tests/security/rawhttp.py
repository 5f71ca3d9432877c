"""Exact bytes on a socket: an upgrade request spelled as given, and what came back.

``upgrade_request(b"/ws//rooms/lobby/", ...)`` writes the request target verbatim
(any bytes, percent-encodings left alone), so a test controls exactly what the
server parses. ``exchange`` sends it and reads the answer: an HTTP response
(status, headers, body by ``content-length`` or EOF), or a ``101`` and the first
frames (a close-code denial is ``101``, a ``{"detail"}`` text frame and a close
frame with 4000 + status).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wsreject.probe.frames import parse_frame

HeaderPair = tuple[str | bytes, str | bytes]
MAX_FRAME = 1 << 20


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def upgrade_request(
    target: str | bytes,
    headers: Iterable[HeaderPair] = (),
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    base: bool = True,
) -> bytes:
    """``GET <target> HTTP/1.1`` with the handshake's headers (unless ``base`` is False), then
    ``Authorization: Bearer <token>`` and ``headers`` verbatim, duplicates kept."""
    lines = [b"GET " + _bytes(target) + b" HTTP/1.1", b"Host: " + host.encode("ascii")]
    if base:
        key = base64.b64encode(os.urandom(16))
        lines += [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: " + key]
    if token is not None:
        lines.append(b"Authorization: Bearer " + token.encode("ascii"))
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass
class Reply:
    """What a server answered on one connection."""

    outcome: str  # "response" (a status line came), "closed", "reset" or "timeout" (none came)
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    frames: list[tuple[int, bytes]] = field(default_factory=list)  # after a 101: (opcode, payload)
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name.lower()]
        assert len(values) <= 1, f"{name} repeated: {values}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def close_code(self) -> int | None:
        """The code of a close frame received after a 101, if any."""
        for opcode, payload in self.frames:
            if opcode == 8 and len(payload) >= 2:
                return int(struct.unpack("!H", payload[:2])[0])
        return None

    def first_text(self) -> Any:
        """The first text frame after a 101, as JSON (None without one)."""
        for opcode, payload in self.frames:
            if opcode == 1:
                return json.loads(payload)
        return None

    def summary(self) -> tuple[Any, ...]:
        """A comparable digest: ``(101, first JSON frame, close code)``, ``(status, body)`` or the outcome."""
        if self.status == 101:
            return (101, self.first_text(), self.close_code)
        if self.status is not None:
            return (self.status, self.body.decode("utf-8", "replace"))
        return (self.outcome,)


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buffer, self.eof = sock, deadline, b"", False

    def fill(self) -> bool:
        """Read more bytes; False on EOF or when the deadline passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def take(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not self.fill():
                return None
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return int(status), (reason[0] if reason else ""), headers


def _read_frame(reader: _Reader) -> tuple[int, bytes] | None:
    """The next server frame as ``(opcode, payload)``; None when none came in time."""
    while (parsed := parse_frame(reader.buffer, MAX_FRAME)) is None:
        if not reader.fill():
            return None
    frame, used = parsed
    reader.buffer = reader.buffer[used:]
    return int(frame.opcode), frame.payload


def exchange(
    address: tuple[str, int], request: bytes, *, timeout: float = 10.0, frame_timeout: float = 2.0, hang_up: bool = False
) -> Reply:
    """Send ``request`` on a new connection and read the answer (see the module docstring).

    After a ``101``, frames are awaited for at most ``frame_timeout`` seconds (a consumer
    that sends nothing on connect leaves ``frames`` empty).
    ``hang_up`` closes the connection right after sending, reading nothing (a client
    that leaves during the check); the reply is then ``Reply("closed")``.
    """
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        if hang_up:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, at once
            return Reply("closed")
        reader = _Reader(sock, time.monotonic() + timeout)
        try:
            while b"\r\n\r\n" not in reader.buffer:
                if not reader.fill():
                    return Reply("closed" if reader.eof else "timeout", raw=reader.buffer)
        except ConnectionResetError:
            return Reply("reset", raw=reader.buffer)
        head, _, reader.buffer = reader.buffer.partition(b"\r\n\r\n")
        status, reason, headers = _parse_head(head)
        reply = Reply("response", status, reason, headers, raw=head)
        try:
            if status == 101:
                reader.deadline = min(reader.deadline, time.monotonic() + frame_timeout)
                _read_frames(reader, reply)
            else:
                lengths = [int(value) for key, value in headers if key == "content-length"]
                if lengths:
                    reply.body = reader.take(lengths[0]) or b""
                else:
                    while reader.fill():
                        pass
                    reply.body = reader.buffer
        except ConnectionResetError:
            pass
        return reply


def _read_frames(reader: _Reader, reply: Reply) -> None:
    """The first frame; a second one when the first was a close-code denial's ``{"detail"}``."""
    frame = _read_frame(reader)
    if frame is None:
        return
    reply.frames.append(frame)
    opcode, payload = frame
    if opcode == 1 and payload.startswith(b'{"detail"'):
        second = _read_frame(reader)
        if second is not None:
            reply.frames.append(second)
