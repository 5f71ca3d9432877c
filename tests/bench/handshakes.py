"""Accepted handshakes under load: a small raw-socket client wrk cannot replace (wrk stops at a 101).

Each of ``connections`` concurrent workers loops: connect, send the upgrade request,
read the ``101`` (and the first message when the endpoint sends one), send a close
frame, wait for the server's close frame (or EOF), close. The latency of a handshake
runs from ``connect()`` to the 101 — or to the first message when one is expected —
so it is the time a client waits before it can use the connection; the close is
outside it but inside the rate (the server's teardown is part of its cost).

Run in its own process, pinned to the client core (``uvloop`` when installed)::

    python -m tests.bench.handshakes < spec.json     # prints one JSON object
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import resource
import sys
import time
from collections import Counter
from typing import Any, cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A masked close frame, code 1000 (the mask is fixed: nothing here is secret).
_MASK = b"\x11\x22\x33\x44"
CLOSE_FRAME = b"\x88\x82" + _MASK + bytes(b ^ _MASK[i % 4] for i, b in enumerate(b"\x03\xe8"))


class Outcome(Exception):
    """How a handshake ended when it did not succeed: ``kind`` is a status or an error name."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class HandshakeProtocol(asyncio.Protocol):
    """One connection: request, 101, first message (when expected), close."""

    def __init__(self, request: bytes, accept: bytes, expect_message: bool, started: float) -> None:
        self.request = request
        self.accept = accept
        self.expect_message = expect_message
        self.started = started
        self.buffer = bytearray()
        self.state = "head"
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[tuple[float, bytes | None]] = loop.create_future()  # latency, message
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.state == "head":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            status = head[9:12].decode("ascii", "replace")
            if status != "101":
                self._fail(status)
                return
            if self.accept not in head:
                self._fail("bad-accept")
                return
            if not self.expect_message:
                self._succeed(None)
                return
            self.state = "message"
        while self.buffer and self.state in ("message", "closing"):
            frame = self._next_frame()
            if frame is None:
                return
            opcode, payload = frame
            if self.state == "message":
                if opcode in (1, 2):
                    self._succeed(payload)
                elif opcode == 8:
                    self._fail("closed-before-message")
                    return
            elif opcode == 8:
                self._finish()
                return

    def _next_frame(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        length, offset = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, offset = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, offset = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < offset + length:
            return None
        opcode, payload = buf[0] & 0x0F, bytes(buf[offset : offset + length])
        del buf[: offset + length]
        return opcode, payload

    def _succeed(self, message: bytes | None) -> None:
        if not self.ready.done():
            self.ready.set_result((time.perf_counter() - self.started, message))
        self.state = "closing"
        assert self.transport is not None
        self.transport.write(CLOSE_FRAME)

    def _fail(self, kind: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(Outcome(kind))
        self._finish()

    def _finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(Outcome("reset" if exc else "eof"))
        if not self.closed.done():
            self.closed.set_result(None)


def build_request(host: str, port: int, path: str, headers: list[list[str]]) -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]  # fmt: skip
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).lower()
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), accept


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    request, accept = build_request(host, port, spec["path"], spec.get("headers", []))
    expect_message = bool(spec.get("expect_message"))
    seconds, limit, timeout = float(spec["seconds"]), int(spec.get("limit", 0)), float(spec.get("timeout", 10))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    sample: list[bytes | None] = []
    started_count = 0
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        started = time.perf_counter()
        protocol = HandshakeProtocol(request, accept, expect_message, started)
        try:
            transport, _ = await asyncio.wait_for(loop.create_connection(lambda: protocol, host, port), timeout)
        except (TimeoutError, OSError) as exc:
            outcomes["connect" if isinstance(exc, OSError) else "timeout"] += 1
            return
        try:
            latency, message = await asyncio.wait_for(asyncio.shield(protocol.ready), timeout)
            latencies.append(latency)
            outcomes["101"] += 1
            if not sample:
                sample.append(message)
            await asyncio.wait_for(asyncio.shield(protocol.closed), timeout)
        except Outcome as outcome:
            outcomes[outcome.kind] += 1
        except TimeoutError:
            outcomes["timeout"] += 1
        finally:
            if not transport.is_closing():
                transport.abort()

    async def worker() -> None:
        nonlocal started_count
        while time.perf_counter() < deadline and (not limit or started_count < limit):
            started_count += 1
            await one()

    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(int(spec["connections"]))))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    first = sample[0] if sample else None
    return {
        "duration_s": elapsed,
        "outcomes": dict(outcomes),
        "latencies_ms": [round(v * 1000, 4) for v in latencies] if spec.get("all_latencies") else None,
        "latency_ms": _summary(latencies),
        "cpu_pct": 100 * cpu / elapsed if elapsed else None,
        "affinity": sorted(os.sched_getaffinity(0)),
        "loop": type(loop).__module__,
        "sample": first.decode("utf-8", "replace") if first is not None else None,
    }


def _summary(latencies: list[float]) -> dict[str, float | None]:
    def pct(p: float) -> float | None:
        if not latencies:
            return None
        rank = max(1, -(-len(latencies) * p // 100))
        return latencies[int(rank) - 1] * 1000

    mean = sum(latencies) / len(latencies) * 1000 if latencies else None
    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "p999": pct(99.9), "max": pct(100), "mean": mean}


def main() -> None:
    spec = json.load(sys.stdin)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the lock
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
