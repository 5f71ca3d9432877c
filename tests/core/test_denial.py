"""Denial rendering and validation (wsreject/denial.py).

Rendering is compared with the real thing: FastAPI's ``http_exception_handler``
turning a Starlette ``HTTPException`` into a Response, run against a WebSocket
scope that advertises the denial extension.
"""

from __future__ import annotations

import pytest
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException

from wsreject import DenialResponse, DenyHandshake, DenyWithResponse
from wsreject.denial import normalize_headers
from wsreject.http import body_allowed, render_json, status_phrase

from .util import ws_scope


async def fastapi_messages(status, detail, headers):
    """The messages FastAPI sends for ``raise HTTPException(status, detail, headers)`` before accept."""
    response = await http_exception_handler(None, HTTPException(status, detail, headers))
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    await response(ws_scope(), receive, send)
    return sent


def normalized(messages):
    """Messages with header lists as lists of tuples (Starlette may use lists)."""
    result = []
    for message in messages:
        message = dict(message)
        if "headers" in message:
            message["headers"] = [tuple(h) for h in message["headers"]]
        result.append(message)
    return result


STATUSES = [400, 401, 403, 404, 418, 429, 451, 499, 500, 503, 599]
#: FastAPI sends these as denials too; wsreject refuses them where they are written.
NOT_ERRORS = [100, 101, 200, 204, 205, 206, 301, 304, 399]

DETAILS = {
    "none": None,
    "empty": "",
    "ascii": "Not allowed to join this room",
    "non-ascii": "Zugriff verweigert – Ünïcødé ✓ 🎉 \u2028",
    "quotes-backslash": 'say "hi" \\ </script>',
    "dict": {"code": "room_closed", "rooms": ["lobby", "dev"], "retry": 3, "ok": False, "x": None},
    "list": [{"loc": ["path", "name"], "msg": "bad"}],
    "number": 42,
    "long": "x" * 5000 + "é",
}

HEADERS = {
    "no-headers": None,
    "www-authenticate": {"WWW-Authenticate": "Bearer"},
    "retry-after+custom": {"Retry-After": "120", "X-Custom-Thing": "a b\tc"},
    "own-content-type": {"Content-Type": "application/problem+json"},
    "latin-1-value": {"X-Name": "caf\u00e9"},
}


@pytest.mark.parametrize("status", STATUSES, ids=str)
@pytest.mark.parametrize("detail", DETAILS.values(), ids=DETAILS.keys())
async def test_rendering_matches_fastapi_for_details(status, detail):
    expected = await fastapi_messages(status, detail, None)
    assert normalized(DenyHandshake(status, detail).response().asgi_messages()) == normalized(expected)


@pytest.mark.parametrize("status", STATUSES, ids=str)
@pytest.mark.parametrize("headers", HEADERS.values(), ids=HEADERS.keys())
async def test_rendering_matches_fastapi_for_headers(status, headers):
    expected = await fastapi_messages(status, "Denied", headers)
    assert normalized(DenyHandshake(status, "Denied", headers=headers).response().asgi_messages()) == normalized(expected)


@pytest.mark.parametrize("status", NOT_ERRORS, ids=str)
def test_a_denial_that_is_not_an_error_is_refused_where_it_is_written(status):
    with pytest.raises(ValueError, match="400-599"):
        DenyHandshake(status)
    with pytest.raises(ValueError, match="400-599"):
        DenialResponse(status)


def test_rendering_of_the_documented_example():
    messages = DenyHandshake(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"}).response().asgi_messages()
    assert messages == [
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [
                (b"www-authenticate", b"Bearer"),
                (b"content-length", b"30"),
                (b"content-type", b"application/json"),
            ],
        },
        {"type": "websocket.http.response.body", "body": b'{"detail":"Not authenticated"}'},
    ]


@pytest.mark.parametrize(
    "status,phrase",
    [(401, "Unauthorized"), (418, "I'm a Teapot"), (429, "Too Many Requests"), (499, ""), (599, "")],
    ids=["401", "418", "429", "unregistered-499", "unregistered-599"],
)
def test_default_detail_is_the_status_phrase(status, phrase):
    assert status_phrase(status) == phrase
    denial = DenyHandshake(status)
    assert denial.detail == phrase
    assert denial.response().body == render_json({"detail": phrase})
    assert str(denial) == f"{status}: {phrase}"


@pytest.mark.parametrize(
    "status,allowed",
    [(100, False), (101, False), (199, False), (200, True), (204, False), (205, False), (206, True), (304, False), (399, True), (404, True)],
    ids=lambda v: str(v),
)
def test_body_allowed(status, allowed):
    """HTTP forbids content on 1xx, 204, 205 (RFC 9110 §15.3.6) and 304."""
    assert body_allowed(status) is allowed


def test_non_string_detail_is_json_in_text_form():
    response = DenyHandshake(422, {"field": "name", "error": "ünïcode"}).response()
    assert response.body == '{"detail":{"field":"name","error":"ünïcode"}}'.encode()
    # the text form (close reason, log line) is the compact JSON of the detail
    assert response.detail == '{"field":"name","error":"ünïcode"}'


def test_nan_detail_is_refused_like_starlette():
    with pytest.raises(ValueError):
        DenyHandshake(400, float("nan")).response()


# --- header validation -------------------------------------------------------------------------

FORBIDDEN_VALUE_CHARS = {
    "CR": "\r",
    "LF": "\n",
    "CRLF": "\r\n",
    "NUL": "\x00",
    "VT-0b": "\x0b",
    "FF-0c": "\x0c",
    "FS-1c": "\x1c",
    "GS-1d": "\x1d",
    "RS-1e": "\x1e",
    "DEL-7f": "\x7f",
    "NEL-85": "\x85",
    "C1-9f": "\x9f",
    "ESC": "\x1b",
}


@pytest.mark.parametrize("char", FORBIDDEN_VALUE_CHARS.values(), ids=FORBIDDEN_VALUE_CHARS.keys())
@pytest.mark.parametrize("kind", ["str", "bytes"])
@pytest.mark.parametrize("where", ["middle", "end"])
def test_control_characters_in_values_are_refused_at_construction(char, kind, where):
    value = f"a{char}b" if where == "middle" else f"ab{char}"
    if kind == "bytes":
        value = value.encode("latin-1")
    with pytest.raises(ValueError):
        DenyHandshake(403, "x", headers={"X-Test": value})
    with pytest.raises(ValueError):
        DenialResponse(403, headers=[("X-Test", value)])


def test_tab_and_visible_latin_1_are_allowed_in_values():
    headers = normalize_headers({"X-A": "a\tb", "X-B": "caf\u00e9 \u00ff", "X-C": b"\xa0\xff"})
    assert headers == ((b"x-a", b"a\tb"), (b"x-b", "caf\u00e9 \u00ff".encode("latin-1")), (b"x-c", b"\xa0\xff"))


INVALID_NAMES = {
    "empty": "",
    "space": "X Foo",
    "colon": "X:Foo",
    "trailing-LF": "X-Foo\n",
    "trailing-CR": "X-Foo\r",
    "CRLF-injection": "X-Foo\r\nSet-Cookie",
    "NUL": "X-Foo\x00",
    "parens": "(x)",
    "slash": "x/y",
    "latin-1-letter": "caf\u00e9",
    "bytes-trailing-LF": b"x-foo\n",
    "bytes-high": b"x-\xff",
}


@pytest.mark.parametrize("name", INVALID_NAMES.values(), ids=INVALID_NAMES.keys())
def test_invalid_header_names_are_refused(name):
    with pytest.raises(ValueError):
        DenyHandshake(403, "x", headers=[(name, "v")])


@pytest.mark.parametrize("value", ["€", "\u2028", "日本"], ids=["euro", "line-separator", "cjk"])
def test_non_latin_1_str_values_are_refused(value):
    with pytest.raises(ValueError, match="latin-1"):
        DenyHandshake(403, "x", headers={"X-Test": value})


def test_non_latin_1_str_name_is_refused():
    with pytest.raises(ValueError):
        DenyHandshake(403, "x", headers={"X-€": "v"})


@pytest.mark.parametrize(
    "name", ["Content-Length", "content-length", "Transfer-Encoding", "CONNECTION", "Upgrade", b"upgrade"], ids=str
)
def test_framing_headers_are_reserved(name):
    with pytest.raises(ValueError, match="set by the server"):
        DenyHandshake(403, "x", headers=[(name, "1")])
    with pytest.raises(ValueError):
        DenialResponse(200, headers=[(name, "1")], body=b"x")


@pytest.mark.parametrize(
    "headers",
    [[("X-A", 1)], [(1, "v")], [("X-A", None)], [("X-A",)], [("X-A", "v", "w")], ["X-A: v"]],
    ids=["int-value", "int-name", "none-value", "one-tuple", "three-tuple", "plain-string"],
)
def test_badly_typed_headers_are_type_errors(headers):
    with pytest.raises(TypeError):
        DenyHandshake(403, "x", headers=headers)


def test_multi_value_headers_are_kept_in_order_before_framing_headers():
    denial = DenyHandshake(401, "x", headers=[("Vary", "a"), ("WWW-Authenticate", "Bearer"), ("Vary", "b")])
    start = denial.response().asgi_messages()[0]
    assert start["headers"] == [
        (b"vary", b"a"),
        (b"www-authenticate", b"Bearer"),
        (b"vary", b"b"),
        (b"content-length", b"14"),
        (b"content-type", b"application/json"),
    ]


def test_bytes_and_str_headers_are_accepted_and_names_lower_cased():
    assert normalize_headers({b"X-Bytes": b"1", "X-Str": "2"}) == ((b"x-bytes", b"1"), (b"x-str", b"2"))
    assert normalize_headers([(b"X-Bytes", "3"), ("X-Str", b"4")]) == ((b"x-bytes", b"3"), (b"x-str", b"4"))
    assert normalize_headers(None) == ()
    assert normalize_headers([]) == ()


def test_headers_from_a_generator_are_consumed_once():
    headers = normalize_headers((name, "v") for name in ("a", "b"))
    assert headers == ((b"a", b"v"), (b"b", b"v"))


# --- status validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,error",
    [(True, TypeError), (False, TypeError), ("404", TypeError), (404.0, TypeError), (None, TypeError), (99, ValueError), (600, ValueError), (0, ValueError), (-403, ValueError), (399, ValueError), (101, ValueError)],
    ids=["True", "False", "str-404", "float-404", "None", "99", "600", "0", "negative", "399", "101"],
)
def test_invalid_status_codes_are_refused(status, error):
    with pytest.raises(error):
        DenyHandshake(status)
    with pytest.raises(error):
        DenialResponse(status)


@pytest.mark.parametrize("status", [400, 599], ids=str)
def test_status_bounds_are_accepted(status):
    assert DenyHandshake(status).status_code == status
    assert DenialResponse(status).status_code == status


# --- DenialResponse -----------------------------------------------------------------------------


def test_arbitrary_response_messages():
    response = DenialResponse(
        418,
        headers={"content-type": "text/plain; charset=utf-8", "x-teapot": "short-and-stout"},
        body="I'm a teapot",
    )
    assert response.detail == "I'm a Teapot"
    assert response.asgi_messages() == [
        {
            "type": "websocket.http.response.start",
            "status": 418,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"x-teapot", b"short-and-stout"),
                (b"content-length", b"12"),
            ],
        },
        {"type": "websocket.http.response.body", "body": b"I'm a teapot"},
    ]


def test_str_body_is_utf_8_and_content_length_counts_bytes():
    response = DenialResponse(400, body="é🎉", media_type="text/plain")
    start, body = response.asgi_messages()
    assert body["body"] == "é🎉".encode()
    assert start["headers"] == [(b"content-length", b"6"), (b"content-type", b"text/plain")]


def test_empty_body_still_has_content_length_zero():
    assert DenialResponse(403).asgi_messages()[0]["headers"] == [(b"content-length", b"0")]


def test_explicit_content_type_header_wins_over_media_type():
    response = DenialResponse(400, headers={"Content-Type": "text/csv"}, body=b"a,b", media_type="application/json")
    assert response.media_type is None
    assert response.asgi_messages()[0]["headers"] == [(b"content-type", b"text/csv"), (b"content-length", b"3")]


@pytest.mark.parametrize("body", [123, None, bytearray(b"x"), ["x"]], ids=["int", "None", "bytearray", "list"])
def test_body_type_is_checked(body):
    with pytest.raises(TypeError):
        DenialResponse(400, body=body)


def test_detail_is_stringified_and_never_on_the_wire():
    response = DenialResponse(403, detail=12, body=b"nope")
    assert response.detail == "12"
    assert b"12" not in response.asgi_messages()[1]["body"]


def test_asgi_messages_can_be_rendered_twice_without_growing():
    response = DenyHandshake(401, "x", headers={"WWW-Authenticate": "Bearer"}).response()
    first = response.asgi_messages()
    second = response.asgi_messages()
    assert first == second
    assert len(first[0]["headers"]) == 3


# --- DenyWithResponse ---------------------------------------------------------------------------


def test_deny_with_response_carries_the_response_object():
    response = DenialResponse(451, headers=[("Link", "<https://example.com>; rel=blocked-by")], body=b"gone", detail="Legal")
    exc = DenyWithResponse(response)
    assert isinstance(exc, DenyHandshake)
    assert exc.response() is response
    assert exc.status_code == 451
    assert exc.detail == "Legal"
    assert exc.headers == ((b"link", b"<https://example.com>; rel=blocked-by"),)
    assert str(exc) == "451: Legal"


@pytest.mark.parametrize("value", [DenyHandshake(403), 403, None, b"body"], ids=["DenyHandshake", "int", "None", "bytes"])
def test_deny_with_response_needs_a_denial_response(value):
    with pytest.raises(TypeError):
        DenyWithResponse(value)
