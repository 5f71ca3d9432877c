"""``--proxy-headers`` done safely: the client is the address the trusted proxy appended.

Daphne's own parsing takes the *leftmost* ``X-Forwarded-For`` entry, which the client
writes itself (nginx's ``$proxy_add_x_forwarded_for`` appends the peer's address to
whatever the client sent), and decodes the headers as UTF-8 without a guard (a 500 on
any other byte). :class:`Forwarding` instead

* takes the entry ``proxy_count`` places from the right (1: the one the proxy in front
  of the server appended), as uvicorn's ``--forwarded-allow-ips`` and Django REST
  framework's ``NUM_PROXIES`` count;
* accepts it only when it is an IP address; anything else (too few entries, bytes that
  are not ASCII, a name) leaves the connection's own peer address in place, which is
  the proxy's: such clients share one budget rather than choose their own;
* takes ``X-Forwarded-Proto`` only when it is ``http``, ``https``, ``ws`` or ``wss``,
  and ``X-Forwarded-Port`` only when it is a port number.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEMES", "Forwarding", "as_ascii", "header_entries"]

#: Forwarded schemes understood, by scope type: ``(http scheme, websocket scheme)``.
SCHEMES = {"http": ("http", "ws"), "ws": ("http", "ws"), "https": ("https", "wss"), "wss": ("https", "wss")}


def header_entries(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The comma-separated entries of every ``name`` header, in order, stripped."""
    entries: list[bytes] = []
    for header, value in headers:
        if header.lower() == name:
            entries.extend(entry.strip() for entry in value.split(b","))
    return entries


def as_ascii(value: bytes) -> str | None:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class Forwarding:
    """Which forwarding headers a server trusts, and behind how many proxies."""

    address_header: bytes = b"x-forwarded-for"
    port_header: bytes | None = b"x-forwarded-port"
    proto_header: bytes | None = b"x-forwarded-proto"
    proxy_count: int = 1

    @classmethod
    def from_daphne(cls, address: str | None, port: str | None, proto: str | None, proxy_count: int) -> Forwarding | None:
        """From Daphne's ``proxy_forwarded_*_header`` server options (None: not behind a proxy)."""
        if not address:
            return None
        if proxy_count < 1:
            raise ValueError(f"proxy_count must be at least 1, not {proxy_count}")
        return cls(
            address_header=address.lower().encode("ascii"),
            port_header=port.lower().encode("ascii") if port else None,
            proto_header=proto.lower().encode("ascii") if proto else None,
            proxy_count=proxy_count,
        )

    def client_host(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The address ``proxy_count`` entries from the right, if it is an IP address."""
        entries = header_entries(headers, self.address_header)
        if len(entries) < self.proxy_count:
            return None
        host = as_ascii(entries[-self.proxy_count])
        if host is None:
            return None
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            return None

    def client_port(self, headers: Iterable[tuple[bytes, bytes]]) -> int:
        entries = header_entries(headers, self.port_header) if self.port_header else []
        port = as_ascii(entries[-1]) if entries else None
        if port is not None and port.isdigit() and int(port) <= 65535:
            return int(port)
        return 0

    def scheme(self, headers: Iterable[tuple[bytes, bytes]], websocket: bool) -> str | None:
        entries = header_entries(headers, self.proto_header) if self.proto_header else []
        proto = as_ascii(entries[-1]) if entries else None
        schemes = SCHEMES.get(proto.lower()) if proto is not None else None
        return None if schemes is None else schemes[websocket]

    def apply(self, scope: dict[str, Any]) -> None:
        """Rewrite ``scope["client"]`` (and ``scheme``) from the trusted headers, in place."""
        headers = scope.get("headers") or []
        host = self.client_host(headers)
        if host is not None:  # else the peer (the proxy) stays the client
            scope["client"] = [host, self.client_port(headers)]
        scheme = self.scheme(headers, scope.get("type") == "websocket")
        if scheme is not None:
            scope["scheme"] = scheme
