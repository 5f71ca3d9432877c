"""The conformance runner's HTTP/3 transport: every case as an RFC 9220 extended CONNECT over QUIC.

The target ``hypercorn-h3`` serves the app on hypercorn with ``--quic-bind`` on a free UDP
port of 127.0.0.1 and a self-signed certificate for 127.0.0.1 made here (``cryptography``),
and plays each case with ``aioquic``'s HTTP/3 client, verifying the server against that
certificate: ``:method CONNECT``, ``:protocol websocket``, the case's headers lower-cased.
RFC 9220 applies RFC 8441 to HTTP/3 unchanged, so the expectation is the HTTP/2 one
(``http2.over_h2``: an accept is a 200, no reason phrase, no connection-specific header,
"closed" is the end of the stream).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conformance.cases import Case, Expect
from tests.support.processes import HOST
from tests.support.wsclient import Played, RawResponse
from wsreject.probe.frames import FrameError, Opcode, encode_frame, parse_frame

H3_TARGET = "hypercorn-h3"
HTTP3 = "HTTP/3"
MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Http3Setup:
    """What hypercorn needs to serve HTTP/3 and the client to reach it."""

    certfile: Path
    keyfile: Path
    udp_port: int

    def server_args(self) -> list[str]:
        return ["--certfile", str(self.certfile), "--keyfile", str(self.keyfile), "--quic-bind", f"{HOST}:{self.udp_port}"]


def free_udp_port(host: str = HOST) -> int:
    """A UDP port of ``host`` nobody holds now (QUIC listens on UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def make_certificate(directory: Path, host: str = HOST) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for the IP address ``host``, valid one day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "h3-cert.pem", directory / "h3-key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


def prepare(directory: Path) -> Http3Setup:
    certfile, keyfile = make_certificate(directory)
    return Http3Setup(certfile, keyfile, free_udp_port())


def _encode(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


class _Stream:
    """One request stream of an aioquic HTTP/3 client connection: its events in a queue."""

    def __init__(self, protocol: Any, stream_id: int) -> None:
        self.protocol = protocol
        self.stream_id = stream_id
        self.buffer = bytearray()
        self.ended = False

    async def next_event(self, deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        event = await asyncio.wait_for(self.protocol.events.get(), remaining)
        if event is None:  # the connection ended
            self.ended = True
        return event

    async def fill(self, deadline: float) -> bool:
        from aioquic.h3.events import DataReceived

        while not self.ended:
            event = await self.next_event(deadline)
            if isinstance(event, DataReceived) and event.stream_id == self.stream_id:
                self.buffer += event.data
                self.ended = event.stream_ended
                if event.data:
                    return True
        return False

    async def recv_text(self, deadline: float) -> str:
        while True:
            parsed = parse_frame(self.buffer, MAX_BODY)
            if parsed is None:
                if not await self.fill(deadline):
                    raise ConnectionError("the server ended the stream")
                continue
            frame, used = parsed
            del self.buffer[:used]
            if frame.opcode is Opcode.CLOSE:
                raise ConnectionError(f"close frame {frame.payload[:2].hex()} {frame.payload[2:]!r}")
            if frame.opcode is Opcode.TEXT and frame.fin:
                return frame.payload.decode("utf-8", errors="replace")
            if frame.opcode not in (Opcode.PING, Opcode.PONG):
                raise FrameError(f"expected a whole text frame, got {frame.opcode.name} fin={frame.fin}")

    def send(self, data: bytes) -> None:
        self.protocol.h3.send_data(self.stream_id, data, end_stream=False)
        self.protocol.transmit()


def _protocol_class() -> Any:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.quic.events import ConnectionTerminated, QuicEvent

    class Http3Client(QuicConnectionProtocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.events: asyncio.Queue[Any] = asyncio.Queue()

        def quic_event_received(self, event: QuicEvent) -> None:
            if isinstance(event, ConnectionTerminated):
                self.events.put_nowait(None)
            for h3_event in self.h3.handle_event(event):
                self.events.put_nowait(h3_event)

    return Http3Client


async def _attempt(
    setup: Http3Setup, path: str, headers: Sequence[tuple[str, str]], subprotocols: Sequence[str], want: Expect, timeout: float, close_timeout: float
) -> tuple[RawResponse | None, list[str], list[str]]:
    """One CONNECT on a QUIC connection of its own: (the response or None, the texts read
    after an accept, problems seen while reading them)."""
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=HOST)
    configuration.load_verify_locations(str(setup.certfile))
    fields = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", f"{HOST}:{setup.udp_port}".encode()),
        (b":path", path.encode("ascii")),
        (b"sec-websocket-version", b"13"),
    ]
    if subprotocols:
        fields.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("ascii")))
    fields += [(name.lower().encode("ascii"), _encode(value)) for name, value in headers]
    deadline = time.monotonic() + timeout
    try:
        async with asyncio.timeout(timeout + close_timeout + 2.0):
            return await _exchange(setup, configuration, fields, want, deadline, close_timeout)
    except (ConnectionError, TimeoutError):  # no QUIC connection, or nothing within the bounds
        return None, [], []


async def _exchange(
    setup: Http3Setup, configuration: Any, fields: list[tuple[bytes, bytes]], want: Expect, deadline: float, close_timeout: float
) -> tuple[RawResponse | None, list[str], list[str]]:
    from aioquic.asyncio.client import connect
    from aioquic.h3.events import HeadersReceived

    async with connect(HOST, setup.udp_port, configuration=configuration, create_protocol=_protocol_class()) as protocol:
        stream = _Stream(protocol, protocol._quic.get_next_available_stream_id())
        protocol.h3.send_headers(stream.stream_id, fields)
        protocol.transmit()
        interim: list[RawResponse] = []
        response: RawResponse | None = None
        try:
            while response is None and not stream.ended:
                event = await stream.next_event(deadline)
                if isinstance(event, HeadersReceived) and event.stream_id == stream.stream_id:
                    status = int(dict(event.headers)[b":status"])
                    named = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers if not k.startswith(b":")]
                    head = RawResponse(status, "", HTTP3, named)
                    if 100 <= status < 200:
                        interim.append(head)
                    else:
                        response = head
                        stream.ended = event.stream_ended
        except TimeoutError:
            return None, [], []
        if response is None:
            return None, [], []
        response.interim = interim
        received: list[str] = []
        problems: list[str] = []
        if 200 <= response.status < 300 and want.accepted:
            try:
                if want.first_message is not None:
                    received.append(await stream.recv_text(deadline))
                    if received[-1] != want.first_message:
                        problems.append(f"first message: expected {want.first_message!r}, got {received[-1]!r}")
                for outgoing, reply in want.exchanges:
                    stream.send(encode_frame(Opcode.TEXT, outgoing.encode("utf-8")))
                    received.append(await stream.recv_text(deadline))
                    if received[-1] != reply:
                        problems.append(f"reply to {outgoing!r}: expected {reply!r}, got {received[-1]!r}")
            except (TimeoutError, ConnectionError, FrameError) as exc:
                problems.append(f"after the 200: {exc!r}")
        else:
            close_deadline = time.monotonic() + close_timeout
            try:
                while not stream.ended and len(stream.buffer) <= MAX_BODY:
                    await stream.fill(close_deadline)
            except TimeoutError:
                pass
            response.body = bytes(stream.buffer)
            response.closed_by_server = stream.ended
        return response, received, problems


async def play_case_h3(
    case: Case, setup: Http3Setup, tokens: Mapping[str, str], expect: Expect, *, timeout: float, close_timeout: float
) -> Played:
    """``case`` over HTTP/3, every attempt a CONNECT of its own (as ``http2.play_case_h2``)."""
    from tests.conformance.http2 import accepted, over_h2

    resolved = case.resolve(tokens)
    played = Played()
    for attempt in range(1, case.repeat + 1):
        want = expect if attempt == case.repeat else case.before
        assert want is not None, f"{case.id}: repeat > 1 needs `before`"
        raw, received, reading = await _attempt(
            setup, resolved.path, resolved.all_headers(), resolved.subprotocols, want, timeout, close_timeout
        )
        played.raw.append(raw)
        if raw is not None and accepted(raw):
            played.messages.append(list(received))
        label = f"attempt {attempt}" if case.repeat > 1 else "h3"
        problems = [f"{label}: {p}" for p in over_h2(want).check_raw(raw)] + [f"{label}: {p}" for p in reading]
        if attempt < case.repeat:
            played.before_problems += problems
        else:
            played.accepted_problems = [f"{label}: {p}" for p in reading]
        played.problems += problems
    return played


async def play_cases_h3(
    cases: Sequence[Case],
    setup: Http3Setup,
    tokens: Mapping[str, str],
    expectations: Mapping[str, Expect],
    *,
    concurrency: int,
    timeout: float,
    close_timeout: float,
) -> dict[str, Played]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> tuple[str, Played]:
        async with semaphore:
            played = await play_case_h3(
                case, setup, tokens, expectations[case.id], timeout=timeout, close_timeout=close_timeout
            )
            return case.id, played

    return dict(await asyncio.gather(*(one(case) for case in cases)))


@dataclass(frozen=True)
class Tunnel:
    """What an accepted CONNECT carried until the server closed it (``read_until_closed``)."""

    status: int
    messages: list[str]
    close_code: int | None
    close_reason: str


async def read_until_closed(setup: Http3Setup, path: str, *, timeout: float = 5.0) -> Tunnel | None:
    """CONNECT to ``path`` over HTTP/3 and, once accepted, read text messages until the
    server's close frame (close-code mode); None without a 2xx."""
    from aioquic.asyncio.client import connect
    from aioquic.h3.connection import H3_ALPN
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=HOST)
    configuration.load_verify_locations(str(setup.certfile))
    fields = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", f"{HOST}:{setup.udp_port}".encode()),
        (b":path", path.encode("ascii")),
        (b"sec-websocket-version", b"13"),
    ]
    deadline = time.monotonic() + timeout
    async with asyncio.timeout(timeout + 2.0), connect(
        HOST, setup.udp_port, configuration=configuration, create_protocol=_protocol_class()
    ) as protocol:
        stream = _Stream(protocol, protocol._quic.get_next_available_stream_id())
        protocol.h3.send_headers(stream.stream_id, fields)
        protocol.transmit()
        status = 0
        while not status and not stream.ended:
            event = await stream.next_event(deadline)
            if isinstance(event, HeadersReceived) and event.stream_id == stream.stream_id:
                status = int(dict(event.headers)[b":status"])
        if not 200 <= status < 300:
            return None
        messages: list[str] = []
        while True:
            parsed = parse_frame(stream.buffer, MAX_BODY)
            if parsed is None:
                if not await stream.fill(deadline):
                    return Tunnel(status, messages, None, "")
                continue
            frame, used = parsed
            del stream.buffer[:used]
            if frame.opcode is Opcode.CLOSE:
                code = int.from_bytes(frame.payload[:2], "big") if len(frame.payload) >= 2 else None
                return Tunnel(status, messages, code, frame.payload[2:].decode("utf-8"))
            if frame.opcode is Opcode.TEXT:
                messages.append(frame.payload.decode("utf-8"))

