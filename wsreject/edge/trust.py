"""The app behind the edge takes the edge's word: a handshake it vouched for is not decided twice.

When the backend behind nginx or Caddy is this same Django app, the edge's forward-auth
answer (:mod:`wsreject.edge.views`) already decided the handshake and counted its
throttles; the generated configurations pass its signed ``X-Wsreject-Vouch`` on.
:func:`vouched_user` (called by ``CredentialsMiddleware``) trusts a vouch only when

* the handshake is live (a :func:`wsreject.decide` run, such as revocation's re-check,
  never skips anything),
* the TCP peer (``scope["client"]``, never ``X-Forwarded-For``) is one of
  ``WSREJECT_EDGE["TRUSTED_PROXIES"]``,
* it is the only one, its signature holds, it is younger than ``VOUCH_TTL``, and it was
  issued for this very path and query,
* the vouched user still exists and is active (read through the cached user layer).

Then the user is the vouched one (no authenticator runs, so a single-use ticket spent at
the edge is not asked for again) and the scope carries :data:`~wsreject.scope.VOUCHED_KEY`:
the access rules are not applied again and throttles do not count. The consumer's own
declared checks run again (cheap, and object checks need the converted arguments), with
their throttles skipped. Anything else is ignored — the handshake is decided as if it
carried no vouch — and logged at WARNING, once a minute per reason.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser

from ..cache.users import cached_user
from ..handshake import ProbeHandshake, current_handshake
from ..offload import run_off_loop_if_needed
from ..reporting import warn_rate_limited
from ..scope import client_address, header_values
from ..types import Scope
from .conf import edge_settings
from .signing import VOUCH_HEADER, vouched_user_id

__all__ = ["vouched_user"]

_HEADER = VOUCH_HEADER.lower().encode("ascii")


def _ignored(reason: str, scope: Scope) -> None:
    warn_rate_limited(
        f"edge-vouch:{reason}",
        "%s from %s ignored (%s): the handshake to %r is decided as if it had none",
        VOUCH_HEADER,
        client_address(scope),
        reason,
        str(scope.get("path", ""))[:200],
    )


def _target(scope: Scope) -> tuple[bytes, bytes]:
    raw_path = scope.get("raw_path")
    if not isinstance(raw_path, bytes) or not raw_path:
        raw_path = str(scope.get("path", "")).encode("utf-8")
    query = scope.get("query_string") or b""
    return raw_path, query if isinstance(query, bytes) else b""


async def vouched_user(scope: Scope) -> Any:
    """The user the edge vouched for on this handshake (``AnonymousUser`` for an anonymous
    admission), or None when the handshake carries no vouch to trust (see the module)."""
    values = header_values(scope, _HEADER)
    if not values or isinstance(current_handshake(scope), ProbeHandshake):
        return None
    config = edge_settings()
    client = scope.get("client")
    if not config.trusts(str(client[0]) if client else None):
        _ignored("the peer is not in WSREJECT_EDGE['TRUSTED_PROXIES']", scope)
        return None
    if len(values) != 1:
        _ignored("more than one", scope)
        return None
    raw_path, query = _target(scope)
    valid, user_id = vouched_user_id(values[0].decode("latin-1"), raw_path, query, config.vouch_ttl)
    if not valid:
        _ignored("forged, expired, or issued for another path", scope)
        return None
    if user_id is None:
        return AnonymousUser()
    user = await run_off_loop_if_needed(cached_user, user_id)
    if user is None or not getattr(user, "is_active", False):
        _ignored("the vouched user is gone or inactive", scope)
        return None
    return user
