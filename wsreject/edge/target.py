"""The original request-target a proxy reports, parsed as strictly as a request line.

Only the origin-form a WebSocket handshake uses (RFC 9112 §3.2.1): ``/path`` and an
optional ``?query``. Anything a server would not take from a request line is refused:
an empty target, absolute-form (``http://host/``) or a look-alike starting ``//``,
authority-form, ``*``, a fragment,
a space, a control character, a byte outside visible ASCII, a malformed ``%``
escape, or a target longer than :data:`MAX_TARGET`. The path is percent-decoded as
uvicorn and Daphne do (``urllib.parse.unquote``: UTF-8, a bad sequence becomes
U+FFFD); ``raw_path`` and ``query_string`` keep the bytes as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["MAX_TARGET", "BadTarget", "Target", "parse_target"]

#: Longest target taken (nginx's default large_client_header_buffers line is 8 KiB).
MAX_TARGET = 8192

# Visible ASCII except "#" (fragments never travel) — RFC 3986 pchar/query plus the
# characters servers take unescaped; "%" is checked separately.
_TARGET = re.compile(rb"/[!$&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~%\"<>\\^`{|}]*")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class BadTarget(ValueError):
    """The reported target is not a request-target a server would accept."""


@dataclass(frozen=True)
class Target:
    path: str
    raw_path: bytes
    query_string: bytes


def parse_target(value: str | bytes) -> Target:
    """``value`` as origin-form ``/path[?query]``, or raise :class:`BadTarget` saying why."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if not raw:
        raise BadTarget("empty request-target")
    if len(raw) > MAX_TARGET:
        raise BadTarget(f"request-target longer than {MAX_TARGET} bytes")
    if not raw.startswith(b"/"):
        raise BadTarget("request-target must be origin-form, starting with '/'")
    if raw.startswith(b"//"):
        raise BadTarget("request-target starts with '//' (read as an authority by some servers)")
    if _TARGET.fullmatch(raw) is None:
        raise BadTarget("request-target holds a space, control, non-ASCII or '#' character")
    if _BAD_ESCAPE.search(raw):
        raise BadTarget("request-target holds a malformed %-escape")
    raw_path, _, query = raw.partition(b"?")
    return Target(path=unquote(raw_path.decode("ascii")), raw_path=raw_path, query_string=query)
