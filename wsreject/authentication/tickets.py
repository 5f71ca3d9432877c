"""Single-use tickets: how a browser, which cannot set headers on a WebSocket, authenticates.

The page asks the project's own HTTP API for a ticket (``POST`` to
:func:`~wsreject.access.views.ws_ticket` or
:class:`~wsreject.access.drf.WebSocketTicketView`, authenticated by the session
or by DRF's authentication classes), then connects with ``?ticket=...``:

* a ticket is valid **once**: it is consumed atomically (of two handshakes
  using it at the same time, one wins), and for ``WSREJECT["TICKET_TTL"]``
  seconds (default 30);
* it is bound to its user, to the ``Origin`` of the page that asked for it
  (when the request carried one), and optionally to one path;
* it lives in Django's cache (``WSREJECT["CACHE"]``), so every process sharing
  that cache (Redis) accepts it; only its SHA-256 is used as the key, and it is
  never logged (wsreject logs paths, never query strings).

Other credentials in the query string stay refused: a ticket is worthless once
used or a few seconds old, a token is not.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from ..cache.users import cached_user
from ..cache.versions import get_cache, require_cache_io
from ..conf import wsreject_settings
from ..offload import once
from ..scope import header_values
from ..types import Scope
from .base import AuthenticationFailed, BaseAuthenticator

__all__ = ["INVALID_TICKET", "PREFIX", "TicketAuthenticator", "consume_ticket", "issue_ticket", "ticket_in_query"]

PREFIX = "wst_"
INVALID_TICKET = "Invalid, expired or already used ticket"
_MAX_QUERY = 4096


def _key(ticket: str) -> str:
    return "wsreject:ticket:" + hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def issue_ticket(user: Any, *, origin: str | None = None, path: str | None = None, ttl: int | None = None) -> tuple[str, int]:
    """A new ticket for ``user`` and its lifetime in seconds."""
    if user is None or not user.is_authenticated or user.pk is None:
        raise ValueError("tickets are issued to signed-in users only")
    ttl = int(ttl if ttl is not None else wsreject_settings.TICKET_TTL)
    ticket = PREFIX + secrets.token_urlsafe(32)
    data = {"user": user.pk, "origin": origin, "path": path, "expires": time.time() + ttl}
    get_cache().set(_key(ticket), data, timeout=ttl)
    return ticket, ttl


def consume_ticket(ticket: str) -> dict[str, Any] | None:
    """The ticket's data if it is valid and this call is the one that used it, else None."""
    cache = get_cache()
    require_cache_io(cache)
    key = _key(ticket)
    data = cache.get(key)
    if data is None or not cache.delete(key):  # delete() is True for exactly one caller
        return None
    if data.get("expires", 0) <= time.time():
        return None
    return data  # type: ignore[no-any-return]


def ticket_in_query(scope: Scope) -> str | None:
    """The ``ticket`` query parameter, when there is exactly one of the right shape."""
    query = scope.get("query_string", b"")
    if not query or len(query) > _MAX_QUERY or b"ticket=" not in query:
        return None
    values = [value for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if name == "ticket"]
    if len(values) != 1 or not values[0].startswith(PREFIX) or len(values[0]) > 100:
        return None
    ticket: str = values[0]
    return ticket


class TicketAuthenticator(BaseAuthenticator):
    """``?ticket=wst_...`` from :func:`issue_ticket`: single use, short-lived, bound to a user and origin.

    A ticket is a bearer credential (RFC 6750 §2.3, in the query): a used, expired,
    unknown or misbound one is refused as any other bearer token is, with
    ``WWW-Authenticate: Bearer error="invalid_token", error_description="..."``.
    """

    scheme = "Bearer"
    single_use = True

    def get_credential(self, scope: Scope) -> str | None:
        return ticket_in_query(scope)

    def authenticate(self, scope: Scope, credential: str) -> Any:
        data = once(f"ticket:{credential}", lambda: consume_ticket(credential))  # consumed once, even if retried
        if data is None:
            raise AuthenticationFailed(INVALID_TICKET)
        origins = [value.decode("latin-1") for value in header_values(scope, b"origin")]
        if data.get("origin") is not None and origins != [data["origin"]]:
            raise AuthenticationFailed(INVALID_TICKET)
        if data.get("path") is not None and scope.get("path") != data["path"]:
            raise AuthenticationFailed(INVALID_TICKET)
        user = cached_user(data["user"])
        if user is None:
            raise AuthenticationFailed(INVALID_TICKET)
        return user

    authenticate_without_io = authenticate  # the caches raise NeedsIO when they cannot answer
