"""The ``WSREJECT_EDGE`` settings dict (read on every call, so ``override_settings`` works).

Every key, with its default::

    WSREJECT_EDGE = {
        "TRUSTED_PROXIES": [],          # addresses or networks allowed to call the endpoints;
                                        # empty: every call is refused (403)
        "IDENTITY_HEADERS": {           # response header -> attribute of the admitted user
            "X-Auth-Request-User": "username",  # "username" is user.get_username()
            "X-Auth-Request-Email": "email",
        },
        "VOUCH_TTL": 10,                # seconds the edge's signed "decided already" header is valid
    }
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULT_IDENTITY_HEADERS", "KEYS", "EdgeSettings", "Network", "edge_settings"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_IDENTITY_HEADERS = {"X-Auth-Request-User": "username", "X-Auth-Request-Email": "email"}
KEYS = ("TRUSTED_PROXIES", "IDENTITY_HEADERS", "VOUCH_TTL")


@dataclass(frozen=True)
class EdgeSettings:
    trusted_proxies: tuple[Network, ...]
    identity_headers: tuple[tuple[str, str], ...]
    vouch_ttl: int

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` (the caller's IP) is a configured proxy."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted_proxies)


def _networks(entries: Any) -> tuple[Network, ...]:
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise ImproperlyConfigured("WSREJECT_EDGE['TRUSTED_PROXIES'] must be a list of addresses or networks")
    try:
        return tuple(ipaddress.ip_network(str(entry), strict=False) for entry in entries)
    except ValueError as exc:
        raise ImproperlyConfigured(f"WSREJECT_EDGE['TRUSTED_PROXIES']: {exc}") from None


def _identity_headers(entries: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(entries, Mapping):
        raise ImproperlyConfigured("WSREJECT_EDGE['IDENTITY_HEADERS'] must be a dict: header name -> user attribute")
    result = []
    for name, attribute in entries.items():
        if not isinstance(name, str) or not name or not all(c.isalnum() or c == "-" for c in name) or not name.isascii():
            raise ImproperlyConfigured(f"WSREJECT_EDGE['IDENTITY_HEADERS']: {name!r} is not a header name")
        if not isinstance(attribute, str) or not attribute.isidentifier():
            raise ImproperlyConfigured(f"WSREJECT_EDGE['IDENTITY_HEADERS'][{name!r}]: {attribute!r} is not an attribute name")
        result.append((name, attribute))
    return tuple(result)


def edge_settings() -> EdgeSettings:
    """The validated ``WSREJECT_EDGE`` (a bad value raises ``ImproperlyConfigured``)."""
    raw = getattr(settings, "WSREJECT_EDGE", {})
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("WSREJECT_EDGE must be a dict")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ImproperlyConfigured(f"WSREJECT_EDGE has unknown keys {unknown}; known: {list(KEYS)}")
    ttl = raw.get("VOUCH_TTL", 10)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 300:
        raise ImproperlyConfigured("WSREJECT_EDGE['VOUCH_TTL'] must be whole seconds between 1 and 300")
    return EdgeSettings(
        trusted_proxies=_networks(raw.get("TRUSTED_PROXIES", [])),
        identity_headers=_identity_headers(raw.get("IDENTITY_HEADERS", DEFAULT_IDENTITY_HEADERS)),
        vouch_ttl=ttl,
    )
