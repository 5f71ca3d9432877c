"""What the probe sends: the target URL, validated user input and the upgrade request.

Everything a user types is checked here, before any connection is made; a bad value
raises :class:`UsageError` with a message that never repeats a secret.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "WS_GUID",
    "Target",
    "UpgradeRequest",
    "UsageError",
    "check_subprotocol",
    "check_value",
    "expected_accept",
    "mask_value",
    "parse_cookie",
    "parse_header",
    "parse_url",
]

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

_SCHEMES = {"ws": False, "http": False, "wss": True, "https": True}  # scheme -> TLS
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
# C0 except TAB, DEL, C1: never inside a header value (CR and LF would split the request).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Headers that make the handshake itself: the probe writes them, the user cannot.
_PROBE_HEADERS = {
    "upgrade": "set by the probe",
    "connection": "set by the probe",
    "sec-websocket-key": "set by the probe",
    "sec-websocket-version": "set by the probe",
    "sec-websocket-extensions": "the probe offers no extensions",
    "sec-websocket-protocol": "use --subprotocol",
    "content-length": "a handshake has no body",
    "transfer-encoding": "a handshake has no body",
}
# Values never echoed in full: credentials.
_SECRET_NAMES = re.compile(r"authorization|cookie|token|secret|password|api[-_]?key|session", re.IGNORECASE)
_VISIBLE_PREFIX = 4  # characters of a credential shown ...
_MIN_SECRET_TO_PEEK = 16  # ... only when it is at least this long


class UsageError(ValueError):
    """A command-line value the probe refuses (exit 2)."""


@dataclass(frozen=True)
class Target:
    """Where to connect and what to ask for."""

    url: str
    tls: bool
    host: str  # for the socket: a name or an IP literal without brackets
    port: int
    host_header: str  # "host[:port]" as the Host header carries it
    resource: str  # path and query, as sent in the request line


def _percent_encode_unsafe(text: str) -> str:
    """Keep printable ASCII as given (including existing %XX); encode the rest as UTF-8 %XX."""
    return "".join(char if "!" <= char <= "~" else "".join(f"%{byte:02X}" for byte in char.encode("utf-8")) for char in text)


def parse_url(url: str) -> Target:
    """A ``ws://``, ``wss://`` (or ``http://``, ``https://``) URL as a :class:`Target`."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise UsageError(f"unsupported URL scheme {parts.scheme!r}: use ws://, wss://, http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise UsageError("credentials in the URL are not supported: pass them with --header or --cookie")
    if parts.fragment or url.rstrip().endswith("#"):
        raise UsageError("a WebSocket URL cannot have a fragment (RFC 6455 §3)")
    host = parts.hostname
    if not host:
        raise UsageError(f"no host in URL {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"invalid port in URL {url!r}") from None
    tls = _SCHEMES[scheme]
    default_port = 443 if tls else 80
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise UsageError(f"invalid host name in URL {url!r}") from None
    if not re.fullmatch(r"[A-Za-z0-9.\-_:%]+", host):
        raise UsageError(f"invalid host in URL {url!r}")
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port in (None, default_port) else f"{bracketed}:{port}"
    resource = _percent_encode_unsafe(parts.path or "/")
    if parts.query or url.rstrip().endswith("?"):
        resource += "?" + _percent_encode_unsafe(parts.query)
    return Target(url=url.strip(), tls=tls, host=host, port=port or default_port, host_header=host_header, resource=resource)


def check_value(what: str, value: str) -> str:
    """``value`` unless it holds a control character (CR and LF above all)."""
    if _CONTROL.search(value):
        kind = "CR or LF" if ("\r" in value or "\n" in value) else "a control character"
        raise UsageError(f"{what}: the value contains {kind}")
    return value


def parse_header(option: str) -> tuple[str, str]:
    """``"Name: value"`` from ``--header`` as ``(name, value)``."""
    name, colon, value = option.partition(":")
    name = name.strip()
    if not colon:
        raise UsageError("expected 'Name: value'")
    if not _TOKEN.fullmatch(name):
        raise UsageError(f"header name {name!r} is not a token")
    reserved = _PROBE_HEADERS.get(name.lower())
    if reserved:
        raise UsageError(f"{name}: {reserved}")
    return name, check_value(f"header {name}", value).strip(" \t")


def parse_cookie(option: str) -> tuple[str, str]:
    """``"name=value"`` from ``--cookie`` as ``(name, value)``."""
    name, equals, value = option.partition("=")
    name = name.strip()
    if not equals or not _TOKEN.fullmatch(name):
        raise UsageError("expected 'name=value' with a token as the name")
    check_value(f"cookie {name}", value)
    value = value.strip(" \t")
    if ";" in value or " " in value:
        raise UsageError(f"cookie {name}: the value contains ';' or a space")
    return name, value


def check_subprotocol(name: str) -> str:
    """A subprotocol name: an HTTP token (RFC 6455 §4.1)."""
    if not _TOKEN.fullmatch(name):
        raise UsageError(f"subprotocol {name!r} is not a token")
    return name


def mask_value(name: str, value: str) -> str:
    """``value`` as safe to print: credentials keep their scheme and a few characters only.

    ``Authorization: Bearer abcdef...`` → ``Bearer abcd…``; a cookie header keeps its names.
    """
    if not _SECRET_NAMES.search(name) or name.lower() == "sec-websocket-key":
        return value
    if "cookie" in name.lower():
        return "; ".join(_mask_cookie(pair.strip()) for pair in value.split(";"))
    scheme, space, credential = value.partition(" ")
    if not space:
        scheme, credential = "", value
    return f"{scheme}{space}{_peek(credential.strip())}"


def _mask_cookie(pair: str) -> str:
    name, equals, value = pair.partition("=")
    return f"{name}{equals}{_peek(value)}" if equals else _peek(pair)


def _peek(secret: str) -> str:
    return (secret[:_VISIBLE_PREFIX] if len(secret) >= _MIN_SECRET_TO_PEEK else "") + "…"


def _encode_value(value: str) -> bytes:
    """Latin-1 where it fits (HTTP's obs-text), otherwise UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def expected_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")


@dataclass(frozen=True)
class UpgradeRequest:
    """One opening handshake; ``key`` is random unless given."""

    target: Target
    headers: Sequence[tuple[str, str]] = ()
    subprotocols: Sequence[str] = ()
    origin: str | None = None
    cookies: Sequence[tuple[str, str]] = ()
    key: str = field(default_factory=lambda: base64.b64encode(os.urandom(16)).decode("ascii"))

    def header_lines(self) -> list[tuple[str, str]]:
        """Every header in the order sent."""
        lines: list[tuple[str, str]] = []
        if not any(name.lower() == "host" for name, _ in self.headers):
            lines.append(("Host", self.target.host_header))
        lines += [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self.subprotocols:
            lines.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        if self.origin is not None:
            lines.append(("Origin", self.origin))
        if self.cookies:
            lines.append(("Cookie", "; ".join(f"{name}={value}" for name, value in self.cookies)))
        lines += list(self.headers)
        return lines

    def encode(self) -> bytes:
        head = [f"GET {self.target.resource} HTTP/1.1".encode("ascii")]
        head += [name.encode("ascii") + b": " + _encode_value(value) for name, value in self.header_lines()]
        return b"\r\n".join(head) + b"\r\n\r\n"

    def describe(self) -> list[str]:
        """The request head as text, credentials masked."""
        return [f"GET {self.target.resource} HTTP/1.1"] + [
            f"{name}: {mask_value(name, value)}" for name, value in self.header_lines()
        ]

    @property
    def accept(self) -> str:
        return expected_accept(self.key)
