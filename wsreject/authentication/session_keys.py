"""Which session cookie values can be session keys at all: the rest never reach the session store.

A client chooses its cookie. A value no session engine could have issued — a NUL byte (which
PostgreSQL refuses in any text, as a 500), other control characters, non-ASCII, a wrong length or
alphabet — is treated as no session cookie at all: the handshake is anonymous, and no query or
cache read is made for it.

Django's own stores (``db``, ``cached_db``, ``cache``, ``file``) only ever issue 32 characters
of ``[a-z0-9]`` (``SessionBase._get_new_session_key``); other engines (``signed_cookies``, a
project's own) get the looser rule: 8 to 4096 printable ASCII characters without spaces.
"""

from __future__ import annotations

import re

from django.contrib.sessions.backends.base import VALID_KEY_CHARS

__all__ = ["STOCK_KEY_ENGINES", "STOCK_KEY_LENGTH", "plausible_session_key"]

#: Engines whose keys are made by ``SessionBase._get_new_session_key``.
STOCK_KEY_ENGINES = frozenset(
    {
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.file",
    }
)
STOCK_KEY_LENGTH = 32
_STOCK_KEY = re.compile(f"[{re.escape(VALID_KEY_CHARS)}]{{{STOCK_KEY_LENGTH}}}\\Z")
# Django's SessionBase refuses keys shorter than 8; a cookie is at most 4096 bytes (RFC 6265 §6.1).
_ANY_KEY = re.compile(r"[!-~]{8,4096}\Z", re.ASCII)


def plausible_session_key(value: str, engine: str) -> bool:
    """Whether ``value`` could be a key issued by the session ``engine`` (a dotted module path)."""
    pattern = _STOCK_KEY if engine in STOCK_KEY_ENGINES else _ANY_KEY
    return pattern.match(value) is not None
