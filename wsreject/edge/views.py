"""The forward-auth endpoints: ask wsreject about a handshake a proxy holds.

* :func:`forward_auth` (Traefik ``forwardAuth``, Caddy ``forward_auth``, Envoy
  ``ext_authz``): admitted -> ``200`` with the identity headers; denied -> the very
  status, headers and body the handshake would get, which those proxies relay.
* :func:`forward_auth_nginx` (nginx ``auth_request``, which passes on only 401 and
  403 and turns any other status into its own 500): admitted -> ``200`` as above;
  denied -> ``401`` (a 401 denial) or ``403`` (any other) with the denial, signed, in
  ``X-Wsreject-Denial``; nginx's ``error_page`` then asks :func:`render_denial`,
  which answers with the denial itself.

Every answer is decided for the caller only when it is a configured proxy
(``WSREJECT_EDGE["TRUSTED_PROXIES"]``; others get 403); a description that is not a
WebSocket handshake a server would take gets 400. A decision counts as a live
handshake (throttles count it). An admitted answer carries ``X-Wsreject-Vouch``,
which the same Django app behind the edge accepts instead of deciding again
(:mod:`wsreject.edge.trust`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from django.core import signing
from django.http import HttpRequest, HttpResponse

from ..conf import wsreject_settings
from ..decision import decide
from ..denial import UNAVAILABLE_RETRY_AFTER, DenialResponse, DenyHandshake
from .conf import EdgeSettings, edge_settings
from .described import described_scope
from .signing import VOUCH_HEADER, denial_from_token, denial_token, vouch
from .target import BadTarget

__all__ = [
    "DENIAL_HEADER",
    "VOUCH_HEADER",
    "decided",
    "forward_auth",
    "forward_auth_nginx",
    "header_value",
    "http_response",
    "identity",
    "render_denial",
]

logger = logging.getLogger("wsreject.edge")

DENIAL_HEADER = "X-Wsreject-Denial"


def http_response(denial: DenialResponse) -> HttpResponse:
    """``denial`` as a Django response: its status, headers and body, content headers as on the wire."""
    response = HttpResponse(denial.body, status=denial.status_code)
    del response["Content-Type"]
    for name, value in denial.headers:
        response.headers[name.decode("latin-1")] = value.decode("latin-1")
    response["Content-Length"] = str(len(denial.body))
    if denial.media_type:
        response["Content-Type"] = denial.media_type
    return response


def header_value(value: Any) -> str:
    """``value`` as a header value: visible ASCII kept, anything else %-encoded as UTF-8."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe="!#$&'()*+,/:;=?@[]~ ")


def identity(user: Any, config: EdgeSettings) -> dict[str, str]:
    """The identity headers for an admitted ``user``: every configured name, empty for an
    anonymous user or an empty attribute (so a proxy that copies them always has a value)."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    headers = {}
    for name, attribute in config.identity_headers:
        value = None
        if authenticated:
            value = user.get_username() if attribute == "username" else getattr(user, attribute, None)
        headers[name] = "" if value in (None, "") else header_value(value)
    return headers


async def decided(request: HttpRequest, config: EdgeSettings) -> HttpResponse | DenialResponse:
    """The admitted answer (200) or the denial, for a trusted caller's description."""
    if not config.trusts(request.META.get("REMOTE_ADDR")):
        logger.warning(
            "forward-auth call from %r refused: not in WSREJECT_EDGE['TRUSTED_PROXIES']", request.META.get("REMOTE_ADDR")
        )
        return DenyHandshake(403).response()
    try:
        scope = described_scope(request)
    except BadTarget as exc:
        return DenyHandshake(400, str(exc)).response()
    timeout = wsreject_settings.DECISION_TIMEOUT
    try:
        decision = await asyncio.wait_for(decide(scope, consume=True), timeout)
    except TimeoutError:
        return DenyHandshake(503, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}).response()
    denial = decision.response()
    if denial is not None:
        return denial
    response = HttpResponse(status=200)
    del response["Content-Type"]
    for name, value in identity(decision.user, config).items():
        response[name] = value
    user_id = getattr(decision.user, "pk", None) if getattr(decision.user, "is_authenticated", False) else None
    response[VOUCH_HEADER] = vouch(scope["raw_path"], scope["query_string"], user_id)
    return response


async def forward_auth(request: HttpRequest) -> HttpResponse:
    """Forward auth for proxies that relay the denial as it is (Caddy, Traefik, Envoy)."""
    answer = await decided(request, edge_settings())
    return http_response(answer) if isinstance(answer, DenialResponse) else answer


async def forward_auth_nginx(request: HttpRequest) -> HttpResponse:
    """Forward auth for nginx's ``auth_request``: a denial as 401/403 plus the signed denial."""
    answer = await decided(request, edge_settings())
    if not isinstance(answer, DenialResponse):
        return answer
    response = HttpResponse(status=401 if answer.status_code == 401 else 403)
    del response["Content-Type"]
    response[DENIAL_HEADER] = denial_token(answer)
    return response


def render_denial(request: HttpRequest) -> HttpResponse:
    """The denial nginx carried from :func:`forward_auth_nginx` (its ``error_page``), verbatim.
    A missing, altered or stale token, or an untrusted caller, gets a plain 403."""
    if not edge_settings().trusts(request.META.get("REMOTE_ADDR")):
        return http_response(DenyHandshake(403).response())
    token = request.META.get("HTTP_" + DENIAL_HEADER.upper().replace("-", "_"), "")
    try:
        return http_response(denial_from_token(token))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return http_response(DenyHandshake(403).response())
