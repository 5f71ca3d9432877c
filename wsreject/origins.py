"""Origin parsing and matching for :class:`~wsreject.middleware.OriginMiddleware`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

__all__ = ["DEFAULT_PORTS", "Origin", "is_allowed", "origin_matches", "origins_unchecked", "parse_allowed", "parse_origin"]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` as sent by browsers, or None when malformed (or ``null``)."""
    if not value or value != value.strip() or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    if port == 0:
        return None
    return Origin(scheme, parts.hostname.lower(), DEFAULT_PORTS[scheme] if port is None else port)


def parse_allowed(entry: str) -> Origin:
    """An ``ALLOWED_ORIGINS`` entry; the host may start with ``*.`` to allow subdomains."""
    wildcard = "://*." in entry
    origin = parse_origin(entry.replace("://*.", "://wildcard.", 1) if wildcard else entry)
    if origin is None:
        raise ValueError(f"invalid allowed origin {entry!r}; expected 'https://host[:port]' or '*'")
    if wildcard:
        origin = Origin(origin.scheme, "*." + origin.host.removeprefix("wildcard."), origin.port)
    return origin


def origin_matches(origin: Origin, allowed: Origin) -> bool:
    if origin.scheme != allowed.scheme or origin.port != allowed.port:
        return False
    if allowed.host.startswith("*."):
        return origin.host.endswith(allowed.host[1:])
    return origin.host == allowed.host


def is_allowed(origin: Origin, allowed_origins: list[str] | tuple[str, ...] | None) -> bool:
    """Whether ``origin`` is allowed; ``None`` means: its host is in ``ALLOWED_HOSTS``."""
    if allowed_origins is None:
        hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not hosts:
            hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's HttpRequest.get_host()
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        return validate_host(host, hosts)
    return any(entry == "*" or origin_matches(origin, parse_allowed(entry)) for entry in allowed_origins)


def origins_unchecked(allowed_origins: list[str] | tuple[str, ...] | None) -> bool:
    """Whether ``ALLOWED_ORIGINS`` left to ``ALLOWED_HOSTS`` admits every Origin: ``"*"`` among the
    hosts with ``DEBUG`` off (Django then accepts any Host, and wsreject any Origin).

    An explicit ``ALLOWED_ORIGINS = ["*"]`` is a choice, not an accident: not reported.
    """
    return allowed_origins is None and not settings.DEBUG and "*" in settings.ALLOWED_HOSTS
