"""A scripted TCP server for the probe's tests: one connection, canned bytes, everything recorded.

::

    with ScriptedServer(lambda conn, request: conn.sendall(accept_head(request))) as server:
        result = run_probe(server.url("/ws/x/"))
        received = server.received()    # the request head and every byte sent after it

The server thread accepts one connection on 127.0.0.1 (or ``::1``), reads the request
head, runs the script, then records what the client sends until it closes the
connection or sends a close frame. ``received()`` waits for that (an event, bounded by
a timeout) and re-raises any error of the script.
"""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
THREAD_TIMEOUT = 10.0


@dataclass
class Received:
    head: bytes = b""
    after: bytes = b""  # everything the client sent after the head, until it closed

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n")[0].decode("latin-1")

    def header_lines(self) -> list[tuple[str, str]]:
        lines = self.head.split(b"\r\n")[1:]
        return [
            (name.decode("latin-1"), value.strip().decode("latin-1"))
            for name, _, value in (line.partition(b":") for line in lines if line)
        ]

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.header_lines() if key.lower() == name.lower()]

    @property
    def key(self) -> str:
        (key,) = self.header("sec-websocket-key")
        return key


Script = Callable[[socket.socket, Received], None]


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")


def accept_head(request: Received, *extra: str, accept: str | None = None) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept if accept is not None else accept_value(request.key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def server_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """An unmasked frame, as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return struct.pack("!BB", first, len(payload)) + payload
    if len(payload) < 1 << 16:
        return struct.pack("!BBH", first, 126, len(payload)) + payload
    return struct.pack("!BBQ", first, 127, len(payload)) + payload


def text_frame(text: str) -> bytes:
    return server_frame(0x1, text.encode("utf-8"))


def close_frame(code: int, reason: str = "") -> bytes:
    return server_frame(0x8, struct.pack("!H", code) + reason.encode("utf-8"))


@dataclass
class ClientFrame:
    opcode: int
    masked: bool
    payload: bytes  # unmasked


def client_frames(data: bytes) -> list[ClientFrame]:
    """Decode the (small, masked) frames a client sent."""
    frames = []
    while len(data) >= 6:
        opcode, second = data[0] & 0x0F, data[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            (length,), offset = struct.unpack_from("!H", data, 2), 4
        masked = bool(second & 0x80)
        key = data[offset : offset + 4] if masked else b"\0\0\0\0"
        offset += 4 if masked else 0
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[offset : offset + length]))
        frames.append(ClientFrame(opcode, masked, payload))
        data = data[offset + length :]
    return frames


def read_until_closed(conn: socket.socket, data: bytes = b"", timeout: float = THREAD_TIMEOUT) -> bytes:
    """Everything the client sends until it closes the connection or sends a close frame
    (then the server ends the TCP connection, as RFC 6455 §7.1.1 has it)."""
    conn.settimeout(timeout)
    try:
        while not any(frame.opcode == 0x8 for frame in client_frames(data)):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return data


def read_client_frame(conn: socket.socket) -> bytes:
    """Block until one client frame has arrived (small frames); return its raw bytes."""
    conn.settimeout(THREAD_TIMEOUT)
    data = b""
    while len(data) < 6 or len(data) < 6 + (data[1] & 0x7F):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class ScriptedServer:
    def __init__(self, script: Script, *, family: socket.AddressFamily = socket.AF_INET,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.script = script
        self.family = family
        self.host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.tls = tls
        self._received = Received()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self.connections = 0

    def __enter__(self) -> Self:
        self.listener = socket.socket(self.family, socket.SOCK_STREAM)
        self.listener.bind((self.host, 0))
        self.listener.listen(1)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wake_writer.send(b"x")  # ends a wait for a connection that never came
        self.thread.join(THREAD_TIMEOUT)
        for sock in (self.listener, self._wake_reader, self._wake_writer):
            sock.close()

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        host = self.host if self.family == socket.AF_INET else f"[{self.host}]"
        return f"{scheme}://{host}:{self.port}{path}"

    def _serve(self) -> None:
        ready, _, _ = select.select([self.listener, self._wake_reader], [], [], THREAD_TIMEOUT)
        if self.listener not in ready:
            self._done.set()
            return
        conn, _ = self.listener.accept()
        self.connections += 1
        try:
            if self.tls is not None:
                conn.settimeout(THREAD_TIMEOUT)
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except ssl.SSLError:
                    return  # the client refused our certificate: nothing more to record
            conn.settimeout(THREAD_TIMEOUT)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            self._received.head = head
            self.script(conn, self._received)
            self._received.after = read_until_closed(conn, rest)
        except BaseException as exc:
            self._error = exc
        finally:
            conn.close()
            self._done.set()

    def received(self, timeout: float = THREAD_TIMEOUT) -> Received:
        """What the client sent, once it closed the connection."""
        assert self._done.wait(timeout), "the scripted server did not finish"
        if self._error is not None:
            raise self._error
        return self._received
