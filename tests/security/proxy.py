"""A TCP proxy a test can cut and restore, to take PostgreSQL or Redis away from a running server.

::

    with TcpProxy(("127.0.0.1", 5432)) as proxy:   # listens on 127.0.0.1:proxy.port
        ...                                        # DATABASE_URL=postgres://...@127.0.0.1:{proxy.port}/db
        proxy.cut()       # every connection closed (reset); new ones are reset at once
        proxy.restore()   # new connections are forwarded again
        proxy.delay(1.0)  # forwarded data waits 1 s per chunk (a slow dependency)

The listening socket stays open the whole time (nobody else can take the port), so a
cut dependency looks like a server that resets connections: what a client sees when a
database is restarted or a firewall rejects it. Threads: one accepting, two per
forwarded connection; everything is closed on exit.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import TracebackType
from typing import Self


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a refusing or crashed peer does. Shutting the
    reading side first wakes a thread blocked in ``recv`` on it (``close`` alone would not)."""
    for action in (
        lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
        lambda: sock.shutdown(socket.SHUT_RD),
    ):
        try:
            action()
        except OSError:
            pass
    sock.close()


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; :meth:`cut`, :meth:`restore` and :meth:`delay` it."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._delay = 0.0
        self._closed = False
        self.accepted = 0  # connections accepted while forwarding (not cut)
        self.refused = 0  # connections reset because the proxy was cut
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy:{self.port}", daemon=True)
        self._thread.start()

    # --- control ----------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every forwarded connection and every new one until :meth:`restore`."""
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def delay(self, seconds: float) -> None:
        """Hold each forwarded chunk for ``seconds`` (0: none)."""
        self._delay = seconds

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- forwarding -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed:
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open |= {client, upstream}
                self.accepted += 1
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self._delay:
                    time.sleep(self._delay)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                mine = source in self._open
                self._open.discard(source)
                self._open.discard(target)
            if mine:  # a normal end: pass the close on
                for sock in (source, target):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()
