"""Hypothesis strategies for handshake requests to the demo.

Three families, each also free to draw from the others' pieces:

* :func:`spellings` — paths of every endpoint (and of none) spelled every way a client can:
  extra slashes, percent-encoding of any byte, ``.``/``..`` segments, case changes, unicode,
  trailing junk, very long; simple credentials;
* :func:`credentials` — the login-required endpoints with every shape of credential:
  ``Authorization`` (valid, forged and mangled wsreject tokens, JWTs, DRF tokens, other
  schemes, duplicates, odd casing), session cookies, tickets and tokens in the query string;
* :func:`headers` — ``Origin`` (valid, invalid, several, ``null``), ``Sec-WebSocket-Protocol``
  (percent-encoded, non-ASCII), junk and oversized headers, on any path.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import strategies as st

from .requests import MANGLES, FuzzRequest, Part, Ref

USER_NAMES = ("alice", "bob", "carol", "dave", "erin")

BASE_PATHS = (
    "/ws/echo/",
    "/ws/private/",
    "/ws/rooms/lobby/",
    "/ws/rooms/dev/",
    "/ws/rooms/nosuch/",
    "/ws/staff/",
    "/ws/maintenance/",
    "/ws/limited/",
    "/ws/broken/",
    "/ws/teapot/",
    "/ws/deny/404/",
    "/ws/deny/451/",
    "/ws/deny/418/",
    "/ws/deny/399/",
    "/ws/deny/600/",
    "/ws/subprotocol/",
    "/ws/browser/echo/",
    "/ws/browser/private/",
    "/ws/browser/rooms/lobby/",
    "/ws/browser/staff/",
    "/ws/browser/limited/",
    "/ws/browser/broken/",
    "/ws/browser/maintenance/",
    "/ws/browser/deny/429/",
    "/ws/browser/subprotocol/",
    "/",
    "/ws/",
    "/ws/browser/",
    "/ws/rooms/",
    "/ws/rooms/a/b/",
    "/ws/nope/",
    "/admin/",
    "/api/ws-ticket/",
)
LOGIN_PATHS = (
    "/ws/private/",
    "/ws/rooms/lobby/",
    "/ws/rooms/nosuch/",
    "/ws/staff/",
    "/ws/limited/",
    "/ws/browser/private/",
    "/ws/browser/rooms/dev/",
    "/ws/browser/staff/",
    "/ws/browser/limited/",
)

UNICODE = ("／", "ｗ", "ß", "İ", "ı", "é", "é", "\u200b", "\ufeff", "∕", "⁄", "☃", "\U0001f600", "ſ", "Ｓ")


def _pct(text: str, lower: bool) -> str:
    encoded = "".join(f"%{b:02X}" for b in text.encode("utf-8"))
    return encoded.lower() if lower else encoded


@st.composite
def path_spelling(draw: st.DrawFn, bases: tuple[str, ...] = BASE_PATHS, max_edits: int = 5) -> tuple[str, ...]:
    """A base path, then up to ``max_edits`` respellings (each keeps the on-wire form valid
    unless it inserts raw unicode)."""
    pieces = list(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, max_edits))):
        edit = draw(
            st.sampled_from(
                (
                    "slash",
                    "slash",
                    "pct",
                    "pct",
                    "pct_slash",
                    "dot",
                    "case",
                    "unicode",
                    "junk",
                    "long",
                    "backslash",
                    "pct_byte",
                    "drop",
                )
            )
        )
        slashes = [i for i, p in enumerate(pieces) if p == "/"]
        where = draw(st.integers(0, len(pieces)))
        if edit == "slash" and slashes:
            i = draw(st.sampled_from(slashes))
            pieces[i:i] = ["/"] * draw(st.integers(1, 3))
        elif edit == "pct" and pieces:
            i = draw(st.integers(0, len(pieces) - 1))
            if len(pieces[i]) == 1:
                pieces[i] = _pct(pieces[i], draw(st.booleans()))
        elif edit == "pct_slash" and slashes:
            pieces[draw(st.sampled_from(slashes))] = draw(st.sampled_from(("%2F", "%2f", "%252F", "%5C", "%2F%2F")))
        elif edit == "dot" and slashes:
            i = draw(st.sampled_from(slashes)) + 1
            pieces[i:i] = [draw(st.sampled_from(("./", "../", ".", "..", "%2e/", "%2E%2E/", ".%2F", "...", "../../")))]
        elif edit == "case" and pieces:
            i = draw(st.integers(0, len(pieces) - 1))
            pieces[i] = pieces[i].swapcase()
        elif edit == "unicode":
            ch = draw(st.one_of(st.sampled_from(UNICODE), st.characters(codec="utf-8", exclude_categories=("Cs",))))
            form = draw(st.sampled_from(("raw", "pct", "pct")))
            piece = ch if form == "raw" and ch.isprintable() and not ch.isspace() else _pct(ch, draw(st.booleans()))
            if draw(st.booleans()) and pieces and where < len(pieces):
                pieces[where] = piece
            else:
                pieces.insert(where, piece)
        elif edit == "junk":
            pieces.append(
                draw(
                    st.one_of(
                        st.sampled_from(
                            (
                                ";",
                                ";x=1",
                                "#",
                                "#frag",
                                "%00",
                                "%0a",
                                "%0d%0a",
                                "%09",
                                "%20",
                                "\\",
                                "%5c",
                                "%3F",
                                "%23",
                                ".",
                                "~",
                                "*",
                                "!",
                            )
                        ),
                        st.text(min_size=1, max_size=20).map(lambda t: quote(t, safe="")),
                    )
                )
            )
        elif edit == "long":
            n = draw(st.sampled_from((64, 1000, 4000, 7000)))
            pieces.insert(where, draw(st.sampled_from(("/" * n, "a" * n, "%2F" * (n // 3), "./" * (n // 2)))))
        elif edit == "backslash" and slashes:
            pieces[draw(st.sampled_from(slashes))] = "\\"
        elif edit == "pct_byte":
            pieces.insert(where, f"%{draw(st.integers(0, 255)):02X}")
        elif edit == "drop" and pieces:
            del pieces[draw(st.integers(0, len(pieces) - 1))]
    if not pieces or not pieces[0].startswith("/"):
        pieces.insert(0, "/")
    return tuple(pieces)


# --- credentials -------------------------------------------------------------------------------

SCHEMES = (
    "Bearer",
    "Bearer",
    "bearer",
    "BEARER",
    "bEaReR",
    "Token",
    "token",
    "TOKEN",
    "Basic",
    "JWT",
    "Digest",
    "Bearer,",
    "Bearer:",
)
SEPARATORS = (" ", " ", " ", "  ", "\t", "", " \t")
AUTH_NAMES = (
    "Authorization",
    "authorization",
    "AUTHORIZATION",
    "aUtHoRiZaTiOn",
    "Authorisation",
    "Authorization ",
    "X-Authorization",
)


def _token68(draw: st.DrawFn) -> str:
    return draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", min_size=1, max_size=80))


def _jwt_shaped(draw: st.DrawFn) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts = [draw(st.text(alphabet=alphabet, min_size=1, max_size=60)) for _ in range(3)]
    return ".".join(parts)


@st.composite
def credential_value(draw: st.DrawFn) -> tuple[Part, ...]:
    """What follows the scheme in an ``Authorization`` header."""
    kind = draw(
        st.sampled_from(("ref", "ref", "ref", "ref", "forged_wsr", "jwt_shaped", "token68", "text", "bytes", "huge", "empty"))
    )
    if kind == "ref":
        ref_kind = draw(st.sampled_from(("token", "token", "drf", "jwt", "session")))
        users = {"token": USER_NAMES, "drf": USER_NAMES[:4], "jwt": USER_NAMES[:4], "session": ("alice", "carol")}[ref_kind]
        mangle = draw(st.one_of(st.just(""), st.sampled_from(tuple(MANGLES))))
        return (Ref(ref_kind, draw(st.sampled_from(users)), mangle),)
    if kind == "forged_wsr":
        alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        length = draw(st.sampled_from((62, 62, 61, 63, 0, 10)))
        return ("wsr_" + draw(st.text(alphabet=alnum, min_size=length, max_size=length)),)
    if kind == "jwt_shaped":
        return (_jwt_shaped(draw),)
    if kind == "token68":
        return (_token68(draw),)
    if kind == "text":
        return (draw(st.text(max_size=40).filter(lambda t: "\r" not in t and "\n" not in t)),)
    if kind == "bytes":
        return (draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b""),)
    if kind == "huge":
        return ("A" * draw(st.sampled_from((1000, 5000, 9000))),)
    return ("",)


@st.composite
def authorization_header(draw: st.DrawFn) -> tuple[str, tuple[Part, ...]]:
    name = draw(st.sampled_from(AUTH_NAMES[:4] if draw(st.integers(0, 9)) else AUTH_NAMES))
    scheme = draw(st.sampled_from(SCHEMES))
    separator = draw(st.sampled_from(SEPARATORS))
    trailer = draw(st.sampled_from(("",) * 6 + (" ", ",", " x", "=", ", Bearer x", ";")))
    return name, (scheme, separator, *draw(credential_value()), trailer)


@st.composite
def cookie_header(draw: st.DrawFn) -> tuple[str, tuple[Part, ...]]:
    name = draw(st.sampled_from(("Cookie", "cookie", "COOKIE")))
    user = draw(st.sampled_from(("alice", "carol")))
    mangle = draw(st.sampled_from(("",) * 4 + ("flip_last", "truncate", "upper", "extend")))
    session = Ref("session", user, mangle)
    shape = draw(
        st.sampled_from(("plain", "plain", "among", "quoted", "duplicate_before", "duplicate_after", "spaced", "junk", "bytes"))
    )
    if shape == "plain":
        parts: tuple[Part, ...] = ("sessionid=", session)
    elif shape == "among":
        parts = ("csrftoken=abc; sessionid=", session, "; theme=dark")
    elif shape == "quoted":
        parts = ('sessionid="', session, '"')
    elif shape == "duplicate_before":
        parts = ("sessionid=nope; sessionid=", session)
    elif shape == "duplicate_after":
        parts = ("sessionid=", session, "; sessionid=nope")
    elif shape == "spaced":
        parts = (" sessionid = ", session, " ;")
    elif shape == "junk":
        parts = (draw(st.text(max_size=60).filter(lambda t: "\r" not in t and "\n" not in t)),)
    else:
        parts = (draw(st.binary(max_size=60)).replace(b"\r", b"").replace(b"\n", b""),)
    return name, parts


QUERY_KEYS = ("ticket", "ticket", "token", "access_token", "detail", "h", "x", "TICKET", "ticket[]")


@st.composite
def query_string(draw: st.DrawFn, valid_tickets: bool = True) -> tuple[Part, ...]:
    pairs: list[tuple[Part, ...]] = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(QUERY_KEYS))
        kind = draw(st.sampled_from(("ticket", "forged_ticket", "token", "text", "raw", "empty")))
        if kind == "ticket" and valid_tickets:
            origin = draw(st.sampled_from((None, None, "http://localhost:8000")))
            value: tuple[Part, ...] = (Ref("ticket", draw(st.sampled_from(("alice", "bob", "carol"))), origin=origin),)
        elif kind in ("ticket", "forged_ticket"):
            value = ("wst_" + draw(st.text(alphabet="ABCDEFGHIJKLMNOPabcdefghijklmnop0123456789-_", max_size=50)),)
        elif kind == "token":
            value = (Ref(draw(st.sampled_from(("token", "drf", "jwt"))), draw(st.sampled_from(("alice", "carol")))),)
        elif kind == "text":
            value = (quote(draw(st.text(max_size=30)), safe=""),)
        elif kind == "raw":
            value = (draw(st.text(alphabet="abc=&;%+/:.!~", max_size=20)),)
        else:
            value = ("",)
        pairs.append((key, "=", *value))
    separator = draw(st.sampled_from(("&", "&", ";", "&&")))
    out: list[Part] = []
    for i, pair in enumerate(pairs):
        if i:
            out.append(separator)
        out.extend(pair)
    return tuple(out)


# --- origins, subprotocols, junk -----------------------------------------------------------------

ORIGINS_OK = (
    "http://localhost:8000",
    "http://127.0.0.1:8000",
    "https://localhost",
    "http://[::1]:8000",
    "HTTP://LOCALHOST:8000",
    "http://LocalHost",
    "ws://127.0.0.1",
    "https://127.0.0.1:443",
    "http://localhost:8000/",
)
ORIGINS_BAD = (
    "null",
    "http://evil.example",
    "http://localhost.evil.example",
    "https://127.0.0.2",
    "ftp://localhost",
    "http://localhost:8000/path",
    "http://user@localhost",
    "localhost",
    "http://localhost:0",
    "",
    "http://localhost:99999",
    "http://localhost:8000?x=1",
    "http://127.0.0.1:8000#f",
    "*",
    "http://localhost\u00e9",
    "http://xn--localhost",
    "file://",
    "http://",
)
ORIGIN_NAMES = ("Origin", "origin", "ORIGIN", "oRiGiN")


@st.composite
def origin_headers(draw: st.DrawFn) -> tuple[str, tuple[tuple[str, tuple[Part, ...]], ...]]:
    """(label, headers): none, one allowed, one refused, several, or unclassified text."""
    kind = draw(st.sampled_from(("none", "none", "ok", "ok", "bad", "several", "unknown")))
    name = draw(st.sampled_from(ORIGIN_NAMES))
    if kind == "none":
        return "none", ()
    if kind == "ok":
        return "ok", ((name, (draw(st.sampled_from(ORIGINS_OK)),)),)
    if kind == "bad":
        return "bad", ((name, (draw(st.sampled_from(ORIGINS_BAD)),)),)
    if kind == "several":
        values = draw(st.lists(st.sampled_from(ORIGINS_OK + ORIGINS_BAD[:3]), min_size=2, max_size=3))
        return "bad", tuple((draw(st.sampled_from(ORIGIN_NAMES)), (v,)) for v in values)
    text = draw(st.text(max_size=40).filter(lambda t: "\r" not in t and "\n" not in t))
    return "unknown", ((name, (text,)),)


SUBPROTOCOLS = (
    "chat.v1",
    "chat.v2",
    "chat.v1, chat.v2",
    "chat.v3, chat.v2",
    "chat.v3",
    "chat%2Ev1",
    "chat%2ev2",
    "ch\u00e4t",
    "chat.v1\u00e9",
    "",
    ",",
    "chat.v1,,",
    " chat.v1 ",
    "CHAT.V1",
    "chat.v1;q=1",
)


@st.composite
def subprotocol_header(draw: st.DrawFn) -> tuple[str, tuple[Part, ...]]:
    name = draw(st.sampled_from(("Sec-WebSocket-Protocol", "sec-websocket-protocol", "SEC-WEBSOCKET-PROTOCOL")))
    value = draw(
        st.one_of(
            st.sampled_from(SUBPROTOCOLS),
            st.text(max_size=30).filter(lambda t: "\r" not in t and "\n" not in t),
            st.sampled_from(("x" * 5000, "chat.v1, " * 300)),
        )
    )
    raw = draw(st.booleans()) and not value.isascii()
    return name, ((value.encode("latin-1", "replace"),) if raw else (value,))


JUNK_NAMES = (
    "X-Forwarded-For",
    "X-Real-IP",
    "Forwarded",
    "Daphne-Root-Path",
    "Accept",
    "User-Agent",
    "Sec-WebSocket-Extensions",
    "X-Csrftoken",
    "Proxy-Authorization",
    "Authorization_",
    "Auth_orization",
    "Referer",
)


@st.composite
def junk_header(draw: st.DrawFn) -> tuple[str | bytes, tuple[Part, ...]]:
    name: str | bytes = draw(
        st.one_of(
            st.sampled_from(JUNK_NAMES),
            st.text(alphabet="!#$%&'*+-.^_`|~ABCXYZabcxyz0129", min_size=1, max_size=30),
            st.sampled_from(("Authorizatión".encode(), "Orígin".encode("latin-1"))),
        )
    )
    if name == "Daphne-Root-Path":
        return name, (draw(st.sampled_from(("/ws", "/ws/", "/x", "", "%2Fws", "/ws/browser"))),)
    value: Part = draw(
        st.one_of(
            st.text(max_size=40).filter(lambda t: "\r" not in t and "\n" not in t),
            st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
            st.sampled_from(
                (
                    "1.2.3.4",
                    "for=1.2.3.4",
                    "a" * 8000,
                    "Bearer x",
                    "fe80::1%eth0",
                    "::ffff:10.0.0.1",
                    "2001:db8::1, 10.0.0.2",
                    "[::1]:80",
                    "999.1.1.1",
                )
            ),
        )
    )
    return name, (value,)


# --- the three families ------------------------------------------------------------------------


def _request(
    path: tuple[str, ...], query: tuple[Part, ...] | None, headers: list[tuple[str | bytes, tuple[Part, ...]]], origin: str
) -> FuzzRequest:
    return FuzzRequest(path=path, query=query or (), headers=tuple(headers), origin=origin, has_query=query is not None)


@st.composite
def simple_credentials(draw: st.DrawFn) -> list[tuple[str | bytes, tuple[Part, ...]]]:
    kind = draw(st.sampled_from(("none", "token", "token", "session", "drf", "jwt")))
    user = draw(st.sampled_from(("alice", "bob", "carol")))
    if kind == "none":
        return []
    if kind == "session":
        return [("Cookie", ("sessionid=", Ref("session", "carol" if user == "carol" else "alice")))]
    scheme = "Token" if kind == "drf" else "Bearer"
    return [("Authorization", (scheme, " ", Ref(kind, user)))]


@st.composite
def spellings(draw: st.DrawFn, valid_tickets: bool = True) -> FuzzRequest:
    headers = draw(simple_credentials())
    origin, origins = draw(st.sampled_from(("none", "ok"))), ()
    if origin == "ok":
        origins = (("Origin", (draw(st.sampled_from(ORIGINS_OK)),)),)
    query = draw(st.one_of(st.none(), st.none(), query_string(valid_tickets)))
    return _request(draw(path_spelling()), query, headers + list(origins), origin)


@st.composite
def credentials(draw: st.DrawFn, valid_tickets: bool = True) -> FuzzRequest:
    headers: list[tuple[str | bytes, tuple[Part, ...]]] = []
    headers += draw(st.lists(authorization_header(), max_size=3))
    headers += draw(st.lists(cookie_header(), max_size=2))
    origin, origins = draw(origin_headers()) if draw(st.integers(0, 3)) == 0 else ("none", ())
    headers += origins
    headers = draw(st.permutations(headers)) if headers else headers
    query = draw(st.one_of(st.none(), query_string(valid_tickets)))
    return _request(draw(path_spelling(LOGIN_PATHS, max_edits=1)), query, headers, origin)


@st.composite
def header_soup(draw: st.DrawFn, valid_tickets: bool = True) -> FuzzRequest:
    origin, headers_ = draw(origin_headers())
    headers: list[tuple[str | bytes, tuple[Part, ...]]] = list(headers_)
    headers += draw(st.lists(subprotocol_header(), max_size=2))
    headers += draw(st.lists(junk_header(), max_size=4))
    headers += draw(st.one_of(simple_credentials(), st.lists(authorization_header(), max_size=2)))
    headers = list(draw(st.permutations(headers))) if headers else headers
    query = draw(st.one_of(st.none(), query_string(valid_tickets)))
    return _request(draw(path_spelling(max_edits=2)), query, headers, origin)


FAMILIES = {"spellings": spellings, "credentials": credentials, "headers": header_soup}
