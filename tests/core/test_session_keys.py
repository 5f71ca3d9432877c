"""Session cookies that cannot be session keys never reach the session store (issue 18, item 7).

A quoted cookie value may decode to a NUL byte (``"\\000..."``); PostgreSQL refuses NUL in any
text, so looking such a key up was a 500 on every endpoint. Now a value no engine could have
issued is no session cookie at all: the handshake is anonymous, and no query is made for it.
The same inputs against real servers on PostgreSQL: ``tests/security/test_session_cookie_servers.py``.
"""

from __future__ import annotations

import pytest

from project.asgi import application
from wsreject.authentication.session_keys import plausible_session_key
from wsreject.testing import HandshakeCommunicator

DB = "django.contrib.sessions.backends.db"
SIGNED = "django.contrib.sessions.backends.signed_cookies"

#: Cookie header values (bytes as sent) whose session key can be no key of Django's stores.
HOSTILE_COOKIES = {
    "quoted-nul": b'sessionid="\\000' + b"a" * 31 + b'"',
    "quoted-nul-last": b'sessionid="' + b"a" * 31 + b'\\000"',
    "quoted-newline": b'sessionid="\\012' + b"a" * 31 + b'"',
    "latin-1": b"sessionid=" + b"\xe9" * 32,
    "upper-case": b"sessionid=" + b"A" * 32,
    "too-long": b"sessionid=" + b"a" * 33,
    "too-short": b"sessionid=" + b"a" * 31,
    "punctuation": b"sessionid=" + b"a" * 31 + b"'",
}


@pytest.mark.parametrize(
    ("value", "engine", "plausible"),
    [
        ("abcdefghijklmnopqrstuvwxyz012345", DB, True),
        ("abcdefghijklmnopqrstuvwxyz01234\x00", DB, False),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", DB, False),
        ("a" * 31, DB, False),
        ("a" * 33, DB, False),
        ("a" * 32, "django.contrib.sessions.backends.cache", True),
        ("a" * 31 + "é", "django.contrib.sessions.backends.file", False),
        # Other engines make other keys (signed cookies: base64url and ":"): printable ASCII, 8-4096.
        (".eJxVjMsKwjAQRf8laylJJ2lt:1r2abc:Xy-z_09", SIGNED, True),
        ("short", SIGNED, False),
        ("a" * 4096, SIGNED, True),
        ("a" * 4097, SIGNED, False),
        ("abcdefgh\x00", SIGNED, False),
        ("abcd efgh", SIGNED, False),
        ("abcdefgh\n", SIGNED, False),
        ("abcdefghé", "myproject.sessions", False),
    ],
)
def test_plausible_session_key(value, engine, plausible):
    assert plausible_session_key(value, engine) is plausible


async def private(cookie: bytes):
    communicator = HandshakeCommunicator(application, "/ws/private/", headers=[(b"cookie", cookie)])
    return await communicator.handshake()


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
async def test_an_impossible_session_key_is_no_session_and_costs_no_query(transactional_db, query_counter, cookie):
    await private(b"a=1")  # warm: the rules and versions read once
    before = query_counter.count
    result = await private(cookie)
    assert (result.status_code, result.json()) == (401, {"detail": "Not authenticated"})
    assert query_counter.count == before, query_counter.items[before:]


async def test_a_well_shaped_unknown_key_is_still_looked_up(transactional_db, query_counter):
    """The control: the counter sees a session lookup, and an unknown key is anonymous as before."""
    await private(b"a=1")
    before = query_counter.count
    result = await private(b"sessionid=" + b"a" * 32)
    assert (result.status_code, result.json()) == (401, {"detail": "Not authenticated"})
    assert any("django_session" in sql for sql in query_counter.items[before:])
