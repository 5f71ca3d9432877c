"""Outages and clients that leave, in process: what wsreject answers and what it logs.

The real-server versions are in ``test_dependencies.py``; these pin each behaviour to
the piece of wsreject that owns it, with real exceptions (uvloop's, redis-py's,
uvicorn's) rather than look-alikes.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
import uvloop

from wsreject.denial import closed_transport, default_exception_handler, is_unavailable

SCOPE = {"type": "websocket", "path": "/ws/x/"}


def uvloop_closed_transport_error() -> RuntimeError:
    """What uvloop raises when writing to a connection the peer reset (a pooled Redis
    connection after an outage): produced for real, on a real socket."""

    async def provoke() -> RuntimeError:
        def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

        server = await asyncio.start_server(reset, "127.0.0.1", 0)
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            for _ in range(100):
                await asyncio.sleep(0.02)
                writer.writelines([b"PING\r\n"])
        except RuntimeError as exc:
            return exc
        finally:
            server.close()
        raise AssertionError("uvloop never refused the write")

    return uvloop.run(provoke())


def test_uvloops_closed_transport_error_is_an_outage_not_a_bug():
    exc = uvloop_closed_transport_error()
    assert closed_transport(exc) and is_unavailable(exc)
    response = default_exception_handler(exc, SCOPE)
    assert (response.status_code, response.header("retry-after"), response.body) == (
        503,
        "5",
        b'{"detail":"Service Unavailable"}',
    )
    # Another error raised while handling it (a library's cleanup) still counts as the outage.
    try:
        try:
            raise exc
        except RuntimeError:
            raise ValueError("while cleaning up")
    except ValueError as wrapped:
        assert is_unavailable(wrapped)


@pytest.mark.parametrize("message", ["unable to perform operation", "the handler is closed", "boom"])
def test_other_runtime_errors_stay_bugs(message):
    exc = RuntimeError(message)
    assert not is_unavailable(exc) and default_exception_handler(exc, SCOPE) is None
