"""Real WebSocket clients for the tests.

``raw_handshake`` writes an upgrade request on a plain asyncio stream and parses the
answer byte for byte (status, every header line in order, the body by HTTP framing,
whether the server closed the connection afterwards), so a test can assert exactly
what a server put on the wire. ``raw_handshake_bytes`` does not parse at all: it returns
every byte until the server closes, for comparing a whole answer with one literal.

``ws_connect`` is what a real client library sees: ``websockets``' asyncio client,
returning :class:`Accepted` (an open connection) or :class:`Denied` (the HTTP
response of a refused handshake).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HeaderPairs = Sequence[tuple[str, str]]
HeaderInput = HeaderPairs | dict | None

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024


class NoResponse(ConnectionError):
    """The server closed (or reset) the connection without a complete HTTP response."""

    def __init__(self, message: str, partial: bytes = b"", reset: bool = False) -> None:
        super().__init__(message)
        self.partial = partial
        self.reset = reset


def expected_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value RFC 6455 requires for ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")


def body_allowed(status: int) -> bool:
    return not (status < 200 or status in (204, 304))


def _header_lookup(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    name = name.lower()
    return [value for key, value in headers if key == name]


class _HeaderAccess:
    headers: list[tuple[str, str]]

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in wire order."""
        return _header_lookup(self.headers, name)

    def header(self, name: str) -> str | None:
        """The value of header ``name``, or None; a repeated header is an error here
        (use :meth:`header_values`), so a test never checks one line of several."""
        values = self.header_values(name)
        if not values:
            return None
        if len(values) > 1:
            raise LookupError(f"header {name!r} appears {len(values)} times: {values!r}; use header_values()")
        return values[0]

    def header_names(self) -> list[str]:
        return [key for key, _ in self.headers]


@dataclass
class RawResponse(_HeaderAccess):
    """One HTTP response to an upgrade request, as it came over the wire."""

    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    # True: EOF (or a reset) within the close timeout after the response; False: the
    # connection stayed open; None: not measured (a 101 is closed by us at once).
    closed_by_server: bool | None = None
    reset: bool = False  # the server reset the connection instead of closing it
    extra: bytes = b""  # bytes received after the response (before EOF / timeout)
    raw_head: bytes = b""
    request_key: str = ""
    interim: list[RawResponse] = field(default_factory=list)  # 1xx before a final answer
    body_complete: bool = True  # False: content-length announced more than arrived

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accept_ok(self) -> bool:
        """Whether a 101's ``Sec-WebSocket-Accept`` matches our key."""
        return self.header_values("sec-websocket-accept") == [expected_accept(self.request_key)]

    def describe(self) -> str:
        lines = [f"{self.http_version} {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append("")
        lines.append(repr(self.body[:300]) + ("…" if len(self.body) > 300 else ""))
        lines.append(f"closed_by_server={self.closed_by_server} reset={self.reset} extra={self.extra[:100]!r}")
        return "\n".join(lines)


def _encode_value(value: str | bytes) -> bytes:
    """Header values go out as given: bytes verbatim, str as latin-1 where it fits
    (that is what HTTP's obs-text means), otherwise UTF-8 (what a naive client sends)."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def build_request(
    host: str,
    port: int,
    path: str,
    headers: Iterable[tuple[str, str | bytes]] = (),
    *,
    subprotocols: Sequence[str] = (),
    key: str | None = None,
) -> tuple[bytes, str]:
    """The upgrade request bytes and the ``Sec-WebSocket-Key`` used."""
    key = key or base64.b64encode(os.urandom(16)).decode("ascii")
    lines = [
        f"GET {path} HTTP/1.1".encode("ascii"),
        f"Host: {host}:{port}".encode("ascii"),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}".encode("ascii"),
        b"Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(b"Sec-WebSocket-Protocol: " + ", ".join(subprotocols).encode("ascii"))
    for name, value in headers:
        lines.append(name.encode("ascii") + b": " + _encode_value(value))
    return b"\r\n".join(lines) + b"\r\n\r\n", key


def _parse_head(head: bytes) -> tuple[str, int, str, list[tuple[str, str]]]:
    text = head.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {status_line!r}")
    version, status = parts[0], int(parts[1])
    reason = parts[2] if len(parts) == 3 else ""
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line: {line!r}")
        headers.append((name.strip().lower(), value.strip(" \t")))
    return version, status, reason, headers


async def _read_until_eof(reader: asyncio.StreamReader, timeout: float, limit: int = MAX_BODY) -> tuple[bytes, bool, bool]:
    """(data, eof_seen, reset) reading until EOF or ``timeout`` seconds of the whole wait."""
    data = bytearray()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(data) <= limit:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return bytes(data), False, False
        try:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
        except TimeoutError:
            return bytes(data), False, False
        except (ConnectionResetError, BrokenPipeError):
            return bytes(data), True, True
        if not chunk:
            return bytes(data), True, False
        data += chunk
    return bytes(data), False, False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # trailers
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY:
            raise ValueError("chunked body too large")


async def raw_handshake(
    host: str,
    port: int,
    path: str,
    headers: Iterable[tuple[str, str | bytes]] = (),
    *,
    subprotocols: Sequence[str] = (),
    timeout: float = 5.0,
    close_timeout: float | None = None,
) -> RawResponse:
    """Send a real WebSocket upgrade request and parse the HTTP answer exactly.

    ``timeout`` bounds connecting and reading the response; ``close_timeout``
    (default: ``timeout``) is how long to wait, after the response, for the server
    to close the connection (``closed_by_server``). A 101 is recorded and closed at
    once. ``headers`` are sent after the handshake's own, in order, duplicates kept;
    values may be bytes (sent verbatim) or str (latin-1, else UTF-8).
    """
    close_timeout = timeout if close_timeout is None else close_timeout
    request, key = build_request(host, port, path, headers, subprotocols=subprotocols)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=MAX_HEAD), timeout)
    try:
        writer.write(request)
        await writer.drain()
        interim: list[RawResponse] = []
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            except asyncio.IncompleteReadError as exc:
                if interim and not exc.partial:
                    # A lone informational response, then EOF: that *is* the answer.
                    final = interim.pop()
                    final.interim = interim
                    final.closed_by_server = True
                    return final
                raise NoResponse(f"connection closed before a complete response head: {exc.partial!r}", exc.partial) from None
            except ConnectionResetError:
                raise NoResponse("connection reset before a complete response head", reset=True) from None
            version, status, reason, resp_headers = _parse_head(head[:-4])
            response = RawResponse(
                status=status,
                reason=reason,
                http_version=version,
                headers=resp_headers,
                raw_head=head,
                request_key=key,
            )
            if status == 101:
                response.interim = interim
                return response
            if 100 <= status < 200:
                interim.append(response)
                continue
            break
        response.interim = interim

        # The body, by HTTP/1.1 framing (RFC 9112 §6.3).
        lengths = response.header_values("content-length")
        chunked = any("chunked" in v.lower() for v in response.header_values("transfer-encoding"))
        if not body_allowed(status):
            response.body = b""
        elif chunked:
            response.body = await asyncio.wait_for(_read_chunked(reader), timeout)
        elif lengths:
            length = int(lengths[0])
            try:
                response.body = await asyncio.wait_for(reader.readexactly(length), timeout)
            except asyncio.IncompleteReadError as exc:
                response.body = exc.partial
                response.body_complete = False
                response.closed_by_server = True
                return response
        else:
            data, eof, reset = await _read_until_eof(reader, min(close_timeout, timeout))
            response.body = data
            response.closed_by_server = eof
            response.reset = reset
            return response

        extra, eof, reset = await _read_until_eof(reader, close_timeout)
        response.extra = extra
        response.closed_by_server = eof
        response.reset = reset
        return response
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (TimeoutError, OSError):
            pass


async def raw_handshake_bytes(
    host: str,
    port: int,
    path: str,
    headers: Iterable[tuple[str, str | bytes]] = (),
    *,
    timeout: float = 10.0,
) -> bytes:
    """Send the upgrade request of :func:`build_request` and return everything the server
    sends until it closes the connection, unparsed.

    Returning at all means a clean close (EOF): a reset raises ``ConnectionResetError`` and
    a server that keeps the connection open for ``timeout`` seconds raises ``TimeoutError``.
    """
    request, _ = build_request(host, port, path, headers)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


# --- websockets client ---------------------------------------------------------------------


@dataclass
class Denied(_HeaderAccess):
    """A handshake the server refused, as ``websockets`` received it."""

    status_code: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status(self) -> int:
        return self.status_code

    def json(self) -> Any:
        return json.loads(self.body)

    @classmethod
    def from_exception(cls, exc: InvalidStatus) -> Denied:
        response = exc.response
        return cls(
            status_code=response.status_code,
            reason=response.reason_phrase,
            headers=[(name.lower(), value) for name, value in response.headers.raw_items()],
            body=bytes(response.body or b""),
        )


class Accepted(_HeaderAccess):
    """An open WebSocket connection (``async with`` closes it)."""

    def __init__(self, connection: ClientConnection, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout
        response = connection.response
        self.status_code = response.status_code if response is not None else 101
        self.headers = (
            [(name.lower(), value) for name, value in response.headers.raw_items()] if response is not None else []
        )

    @property
    def subprotocol(self) -> str | None:
        return self.connection.subprotocol

    async def recv(self, timeout: float | None = None) -> str | bytes:
        return await asyncio.wait_for(self.connection.recv(), self.timeout if timeout is None else timeout)

    async def recv_json(self, timeout: float | None = None) -> Any:
        return json.loads(await self.recv(timeout))

    async def send(self, message: str | bytes) -> None:
        await asyncio.wait_for(self.connection.send(message), self.timeout)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    @property
    def close_reason(self) -> str | None:
        return self.connection.close_reason

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _connect_without_redirects(connect):
    """``websockets`` follows 3xx + Location by default; a denial is what we want to see."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _header_list(headers: HeaderInput) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


async def ws_connect(
    url: str,
    *,
    headers: HeaderInput = None,
    subprotocols: Sequence[str] | None = None,
    origin: str | None = None,
    timeout: float = 5.0,
    follow_redirects: bool = False,
) -> Accepted | Denied:
    """Open ``url`` with ``websockets``; an HTTP refusal comes back as :class:`Denied`.

    Redirects are not followed (a 301 is a :class:`Denied`) unless ``follow_redirects``.
    Other handshake failures (a malformed response, a timeout) raise as usual.
    """
    factory = connect if follow_redirects else _connect_without_redirects
    try:
        connection = await factory(
            url,
            additional_headers=_header_list(headers) or None,
            subprotocols=list(subprotocols) if subprotocols else None,
            origin=origin,  # type: ignore[arg-type]
            open_timeout=timeout,
            close_timeout=timeout,
            proxy=None,
            ping_interval=None,
        )
    except InvalidStatus as exc:
        return Denied.from_exception(exc)
    return Accepted(connection, timeout)


# --- playing a conformance case ---------------------------------------------------------------


@dataclass
class Played:
    """What one case produced on one server."""

    raw: list[RawResponse | None] = field(default_factory=list)  # None: NoResponse
    ws: list[Accepted | Denied | BaseException] = field(default_factory=list)
    messages: list[list[str | bytes]] = field(default_factory=list)  # per accepted ws attempt
    problems: list[str] = field(default_factory=list)
    # The parts of ``problems`` that do not depend on the last attempt's expectation: the
    # attempts before it, and what was read after the last ws attempt's accept.
    before_problems: list[str] = field(default_factory=list)
    accepted_problems: list[str] = field(default_factory=list)
    ws_last: bool = False  # the last attempt went through websockets too

    @property
    def last_raw(self) -> RawResponse | None:
        return self.raw[-1] if self.raw else None


async def _check_accepted(expect: Any, result: Accepted, timeout: float) -> tuple[list[str], list[str | bytes]]:
    problems: list[str] = []
    received: list[str | bytes] = []
    async with result:
        if result.subprotocol != expect.subprotocol:
            problems.append(f"ws subprotocol: expected {expect.subprotocol!r}, got {result.subprotocol!r}")
        if expect.first_message is not None:
            try:
                first = await result.recv(timeout)
            except (TimeoutError, Exception) as exc:
                problems.append(f"ws first message: expected {expect.first_message!r}, got {exc!r}")
                return problems, received
            received.append(first)
            if first != expect.first_message:
                problems.append(f"ws first message: expected {expect.first_message!r}, got {first!r}")
        for outgoing, reply in expect.exchanges:
            await result.send(outgoing)
            try:
                got = await result.recv(timeout)
            except (TimeoutError, Exception) as exc:
                problems.append(f"ws reply to {outgoing!r}: expected {reply!r}, got {exc!r}")
                break
            received.append(got)
            if got != reply:
                problems.append(f"ws reply to {outgoing!r}: expected {reply!r}, got {got!r}")
    return problems, received


def _check_ws(want: Any, result: Accepted | Denied | BaseException, label: str, accepted_problems: list[str]) -> list[str]:
    """Mismatches of one ``websockets`` attempt with ``want`` (pure: what was read after an
    accept was checked while reading, ``accepted_problems``)."""
    if isinstance(result, Accepted):
        if not want.accepted:
            return [f"{label}: ws accepted, expected {want.status}"]
        return list(accepted_problems)
    if isinstance(result, Denied):
        if want.status is None or want.accepted:
            return [f"{label}: ws denied with {result.status_code}, expected {want.status}"]
        return [f"{label}: ws {p}" for p in want.check_denied(result)]
    if want.status is not None:
        return [f"{label}: ws failed: {result!r}"]
    return []


def check_played(case: Any, played: Played, expect: Any) -> list[str]:
    """Every mismatch of ``played`` with the case when its last attempt must look like
    ``expect`` (pure, so a played case can be judged again against another expectation).
    Messages after an accept are read while playing, so an accept where ``expect`` was a
    denial leaves them unread: reported as such."""
    problems = list(played.before_problems)
    label = f"attempt {case.repeat}" if case.repeat > 1 else "raw"
    problems += [f"{label}: {p}" for p in expect.check_raw(played.last_raw)]
    if played.ws_last:
        result = played.ws[-1]
        if isinstance(result, Accepted) and expect.accepted and played.accepted_problems == ["ws: not read"]:
            problems.append("ws: accepted; the messages after accept were not read (a denial was expected)")
        else:
            problems += _check_ws(expect, result, "ws", played.accepted_problems)
    return problems


async def play_case(
    case: Any,
    host: str,
    port: int,
    tokens: Mapping[str, str],
    *,
    expect: Any = None,
    timeout: float = 5.0,
    close_timeout: float = 3.0,
    with_ws: bool = True,
) -> Played:
    """Play ``case`` (a ``tests.conformance.cases.Case``) against host:port.

    Every attempt but the last (``case.repeat``) goes through ``ws_connect`` and is
    checked against ``case.before``. The last goes through ``raw_handshake`` (checked
    exactly against ``expect``, default ``case.expect``) and then, unless the case
    repeats or the expectation says the server dies, through ``ws_connect`` as well.
    ``Played.problems`` lists every mismatch (:func:`check_played`); empty means the case
    passed.
    """
    expect = case.expect if expect is None else expect
    request = case.resolve(tokens)
    headers = request.all_headers()
    url = f"ws://{host}:{port}{request.path}"
    played = Played()

    async def ws_attempt(want: Any, label: str) -> list[str]:
        """One websockets attempt; the problems found while reading after an accept."""
        try:
            result: Accepted | Denied | BaseException = await ws_connect(
                url, headers=headers, subprotocols=request.subprotocols or None, timeout=timeout
            )
        except Exception as exc:
            result = exc
        played.ws.append(result)
        if not isinstance(result, Accepted):
            return []
        if not want.accepted:
            await result.close()
            return [f"{label}: not read"]
        problems, received = await _check_accepted(want, result, timeout)
        played.messages.append(received)
        return [f"{label}: {p}" for p in problems]

    for attempt in range(1, case.repeat):
        label = f"attempt {attempt}"
        read = await ws_attempt(case.before, label)
        played.before_problems += _check_ws(case.before, played.ws[-1], label, read)

    try:
        raw: RawResponse | None = await raw_handshake(
            host,
            port,
            request.path,
            headers,
            subprotocols=request.subprotocols,
            timeout=timeout,
            close_timeout=close_timeout,
        )
    except NoResponse:
        raw = None
    played.raw.append(raw)

    if with_ws and case.repeat == 1 and not expect.server_dies:
        played.accepted_problems = await ws_attempt(expect, "ws")
        played.ws_last = True
    played.problems = check_played(case, played, expect)
    return played


async def play_cases(
    cases: Sequence[Any],
    host: str,
    port: int,
    tokens: Mapping[str, str],
    expectations: Mapping[str, Any],
    *,
    concurrency: int = 16,
    timeout: float = 5.0,
    close_timeout: float = 3.0,
) -> dict[str, Played]:
    """Play every case against host:port, ``concurrency`` at a time; {case id: Played}."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(case) -> tuple[str, Played]:
        async with semaphore:
            played = await play_case(
                case, host, port, tokens, expect=expectations[case.id], timeout=timeout, close_timeout=close_timeout
            )
            return case.id, played

    return dict(await asyncio.gather(*(one(case) for case in cases)))
