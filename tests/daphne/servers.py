"""Start real servers as subprocesses on 127.0.0.1 and talk raw HTTP to them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in server log:\n{self.log()}")
            time.sleep(0.05)
        return self.log()

    def wait_for_line(self, *parts: str, timeout: float = 5.0) -> str:
        """Wait for a log line containing every one of ``parts``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if all(part in line for part in parts):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {parts!r} in server log:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(args: list[str], log_path: Path, port: int, env: dict | None = None) -> ServerProcess:
    """Run ``python <args>`` from the repository root; return once the port accepts."""
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(env or {})
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, *args], cwd=REPO_ROOT, env=environment, stdout=log_file, stderr=subprocess.STDOUT
    )
    log_file.close()
    server = ServerProcess(process, port, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"server did not listen on {port}:\n{server.log()}") from None
            time.sleep(0.05)


def handshake_request(port: int, path: str, extra_headers: bytes = b"") -> bytes:
    return (
        b"GET %s HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n" % (path.encode(), port)
    ) + extra_headers + b"\r\n"


async def raw_handshake(port: int, path: str, extra_headers: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send a WebSocket handshake and read everything until the server closes.

    Returning at all means a clean close (EOF): a reset raises ConnectionResetError and
    a server that keeps the connection open raises TimeoutError.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake_request(port, path, extra_headers))
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
