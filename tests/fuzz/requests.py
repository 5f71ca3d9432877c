"""Handshake requests as the strategies generate them, and their rendering to what a server
receives (bytes on the wire) or what a server hands the application (an ASGI scope).

Credentials are symbolic (:class:`Ref`) until rendered with the demo's real secrets, so the
same example runs in process and against a server, and a failing example reads well.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from .model import Secrets

CRLF = b"\r\n"


@dataclass(frozen=True)
class Ref:
    """A demo credential, maybe mangled: ``kind`` is token, drf, jwt, session or ticket."""

    kind: str
    user: str
    mangle: str = ""  # see MANGLES
    origin: str | None = None  # tickets: the Origin it is bound to

    def __str__(self) -> str:  # shown in falsifying examples
        extra = f"~{self.mangle}" if self.mangle else ""
        return f"<{self.kind}:{self.user}{extra}>"


def _flip(text: str, index: int) -> str:
    ch = text[index]
    swapped = "b" if ch == "a" else "a" if ch.isalpha() else "0" if ch != "0" else "1"
    return text[:index] + swapped + text[index + 1 :]


MANGLES: dict[str, Callable[[str], str]] = {
    "": lambda s: s,
    "flip_last": lambda s: _flip(s, len(s) - 1),  # the MAC / JWT signature
    "flip_middle": lambda s: _flip(s, len(s) // 2),  # the secret part / JWT payload
    "flip_first_after_prefix": lambda s: _flip(s, 4),
    "truncate": lambda s: s[:-1],
    "extend": lambda s: s + "A",
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "swapcase": lambda s: s.swapcase(),
    "double": lambda s: s + s,
    "strip_prefix": lambda s: s[4:],
    "jwt_no_signature": lambda s: s.rsplit(".", 1)[0] + ".",
    "jwt_alg_none": lambda s: _b64url(b'{"alg":"none","typ":"JWT"}') + "." + (s.split(".") + [s, s])[1] + ".",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


Part = str | bytes | Ref


@dataclass(frozen=True)
class FuzzRequest:
    """One handshake: the request target (path and query, as on the wire), extra headers in
    order (duplicates and casing kept), and how the model classifies its Origin."""

    path: tuple[str, ...]  # on-wire spelling, in pieces ("%2F", "/", "w", ...)
    query: tuple[Part, ...] = ()  # without "?"; () = no "?" at all
    headers: tuple[tuple[str | bytes, tuple[Part, ...]], ...] = ()
    origin: str = "none"  # "none" | "ok" | "bad" | "unknown"
    has_query: bool = False

    def with_path(self, path: str) -> FuzzRequest:
        return FuzzRequest((path,), self.query, self.headers, self.origin, self.has_query)

    @property
    def raw_path(self) -> str:
        return "".join(self.path)

    def describe(self) -> str:
        query = "?" + "".join(str(p) for p in self.query) if self.has_query else ""
        lines = [f"GET {self.raw_path}{query}"]
        lines += [f"{name!s}: {''.join(str(p) for p in value)}" for name, value in self.headers]
        return "\n".join(lines)


@dataclass
class Renderer:
    """Turns :class:`Ref` parts into real secrets; tickets come from ``issue_ticket``
    (in process only), each rendering a fresh one."""

    secrets: Secrets
    issue_ticket: Callable[[str, str | None], str] | None = None
    issued: dict[str, object] = field(default_factory=dict)  # ticket -> model.Ticket

    def secret(self, ref: Ref) -> str:
        if ref.kind == "ticket":
            if self.issue_ticket is None:
                value = "wst_" + _b64url(os.urandom(32))  # never issued: refused
            else:
                value = self.issue_ticket(ref.user, ref.origin)
        else:
            table = {
                "token": self.secrets.tokens,
                "drf": self.secrets.drf,
                "jwt": self.secrets.jwt,
                "session": self.secrets.sessions,
            }
            value = table[ref.kind][ref.user]
        return MANGLES[ref.mangle](value)

    def part(self, part: Part) -> bytes:
        if isinstance(part, Ref):
            return self.secret(part).encode("ascii")
        if isinstance(part, bytes):
            return part
        return part.encode("utf-8")

    def value(self, parts: tuple[Part, ...]) -> bytes:
        return b"".join(self.part(p) for p in parts)

    def target(self, request: FuzzRequest) -> bytes:
        target = request.raw_path.encode("utf-8")
        if request.has_query:
            target += b"?" + self.value(request.query)
        return target

    def headers(self, request: FuzzRequest) -> list[tuple[bytes, bytes]]:
        rendered = []
        for name, parts in request.headers:
            raw_name = name if isinstance(name, bytes) else name.encode("utf-8")
            rendered.append((raw_name, self.value(parts)))
        return rendered


@dataclass(frozen=True)
class AsgiView:
    """What a server hands the application for a request (as uvicorn does it)."""

    path: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    subprotocols: list[str]


def asgi_view(target: bytes, headers: list[tuple[bytes, bytes]]) -> AsgiView:
    """The scope fields a server derives: path percent-decoded (UTF-8, errors replaced), query
    string as sent, header names lower-cased, values without surrounding whitespace,
    subprotocols split on commas."""
    raw_path, _, query = target.partition(b"?")
    path = unquote(raw_path.decode("utf-8", "replace"))
    scope_headers = [(name.lower(), value.strip(b" \t")) for name, value in headers]
    subprotocols = [
        item.strip()
        for name, value in scope_headers
        if name == b"sec-websocket-protocol"
        for item in value.decode("latin-1").split(",")
    ]
    return AsgiView(path, raw_path, query, scope_headers, subprotocols)


def wire_request(target: bytes, headers: list[tuple[bytes, bytes]], host: str, port: int, key: str) -> bytes:
    """The upgrade request exactly as sent: the handshake's own headers, then ours in order."""
    lines = [
        b"GET " + target + b" HTTP/1.1",
        f"Host: {host}:{port}".encode("ascii"),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key.encode("ascii"),
        b"Sec-WebSocket-Version: 13",
    ]
    lines += [name + b": " + value for name, value in headers]
    return CRLF.join(lines) + CRLF + CRLF
