"""HTTP rules for a response to a WebSocket handshake, shared by denials and the Daphne server.

One place decides what a denial may contain, so that what wsreject lets an
application build and what ``wsreject.daphne`` lets an application send are the
same (the stricter rule of the two wins everywhere):

* header names are RFC 9110 tokens; values hold no control byte — C0 but TAB,
  DEL, or C1 (``str.splitlines()`` treats ``\\x85`` as a line break: Daphne
  CVE-2026-44546);
* framing headers (``content-length``, ``transfer-encoding``, ``connection``,
  ``upgrade``) belong to the server, never to a denial;
* no body on 1xx, 204, 205 and 304; ``content-length`` on all but 1xx, 204 and
  304 (a 205 says 0), as Starlette writes it;
* the reason phrase is the registered one, or a generic one for the class.
"""

from __future__ import annotations

import http
import json
import re
from typing import Any

__all__ = [
    "DENIAL_EXTENSION",
    "FORBIDDEN_IN_VALUE",
    "FRAMING_HEADERS",
    "HEADER_NAME",
    "RESPONSE_BODY",
    "RESPONSE_START",
    "body_allowed",
    "has_content_length",
    "header_problem",
    "reason_phrase",
    "render_json",
    "status_phrase",
]

#: The ASGI extension an application may use to answer a handshake with HTTP.
DENIAL_EXTENSION = "websocket.http.response"
RESPONSE_START = "websocket.http.response.start"
RESPONSE_BODY = "websocket.http.response.body"


#: RFC 9110 token characters, for field names.
HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Bytes refused in field values: C0 except TAB, DEL and C1.
FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: Headers that describe framing and the connection: the server writes them.
FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"upgrade"})

_GENERIC_PHRASES = {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error"}


def status_phrase(status: int) -> str:
    """The registered phrase ("Unauthorized"), or "" for an unregistered status (as Starlette)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def reason_phrase(status: int) -> str:
    """The reason phrase of a status line: the registered one, else a generic one for its class."""
    return status_phrase(status) or _GENERIC_PHRASES.get(status // 100, "Unknown")


def body_allowed(status: int) -> bool:
    """HTTP forbids content on 1xx, 204, 205 and 304 responses (RFC 9110 §15)."""
    return not (status < 200 or status in (204, 205, 304))


def has_content_length(status: int) -> bool:
    """Whether the response states its length: all but 1xx, 204 and 304 (205 says 0)."""
    return not (status < 200 or status in (204, 304))


def header_problem(name: bytes, value: bytes) -> str | None:
    """Why ``name: value`` may not be part of a denial, or None when it may."""
    if not HEADER_NAME.fullmatch(name):
        return f"invalid header name {name!r}"
    if FORBIDDEN_IN_VALUE.search(value):
        return f"header {name.decode('ascii')!r} has a control character in its value"
    if name.lower() in FRAMING_HEADERS:
        return f"header {name.decode('ascii')!r} is set by the server, not by a denial"
    return None


def render_json(data: Any) -> bytes:
    """JSON exactly as Starlette's ``JSONResponse`` writes it: compact, UTF-8, no NaN."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
