"""What the edge signs: a denial for nginx to render, and its word that a handshake is decided.

Both are ``django.core.signing`` tokens (HMAC-SHA256 keyed from ``SECRET_KEY``, one
salt per use), time-stamped and short-lived, so a client cannot forge, replay
later, or move one to another use.

* A **denial token** carries a denial's status, headers and body from the
  forward-auth answer (``auth_request`` passes only 401/403) to the view that
  renders it for the client (:func:`denial_token`, :func:`denial_from_token`).
* A **vouch** says "the edge admitted this handshake, on this path, for this user":
  the backend, when it is this same Django app, then neither decides nor throttles
  it a second time (:func:`vouch`, :func:`vouched_user_id`).
"""

from __future__ import annotations

import base64
from typing import Any

from django.core import signing

from ..denial import DenialResponse

#: The request header carrying the vouch from the edge to the backend.
VOUCH_HEADER = "X-Wsreject-Vouch"

__all__ = [
    "DENIAL_SALT",
    "DENIAL_TTL",
    "VOUCH_HEADER",
    "VOUCH_SALT",
    "denial_from_token",
    "denial_token",
    "vouch",
    "vouched_user_id",
]

DENIAL_SALT = "wsreject.edge.denial"
VOUCH_SALT = "wsreject.edge.vouch"
#: Seconds between the forward-auth answer and nginx asking for the rendering.
DENIAL_TTL = 30


def denial_token(response: DenialResponse) -> str:
    data = {
        "s": response.status_code,
        "h": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in response.headers],
        "b": base64.b64encode(response.body).decode("ascii"),
        "t": response.media_type,
        "d": response.detail,
    }
    return signing.dumps(data, salt=DENIAL_SALT, compress=True)


def denial_from_token(token: str) -> DenialResponse:
    """The denial ``token`` carries; ``signing.BadSignature`` when forged, altered or stale."""
    data: dict[str, Any] = signing.loads(token, salt=DENIAL_SALT, max_age=DENIAL_TTL)
    return DenialResponse(
        data["s"],
        headers=[(name, value) for name, value in data["h"]],
        body=base64.b64decode(data["b"]),
        detail=data["d"],
        media_type=data["t"],
    )


def vouch(raw_path: bytes, query_string: bytes, user_id: Any) -> str:
    target = raw_path.decode("latin-1") + ("?" + query_string.decode("latin-1") if query_string else "")
    return signing.dumps({"p": target, "u": None if user_id is None else str(user_id)}, salt=VOUCH_SALT, compress=True)


def vouched_user_id(token: str, raw_path: bytes, query_string: bytes, max_age: int) -> tuple[bool, str | None]:
    """``(True, user id or None)`` when ``token`` vouches for this very target and is fresh,
    else ``(False, None)``."""
    try:
        data: dict[str, Any] = signing.loads(token, salt=VOUCH_SALT, max_age=max_age)
    except signing.BadSignature:
        return False, None
    target = raw_path.decode("latin-1") + ("?" + query_string.decode("latin-1") if query_string else "")
    if data.get("p") != target:
        return False, None
    user_id = data.get("u")
    return True, user_id if isinstance(user_id, str) else None
