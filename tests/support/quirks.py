"""What each server does differently from the scenario, measured, and how that changes
what a client sees of a conformance case.

``SERVER_QUIRKS`` records, per server kind, every deviation from the scenario that was
measured on these servers, with the version; the tests assert each of them, so a server
that changes its behaviour fails loudly instead of being silently tolerated.
``applied_quirks`` / ``expected_on_server`` turn a case of ``tests/conformance/cases.py``
into what a client sees through a given server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Quirk(NamedTuple):
    """A measured deviation of one server from the scenario: ``what`` is a stable key the
    tests assert on, ``why`` says what happens, why, and on which version it was seen."""

    what: str
    why: str


_UVICORN_500 = (
    "An exception escaping the app before accept: uvicorn answers its own "
    "`500 Internal Server Error`, `content-type: text/plain; charset=utf-8`, body "
    "`Internal Server Error` (21 bytes), and closes (scenario case 16, deliberate difference)."
)

# Measured 2026-11 with the reference app (tests/conformance/reference_fastapi.py) and every
# case of tests/conformance/cases.py; each entry is asserted by tests/conformance/test_reference.py
# (adjusted expectations below, log checks, status-line checks), so a change of behaviour fails.
SERVER_QUIRKS: dict[str, list[Quirk]] = {
    "uvicorn-websockets": [
        Quirk(
            "denial.fills-content-headers:text/plain",
            "uvicorn 0.54 `--ws websockets` (websockets 17.4 legacy server): a denial without "
            "`content-length`/`content-type` gets `content-length: 0` and `content-type: text/plain` "
            "(websockets.legacy.server `setdefault`s them), even on 1xx/204/304 where RFC 9110 "
            "forbids a Content-Length and on 205.",
        ),
        Quirk(
            "denial.header-values-sent-as-utf8",
            "uvicorn 0.54 `--ws websockets`: header values are decoded latin-1 and then written "
            "with `str.encode()` (UTF-8) by websockets.legacy `write_http_response`, so "
            "`café` (b'caf\\xe9') leaves as b'caf\\xc3\\xa9' (read back: `cafÃ©`).",
        ),
        Quirk(
            "denial.unregistered-status-becomes-500",
            "uvicorn 0.54 `--ws websockets`: `http.HTTPStatus(599)` raises ValueError in "
            "`asgi_send`, so a denial with an unregistered status becomes uvicorn's own "
            "500 text/plain `Internal Server Error`.",
        ),
        Quirk(
            "handshake.non-ascii-request-header-500",
            "uvicorn 0.54 `--ws websockets`: a non-ASCII request header value (obs-text, e.g. "
            "`Authorization: Bearer t\\xf6k\\xe9n`) is decoded by websockets.legacy with "
            "surrogateescape, but uvicorn (believing websockets >= 17 uses latin-1) re-encodes it "
            "as latin-1: UnicodeEncodeError, and websockets answers `500`, text/plain "
            "`Failed to open a WebSocket connection.\\nSee server log for more information.\\n` "
            "before the app runs.",
        ),
        Quirk("app-error.500-text-plain", "uvicorn 0.54 `--ws websockets`: " + _UVICORN_500),
        Quirk(
            "log.deprecated-implementation",
            "uvicorn 0.54: `--ws websockets` emits UvicornDeprecationWarning at import (it will "
            "point at websockets-sansio; `--ws auto` already does).",
        ),
    ],
    "uvicorn-websockets-sansio": [
        Quirk(
            "denial.fills-content-headers:text/plain; charset=utf-8",
            "uvicorn 0.54 `--ws websockets-sansio` (the `--ws auto` default): a denial without "
            "`content-length`/`content-type` gets `content-length: 0` and "
            "`content-type: text/plain; charset=utf-8`, even on 1xx/204/304 and 205.",
        ),
        Quirk(
            "handshake.repeated-origin-400",
            "uvicorn 0.54 websockets-sansio (websockets 17.4 ServerProtocol): two Origin lines "
            "are refused by the server itself before the app runs: `400`, text/plain body "
            "`Failed to open a WebSocket connection: invalid Origin header: multiple values.\\n`.",
        ),
        Quirk(
            "log.denial-logged-as-error",
            "uvicorn 0.54 websockets-sansio logs `ERROR: ASGI callable returned without completing "
            "handshake.` after every denial response, although the app completed it correctly.",
        ),
        Quirk("app-error.500-text-plain", "uvicorn 0.54 websockets-sansio: " + _UVICORN_500),
    ],
    "uvicorn-wsproto": [
        Quirk(
            "status-line.no-reason-phrase",
            "uvicorn 0.54 `--ws wsproto` (wsproto 1.3.2 / h11 0.16): denials go out as "
            "`HTTP/1.1 401 ` with an empty reason phrase (legal, RFC 9112 §4).",
        ),
        Quirk(
            "denial.informational-dropped",
            "uvicorn 0.54 wsproto: a 1xx denial makes h11 raise LocalProtocolError "
            "(`Response status_code should be in range [200, 1000)`); nothing is sent and the "
            "connection is closed.",
        ),
        Quirk("app-error.500-text-plain", "uvicorn 0.54 wsproto: " + _UVICORN_500),
    ],
    "hypercorn": [
        Quirk(
            "status-line.no-reason-phrase",
            "hypercorn 0.18 (h11): every response, 101 included, has an empty reason phrase.",
        ),
        Quirk(
            "log.informational-protocol-error",
            "hypercorn 0.18: a 1xx denial goes out as the bare informational head, then h11 "
            "raises LocalProtocolError (`can't handle event type EndOfMessage ... SEND_RESPONSE`), "
            "logged, and the connection is closed; the client gets a 1xx and EOF.",
        ),
        Quirk(
            "app-error.500-empty",
            "hypercorn 0.18: an exception escaping the app before accept gives `500` with "
            "`content-length: 0`, `connection: close` and no body.",
        ),
    ],
    "granian": [
        Quirk(
            "denial.upgrade-headers-added",
            "granian 2.8.7: the denial reuses the 101 response builder, so it carries "
            "`connection: upgrade`, `upgrade: websocket` and a `sec-websocket-accept` "
            "(src/ws.rs UpgradeData::send).",
        ),
        Quirk(
            "denial.connection-kept-alive",
            "granian 2.8.7: after a denial the TCP connection stays open (HTTP keep-alive; closed "
            "after ~30 s idle, the http1 header-read timeout), although the scenario closes it.",
        ),
        Quirk(
            "denial.repeated-header-kills-server",
            "granian 2.8.7: a denial with a repeated header name (two `www-authenticate`) panics "
            "the worker (`src/ws.rs:87 key.unwrap()` on `HeaderMap::drain()`, whose later values "
            "have no name); the client gets no response, and with the default "
            "`--no-respawn-failed-workers` the whole server shuts down.",
        ),
        Quirk(
            "denial.informational-becomes-500",
            "granian 2.8.7 (hyper): a 1xx denial is replaced by `500` with `content-length: 0`, "
            "no body, connection closed.",
        ),
        Quirk(
            "app-error.403-empty-kept-alive",
            "granian 2.8.7: an exception escaping the app before accept gives `403 Forbidden`, "
            "`content-length: 0`, no body (the upgrade was never consumed), connection kept open: "
            "a server error that looks like an authorization failure.",
        ),
    ],
    "daphne-stock": [
        Quirk(
            "denial.unsupported-reset",
            "daphne 4.2.3 (autobahn 26.10): no denial extension; an app that sends "
            "`websocket.http.response.start` anyway (FastAPI does) is ignored, the client gets no "
            "HTTP answer and a TCP reset when the 5 s handshake timeout fires.",
        ),
        Quirk(
            "close-before-accept.403-access-denied",
            "daphne 4.2.3: `websocket.close` before accept answers `HTTP/1.1 403 Access denied`, "
            "no headers, no body, then closes.",
        ),
        Quirk(
            "app-error.500-bare",
            "daphne 4.2.3: an exception escaping the app before accept answers "
            "`HTTP/1.1 500 Internal server error`, no headers, no body, then closes.",
        ),
        Quirk(
            "handshake.repeated-origin-400",
            "daphne 4.2.3 / autobahn 26.10: two Origin lines are joined with ',' and autobahn "
            "refuses them itself: `HTTP/1.1 400 HTTP Origin header invalid: Port could not be cast "
            "to integer value as '8000,http:'`; the app never runs, and exception text is in the "
            "status line.",
        ),
    ],
    # Measured 2026-11 with both the reference app and the demo on every case
    # (tests/conformance/test_conformance.py asserts each entry).
    "daphne-wsreject": [
        Quirk(
            "handshake.repeated-origin-400-bad-request",
            "daphne 4.2.3 + wsreject.daphne (autobahn 26.10): two Origin lines are joined with ',' "
            "and autobahn refuses the handshake itself before the app runs (`HTTP Origin header "
            "invalid`); wsreject's `sendHttpErrorResponse` turns that into a clean `400 Bad Request`, "
            "text/plain; charset=utf-8 body `Bad Request`, content-length, connection: close (no "
            "exception text in the status line, unlike stock Daphne).",
        ),
        Quirk(
            "app-error.500-text-plain",
            "daphne 4.2.3 + wsreject.daphne: an exception escaping the app before accept is answered "
            "at once (`answer_internal_error`) with `500 Internal Server Error`, text/plain; "
            "charset=utf-8 body `Internal Server Error` (21 bytes), content-length, connection: "
            "close, and logged; nothing of the exception is on the wire (scenario case 16 with the "
            "FastAPI reference, deliberate difference).",
        ),
    ],
}


def quirks(kind: str) -> list[Quirk]:
    return SERVER_QUIRKS.get(kind, [])


def has_quirk(kind: str, what: str) -> bool:
    return any(q.what == what for q in quirks(kind))


def quirk_keys(kind: str) -> set[str]:
    return {q.what for q in quirks(kind)}


# --- what a case looks like on a given server ---------------------------------------------------
#
# ``cases.py`` says what an app must answer; the functions below turn that into what a client
# sees through a given server, one quirk at a time. "Replacements" mean the server answers with
# its own response instead of the app's (the first that applies wins); "modifications" alter the
# app's response on its way out (all that apply, in order).

_BASE64_ACCEPT = r"[A-Za-z0-9+/]{27}="
_NO_BODY_STATUSES = (204, 304)


def _upgrade_headers():
    from tests.conformance.cases import UPGRADE_HEADERS

    return UPGRADE_HEADERS


def _own_response(status: int, body: bytes, content_type: str | None, *, closed: bool = True):
    from tests.conformance.cases import Expect

    headers = [("content-length", str(len(body)))]
    absent = list(_upgrade_headers())
    if content_type is None:
        absent.append("content-type")
    else:
        headers.append(("content-type", content_type))
    return Expect(status, headers=tuple(headers), absent_headers=tuple(absent), body=body, closed=closed)


def _origin_lines(case) -> int:
    return (case.origin is not None) + sum(1 for name, _ in case.headers if name.lower() == "origin")


def _non_ascii_request(case) -> bool:
    values = [value for _, value in case.headers] + ([case.origin] if case.origin is not None else [])
    return not all(value.isascii() for value in values)


def _is_informational(expect) -> bool:
    return expect.status is not None and 100 <= expect.status < 200 and expect.status != 101


def _registered(status: int) -> bool:
    from http import HTTPStatus

    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True


def _repeats_a_header(expect) -> bool:
    names = [name for name, _ in expect.headers]
    return len(names) != len(set(names))


_UVICORN_500_EXPECT = lambda: _own_response(500, b"Internal Server Error", "text/plain; charset=utf-8")  # noqa: E731

# what -> (applies(expect, case, app_raises) -> bool, expectation instead)
REPLACEMENTS: dict[str, Callable] = {
    "app-error.500-text-plain": lambda e, c, raises: raises and _UVICORN_500_EXPECT(),
    "app-error.500-empty": lambda e, c, raises: raises and _own_response(500, b"", None),
    "app-error.403-empty-kept-alive": lambda e, c, raises: raises and _own_response(403, b"", None, closed=False),
    "denial.unregistered-status-becomes-500": lambda e, c, raises: (
        e.denied and not _registered(e.status) and _UVICORN_500_EXPECT()
    ),
    "handshake.repeated-origin-400": lambda e, c, raises: (
        _origin_lines(c) > 1
        and _own_response(
            400,
            b"Failed to open a WebSocket connection: invalid Origin header: multiple values.\n",
            "text/plain; charset=utf-8",
        )
    ),
    "handshake.repeated-origin-400-bad-request": lambda e, c, raises: (
        _origin_lines(c) > 1 and _own_response(400, b"Bad Request", "text/plain; charset=utf-8")
    ),
    "handshake.non-ascii-request-header-500": lambda e, c, raises: (
        _non_ascii_request(c)
        and _own_response(
            500, b"Failed to open a WebSocket connection.\nSee server log for more information.\n", "text/plain"
        )
    ),
    "denial.informational-dropped": lambda e, c, raises: _is_informational(e) and _no_response(),
    "denial.informational-becomes-500": lambda e, c, raises: _is_informational(e) and _own_response(500, b"", None),
    "denial.repeated-header-kills-server": lambda e, c, raises: (
        e.denied and _repeats_a_header(e) and _no_response(server_dies=True)
    ),
}


def _no_response(server_dies: bool = False):
    from tests.conformance.cases import Expect

    return Expect(None, closed=True, server_dies=server_dies)


def _fill_content_headers(content_type: str):
    def modify(expect, case, raises):
        if not expect.denied:
            return None
        changed = expect
        if "content-length" in expect.absent_headers:
            changed = changed.with_header("content-length", str(len(expect.body or b"")))
        if "content-type" in expect.absent_headers:
            changed = changed.with_header("content-type", content_type)
        return changed if changed != expect else None

    return modify


def _utf8_header_values(expect, case, raises):
    from dataclasses import replace

    if not expect.denied or all(v.isascii() for _, v in expect.headers):
        return None
    return replace(
        expect, headers=tuple((k, v.encode("utf-8").decode("latin-1")) for k, v in expect.headers)
    )


def _add_upgrade_headers(expect, case, raises):
    if not expect.denied:
        return None
    return (
        expect.with_header("connection", "upgrade")
        .with_header("upgrade", "websocket")
        .with_pattern("sec-websocket-accept", _BASE64_ACCEPT)
    )


def _kept_alive(expect, case, raises):
    from dataclasses import replace

    if not expect.denied or expect.closed is not True:
        return None
    return replace(expect, closed=False)


# what -> modify(expect, case, app_raises) -> changed expectation, or None when it does not apply
MODIFICATIONS: dict[str, Callable] = {
    "denial.fills-content-headers:text/plain": _fill_content_headers("text/plain"),
    "denial.fills-content-headers:text/plain; charset=utf-8": _fill_content_headers("text/plain; charset=utf-8"),
    "denial.header-values-sent-as-utf8": _utf8_header_values,
    "denial.upgrade-headers-added": _add_upgrade_headers,
    "denial.connection-kept-alive": _kept_alive,
}


def applied_quirks(kind: str, case, *, app_raises: bool = False, fallback: str | None = None) -> tuple[object, list[str]]:
    """(the expectation of ``case`` on ``kind``, the quirk keys that changed it).

    ``fallback`` matters only on a server without the denial extension (``daphne-stock``):
    see :func:`expected_on_server`."""
    if kind == "daphne-stock":
        return _on_stock_daphne(case, app_raises=app_raises, fallback=fallback)
    expect = case.expect
    for quirk in quirks(kind):
        replace_with = REPLACEMENTS.get(quirk.what)
        if replace_with is not None:
            result = replace_with(expect, case, app_raises)
            if result:
                return result, [quirk.what]
    if app_raises:
        raise ValueError(f"{kind}: no quirk says what the server answers when the app raises ({case.id})")
    used = []
    for quirk in quirks(kind):
        modify = MODIFICATIONS.get(quirk.what)
        if modify is not None:
            changed = modify(expect, case, app_raises)
            if changed is not None:
                expect = changed
                used.append(quirk.what)
    return expect, used


STOCK_DAPHNE_FALLBACKS = (None, "close", "close_code")


def denial_detail(expect) -> str:
    """The detail a denial carries: ``detail`` of a ``{"detail": ...}`` body, else the
    status phrase (what ``wsreject.DenialResponse.detail`` defaults to)."""
    import json
    from http import HTTPStatus

    try:
        data = json.loads(expect.body or b"")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"]
    try:
        return HTTPStatus(expect.status).phrase
    except ValueError:
        return ""


def _bare_response(status: int):
    """Daphne's own answer through autobahn: a status line, no headers, no body, closed."""
    from tests.conformance.cases import Expect

    absent = ("content-type", "content-length", *_upgrade_headers())
    return Expect(status, absent_headers=absent, body=b"", closed=True)


def _on_stock_daphne(case, *, app_raises: bool, fallback: str | None) -> tuple[object, list[str]]:
    """Stock Daphne advertises no denial extension, so what a client sees of a denial is
    decided by the app's fallback: ``"close"`` (wsreject's default: ``websocket.close``
    before accept → Daphne's own ``403 Access denied``), ``"close_code"`` (wsreject
    accepts, sends ``{"detail": ...}`` and closes with 4000 + status: a 101 whose first
    message is that frame; the close code is not part of ``Expect``), or ``None`` (an app
    that sends the extension's messages anyway, as FastAPI does: no answer at all).
    Accepted cases are unchanged. Bare responses have no headers whatsoever; ``Expect``
    can only list the absent ones, so callers assert ``headers == []`` themselves."""
    from tests.conformance.cases import accepted, compact_json

    if fallback not in STOCK_DAPHNE_FALLBACKS:
        raise ValueError(f"daphne-stock: fallback must be one of {STOCK_DAPHNE_FALLBACKS}, got {fallback!r}")
    expect = case.expect
    if _origin_lines(case) > 1:
        return _bare_response(400), ["handshake.repeated-origin-400"]
    if app_raises:
        return _bare_response(500), ["app-error.500-bare"]
    if expect.accepted:
        return expect, []
    if fallback == "close":
        return _bare_response(403), ["close-before-accept.403-access-denied"]
    if fallback == "close_code":
        return accepted(raw_first=compact_json({"detail": denial_detail(expect)})), []
    return _no_response(), ["denial.unsupported-reset"]


def expected_on_server(kind: str, case, *, app_raises: bool = False, fallback: str | None = None):
    """What a client sees of ``case`` (a ``tests.conformance.cases.Case``) through ``kind``.

    ``app_raises``: the app lets an exception escape (the reference app on case 16);
    the server's own error response is expected then. On ``daphne-stock`` (no denial
    extension) the answer depends on the app's ``fallback``: ``"close"``, ``"close_code"``
    or ``None`` for an app without one (see :func:`_on_stock_daphne`).
    """
    return applied_quirks(kind, case, app_raises=app_raises, fallback=fallback)[0]
