"""What each server does differently from the scenario, keyed to the versions measured.

``SERVER_QUIRKS`` lists, per server kind, every deviation from the scenario that was
measured, each with the versions that have it: a ``packaging`` specifier per distribution
(``{"granian": ">=2.8.7,<2.8.9"}``). A quirk applies only when the installed versions
match. ``MEASURED`` lists, per kind, the version combinations that were measured; a
version outside them fails ``tests/support/test_quirks.py`` until someone runs
``./dev upgrade`` (``python -m tests.conformance.upgrade``) and records here what the new
version does. Changing expectations therefore always means editing this table.

A quirk's ``what`` names a behaviour of one of three sorts:

* ``REPLACEMENTS``: the server answers with its own response instead of the app's (the
  first that applies wins);
* ``MODIFICATIONS``: the server alters the app's response on its way out (all that apply);
* ``EVIDENCE``: something not part of a case's expectation — the log, the status line,
  the order of header lines, the close reason — judged from a whole run.

``applied_quirks`` / ``expected_on_server`` turn a case of ``tests/conformance/cases.py``
into what a client sees through a server; ``evidence_state`` judges the other sort.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from importlib import metadata
from typing import Any

from packaging.specifiers import SpecifierSet

from tests.conformance.cases import UPGRADE_HEADERS, Expect, accepted, compact_json

# --- versions -------------------------------------------------------------------------------

# The distributions whose versions decide what a kind does; the first is the server itself.
KIND_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "daphne-wsreject": ("daphne", "autobahn"),
    "daphne-stock": ("daphne", "autobahn"),
    "uvicorn-websockets": ("uvicorn", "websockets"),
    "uvicorn-websockets-sansio": ("uvicorn", "websockets"),
    "uvicorn-wsproto": ("uvicorn", "wsproto", "h11"),
    "hypercorn": ("hypercorn", "h11", "wsproto"),
    # hypercorn over HTTP/2 (RFC 8441, tests/conformance/http2.py): h2 instead of h11.
    "hypercorn-h2": ("hypercorn", "h2", "wsproto"),
    # hypercorn over HTTP/3 (RFC 9220, tests/conformance/http3.py): QUIC and HTTP/3 by aioquic.
    "hypercorn-h3": ("hypercorn", "aioquic", "wsproto"),
    "granian": ("granian",),
}
# The distribution each kind runs.
SERVER_DISTRIBUTIONS = {kind: dists[0] for kind, dists in KIND_DISTRIBUTIONS.items()}

Versions = Mapping[str, "str | None"]


def installed_versions(kind: str) -> dict[str, str | None]:
    """{distribution: installed version or None} for the distributions of ``kind``."""
    found: dict[str, str | None] = {}
    for dist in KIND_DISTRIBUTIONS[kind]:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def server_version(kind: str, versions: Versions | None = None) -> str:
    """"granian 2.8.9", "uvicorn 0.54.0, websockets 17.4": what decides ``kind``'s behaviour."""
    versions = installed_versions(kind) if versions is None else versions
    return ", ".join(f"{dist} {versions.get(dist) or '(not installed)'}" for dist in KIND_DISTRIBUTIONS[kind])


def matches(specifiers: Mapping[str, str], versions: Versions) -> bool:
    """Whether every distribution of ``specifiers`` is installed in a matching version."""
    for dist, spec in specifiers.items():
        version = versions.get(dist)
        if version is None or not SpecifierSet(spec).contains(version, prereleases=True):
            return False
    return True


def _spec_text(specifiers: Mapping[str, str]) -> str:
    return ", ".join(f"{dist}{spec}" for dist, spec in specifiers.items())


# The version combinations measured for each kind: every quirk below was checked on each of
# them, with both apps and every case (python -m tests.conformance.upgrade).
MEASURED: dict[str, tuple[dict[str, str], ...]] = {
    "daphne-wsreject": ({"daphne": "==4.2.3", "autobahn": "==26.10.2"},),
    "daphne-stock": ({"daphne": "==4.2.3", "autobahn": "==26.10.2"},),
    "uvicorn-websockets": ({"uvicorn": "==0.54.0", "websockets": "==17.4"},),
    "uvicorn-websockets-sansio": ({"uvicorn": "==0.54.0", "websockets": "==17.4"},),
    "uvicorn-wsproto": ({"uvicorn": "==0.54.0", "wsproto": "==1.3.2", "h11": "==0.16.0"},),
    "hypercorn": ({"hypercorn": "==0.18.0", "h11": "==0.16.0", "wsproto": "==1.3.2"},),
    "hypercorn-h2": ({"hypercorn": "==0.18.0", "h2": "==4.4.1", "wsproto": "==1.3.2"},),
    "hypercorn-h3": ({"hypercorn": "==0.18.0", "aioquic": "==1.7.2", "wsproto": "==1.3.2"},),
    "granian": ({"granian": "==2.8.7"}, {"granian": "==2.8.9"}),
}


def is_measured(kind: str, versions: Versions | None = None) -> bool:
    versions = installed_versions(kind) if versions is None else versions
    return any(matches(combination, versions) for combination in MEASURED[kind])


def unmeasured_message(kind: str, versions: Versions | None = None) -> str | None:
    """None when the installed versions of ``kind`` were measured; otherwise what to do."""
    versions = installed_versions(kind) if versions is None else versions
    if is_measured(kind, versions):
        return None
    named = server_version(kind, versions)
    if kind != SERVER_DISTRIBUTIONS[kind] or len(KIND_DISTRIBUTIONS[kind]) > 1:
        named += f" ({kind})"
    measured = "; ".join(_spec_text(combination) for combination in MEASURED[kind])
    return (
        f"{named} has not been measured: run ./dev upgrade, then record which quirks it has in "
        f"tests/support/quirks.py (measured so far: {measured})"
    )


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quirk:
    """A measured deviation of one server from the scenario: ``what`` is a stable key of
    the behaviour (see the module doc), ``versions`` the versions that have it (a specifier
    per distribution), ``why`` what happens, why, and on which version it was seen."""

    what: str
    versions: Mapping[str, str]
    why: str

    def applies_to(self, versions: Versions) -> bool:
        return matches(self.versions, versions)

    @property
    def version_text(self) -> str:
        return _spec_text(self.versions)


_UVICORN_500 = (
    "An exception escaping the app before accept: uvicorn answers its own "
    "`500 Internal Server Error`, `content-type: text/plain; charset=utf-8`, body "
    "`Internal Server Error` (21 bytes), and closes (scenario case 16, deliberate difference)."
)
UVICORN = {"uvicorn": ">=0.54.0"}
UVICORN_WEBSOCKETS = {"uvicorn": ">=0.54.0", "websockets": ">=17.4"}
UVICORN_WSPROTO = {"uvicorn": ">=0.54.0", "wsproto": ">=1.3.2", "h11": ">=0.16.0"}
HYPERCORN = {"hypercorn": ">=0.18.0"}
HYPERCORN_H11 = {"hypercorn": ">=0.18.0", "h11": ">=0.16.0"}
HYPERCORN_H2 = {"hypercorn": ">=0.18.0", "h2": ">=4.4.1"}
HYPERCORN_H3 = {"hypercorn": ">=0.18.0", "aioquic": ">=1.7.2"}
GRANIAN = {"granian": ">=2.8.7"}
DAPHNE = {"daphne": ">=4.2.3"}
DAPHNE_AUTOBAHN = {"daphne": ">=4.2.3", "autobahn": ">=26.10.2"}

# Measured 2026-11 with the FastAPI reference (tests/conformance/reference_fastapi.py) and the
# demo on every case of tests/conformance/cases.py (granian 2.8.7, then 2.8.7 and 2.8.9 side by
# side). Asserted by tests/conformance/test_conformance.py and test_reference.py (expectations,
# log, status lines, header order) and by tests/e2e/test_matrix.py (stock Daphne).
SERVER_QUIRKS: dict[str, list[Quirk]] = {
    "uvicorn-websockets": [
        Quirk(
            "denial.fills-content-headers:text/plain",
            UVICORN_WEBSOCKETS,
            "uvicorn 0.54 `--ws websockets` (websockets 17.4 legacy server): a denial without "
            "`content-length`/`content-type` gets `content-length: 0` and `content-type: text/plain` "
            "(websockets.legacy.server `setdefault`s them), even on 1xx/204/304 where RFC 9110 "
            "forbids a Content-Length and on 205.",
        ),
        Quirk(
            "denial.header-values-sent-as-utf8",
            UVICORN_WEBSOCKETS,
            "uvicorn 0.54 `--ws websockets`: header values are decoded latin-1 and then written "
            "with `str.encode()` (UTF-8) by websockets 17.4's legacy `write_http_response`, so "
            "`café` (b'caf\\xe9') leaves as b'caf\\xc3\\xa9' (read back: `cafÃ©`).",
        ),
        Quirk(
            "denial.unregistered-status-becomes-500",
            UVICORN,
            "uvicorn 0.54 `--ws websockets`: `http.HTTPStatus(599)` raises ValueError in "
            "`asgi_send`, so a denial with an unregistered status becomes uvicorn's own "
            "500 text/plain `Internal Server Error`.",
        ),
        Quirk(
            "handshake.non-ascii-request-header-500",
            UVICORN_WEBSOCKETS,
            "uvicorn 0.54 `--ws websockets`: a non-ASCII request header value (obs-text, e.g. "
            "`Authorization: Bearer t\\xf6k\\xe9n`) is decoded by websockets 17.4's legacy server "
            "with surrogateescape, but uvicorn (believing websockets >= 17 uses latin-1) re-encodes "
            "it as latin-1: UnicodeEncodeError, and websockets answers `500`, text/plain "
            "`Failed to open a WebSocket connection.\\nSee server log for more information.\\n` "
            "before the app runs.",
        ),
        Quirk("app-error.500-text-plain", UVICORN, "uvicorn 0.54 `--ws websockets`: " + _UVICORN_500),
        Quirk(
            "log.deprecated-implementation",
            UVICORN,
            "uvicorn 0.54: `--ws websockets` emits UvicornDeprecationWarning at import (it will "
            "point at websockets-sansio; `--ws auto` already does).",
        ),
    ],
    "uvicorn-websockets-sansio": [
        Quirk(
            "denial.fills-content-headers:text/plain; charset=utf-8",
            UVICORN,
            "uvicorn 0.54 `--ws websockets-sansio` (the `--ws auto` default): a denial without "
            "`content-length`/`content-type` gets `content-length: 0` and "
            "`content-type: text/plain; charset=utf-8` (uvicorn's own `setdefault`s), even on "
            "1xx/204/304 and 205.",
        ),
        Quirk(
            "handshake.repeated-origin-400",
            UVICORN_WEBSOCKETS,
            "uvicorn 0.54 websockets-sansio (websockets 17.4 ServerProtocol): two Origin lines "
            "are refused by the server itself before the app runs: `400`, text/plain body "
            "`Failed to open a WebSocket connection: invalid Origin header: multiple values.\\n`.",
        ),
        Quirk(
            "log.denial-logged-as-error",
            UVICORN,
            "uvicorn 0.54 websockets-sansio logs `ERROR: ASGI callable returned without completing "
            "handshake.` after every denial response of an app that returns at once (FastAPI), although "
            "the app completed it correctly: uvicorn only marks the handshake done when the connection is "
            "lost, a loop turn later. wsreject yields that turn before returning, so the demo is not affected.",
        ),
        Quirk("app-error.500-text-plain", UVICORN, "uvicorn 0.54 websockets-sansio: " + _UVICORN_500),
    ],
    "uvicorn-wsproto": [
        Quirk(
            "status-line.no-reason-phrase",
            UVICORN_WSPROTO,
            "uvicorn 0.54 `--ws wsproto` (wsproto 1.3.2 / h11 0.16): denials go out as "
            "`HTTP/1.1 401 ` with an empty reason phrase (legal, RFC 9112 §4).",
        ),
        Quirk(
            "denial.informational-dropped",
            UVICORN_WSPROTO,
            "uvicorn 0.54 wsproto (h11 0.16): a 1xx denial makes h11 raise LocalProtocolError "
            "(`Response status_code should be in range [200, 1000)`); nothing is sent and the "
            "connection is closed.",
        ),
        Quirk("app-error.500-text-plain", UVICORN, "uvicorn 0.54 wsproto: " + _UVICORN_500),
    ],
    "hypercorn": [
        Quirk(
            "status-line.no-reason-phrase",
            HYPERCORN_H11,
            "hypercorn 0.18 (h11 0.16): every response, 101 included, has an empty reason phrase.",
        ),
        Quirk(
            "log.informational-protocol-error",
            HYPERCORN_H11,
            "hypercorn 0.18 (h11 0.16): a 1xx denial goes out as the bare informational head, then "
            "h11 raises LocalProtocolError (`can't handle event type EndOfMessage when role=SERVER "
            "and state=SEND_RESPONSE`), logged, and the connection is closed; the client gets a 1xx "
            "and EOF.",
        ),
        Quirk(
            "app-error.500-empty",
            HYPERCORN,
            "hypercorn 0.18: an exception escaping the app before accept gives `500` with "
            "`content-length: 0`, `connection: close` and no body.",
        ),
    ],
    # hypercorn over HTTP/2 (RFC 8441 extended CONNECT, tests/conformance/http2.py). What
    # HTTP/2 itself changes (an accept is a 200, no reason phrase, no connection-specific
    # header, "closed" is the end of the stream) is applied by http2.over_h2, not listed here.
    "hypercorn-h2": [
        Quirk(
            "status-line.no-reason-phrase",
            HYPERCORN_H2,
            "hypercorn 0.18 over HTTP/2 (h2 4.4): no response has a reason phrase, as HTTP/2 has "
            "none at all (RFC 9113 §8.3.2); listed so that the evidence agrees.",
        ),
        Quirk(
            "denial.informational-protocol-error",
            HYPERCORN_H2,
            "hypercorn 0.18 over HTTP/2 (h2 4.4): a 1xx denial goes out as an informational HEADERS "
            "frame, then the body as DATA with no final HEADERS; the client's h2 refuses that "
            "(PROTOCOL_ERROR, `cannot receive data before headers`): no final response.",
        ),
        Quirk(
            "app-error.500-empty",
            HYPERCORN_H2,
            "hypercorn 0.18 over HTTP/2: an exception escaping the app before accept gives `500` with "
            "`content-length: 0` and no body, the stream ended (its `connection: close` is dropped by "
            "h2, a connection-specific header); the connection stays usable.",
        ),
    ],
    # hypercorn over HTTP/3 (RFC 9220, tests/conformance/http3.py; the client is aioquic's).
    # As over HTTP/2, what HTTP/3 itself changes is applied by http2.over_h2. Every response
    # also carries hypercorn's `alt-svc: h3=":PORT"; ma=3600` (free in the expectations; the
    # port is abstracted in comparisons).
    "hypercorn-h3": [
        Quirk(
            "status-line.no-reason-phrase",
            HYPERCORN_H3,
            "hypercorn 0.18 over HTTP/3 (aioquic 1.7): no response has a reason phrase, as HTTP/3 "
            "has none (RFC 9114 §4.3.2); listed so that the evidence agrees.",
        ),
        Quirk(
            "denial.informational-protocol-error",
            HYPERCORN_H3,
            "hypercorn 0.18 over HTTP/3 (aioquic 1.7): a 1xx denial goes out as an informational "
            "HEADERS frame, then the body as DATA with no final HEADERS; the client's aioquic "
            "refuses that stream: no final response.",
        ),
        Quirk(
            "app-error.malformed-no-response",
            HYPERCORN_H3,
            "hypercorn 0.18 over HTTP/3 (aioquic 1.7): an exception escaping the app before accept "
            "gives hypercorn's own `500` with `connection: close`, a connection-specific field "
            "HTTP/3 forbids (RFC 9114 §4.2; over HTTP/2 the h2 package drops it); the client's "
            "aioquic rejects the malformed response (H3_MESSAGE_ERROR) and the connection ends: "
            "no response at all.",
        ),
    ],
    "granian": [
        Quirk(
            "denial.upgrade-headers-added",
            GRANIAN,
            "granian 2.8.7 and 2.8.9: the denial reuses the 101 response builder, so it carries "
            "`connection: upgrade`, `upgrade: websocket` and a `sec-websocket-accept` "
            "(src/ws.rs UpgradeData::send).",
        ),
        Quirk(
            "denial.connection-kept-alive",
            GRANIAN,
            "granian 2.8.7 and 2.8.9: after a denial the TCP connection stays open (HTTP "
            "keep-alive; closed after 30 s idle, the http1 header-read timeout), although the "
            "scenario closes it.",
        ),
        Quirk(
            "denial.repeated-header-kills-server",
            {"granian": ">=2.8.7,<2.8.9"},
            "granian 2.8.7: a denial with a repeated header name (two `www-authenticate`) panics "
            "the worker (`src/ws.rs:87 key.unwrap()` on `HeaderMap::drain()`, whose later values "
            "have no name); the client gets no response, and with the default "
            "`--no-respawn-failed-workers` the whole server shuts down. Fixed in 2.8.9 (see "
            "denial.header-lines-grouped-by-name).",
        ),
        Quirk(
            "denial.header-lines-grouped-by-name",
            {"granian": ">=2.8.9"},
            "granian 2.8.9: a denial with a repeated header name is sent whole, every value in the "
            "app's order, but the header lines are regrouped by name (`x-reason: a`, `x-other: b`, "
            "`x-reason: c` leaves as `x-reason: a`, `x-reason: c`, `x-other: b`); not significant "
            "in HTTP. The connection is kept alive as for any denial, and the worker survives.",
        ),
        Quirk(
            "denial.informational-becomes-500",
            GRANIAN,
            "granian 2.8.7 and 2.8.9 (hyper): a 1xx denial is replaced by `500` with "
            "`content-length: 0`, no body, connection closed.",
        ),
        Quirk(
            "app-error.403-empty-kept-alive",
            GRANIAN,
            "granian 2.8.7 and 2.8.9: an exception escaping the app before accept gives "
            "`403 Forbidden`, `content-length: 0`, no body (the upgrade was never consumed), "
            "connection kept open (30 s): a server error that looks like an authorization failure.",
        ),
    ],
    "daphne-stock": [
        Quirk(
            "denial.unsupported-reset",
            DAPHNE,
            "daphne 4.2.3 (autobahn 26.10): no denial extension; an app that sends "
            "`websocket.http.response.start` anyway (FastAPI does) is ignored, the client gets no "
            "HTTP answer and a TCP reset when the 5 s handshake timeout fires.",
        ),
        Quirk(
            "close-before-accept.403-access-denied",
            DAPHNE,
            "daphne 4.2.3: `websocket.close` before accept (wsreject's `close` fallback) answers "
            "`HTTP/1.1 403 Access denied`, no headers, no body, then closes.",
        ),
        Quirk(
            "app-error.500-bare",
            DAPHNE,
            "daphne 4.2.3: an exception escaping the app before accept answers "
            "`HTTP/1.1 500 Internal server error`, no headers, no body, then closes.",
        ),
        Quirk(
            "handshake.repeated-origin-400-bare",
            DAPHNE_AUTOBAHN,
            "daphne 4.2.3 / autobahn 26.10: two Origin lines are joined with ',' and autobahn "
            "refuses them itself: `HTTP/1.1 400 HTTP Origin header invalid: Port could not be cast "
            "to integer value as '8000,http:'`, no headers, no body; the app never runs, and "
            "exception text is in the status line.",
        ),
        Quirk(
            "close.reason-dropped",
            DAPHNE,
            "daphne 4.2.3: after accept, `websocket.close` goes out with its code only "
            "(`serverClose(code=...)` in ws_protocol.WebSocketProtocol.handle_reply); the `reason` "
            "never reaches the client. In close-code mode the client gets 4000 + status with an "
            "empty reason, and the detail only from the `{\"detail\": ...}` frame wsreject sends "
            "before closing (asserted by tests/e2e/test_matrix.py).",
        ),
    ],
    "daphne-wsreject": [
        Quirk(
            "handshake.repeated-origin-400-bad-request",
            DAPHNE_AUTOBAHN,
            "daphne 4.2.3 + wsreject.daphne (autobahn 26.10): two Origin lines are joined with ',' "
            "and autobahn refuses the handshake itself before the app runs (`HTTP Origin header "
            "invalid`); wsreject's `sendHttpErrorResponse` turns that into a clean `400 Bad Request`, "
            "text/plain; charset=utf-8 body `Bad Request`, content-length, connection: close (no "
            "exception text in the status line, unlike stock Daphne).",
        ),
        Quirk(
            "app-error.500-text-plain",
            DAPHNE,
            "daphne 4.2.3 + wsreject.daphne: an exception escaping the app before accept is answered "
            "at once (`answer_internal_error`) with `500 Internal Server Error`, text/plain; "
            "charset=utf-8 body `Internal Server Error` (21 bytes), content-length, connection: "
            "close, and logged; nothing of the exception is on the wire (scenario case 16 with the "
            "FastAPI reference, deliberate difference).",
        ),
        Quirk(
            "denial.informational-becomes-500-text-plain",
            DAPHNE,
            "daphne 4.2.3 + wsreject.daphne: a 1xx is not a denial (a proxy that trusts a 101 "
            "switches the connection to tunnel mode), so the app's 1xx start is answered `500 "
            "Internal Server Error`, text/plain; charset=utf-8 body `Internal Server Error`, "
            "content-length, connection: close, and logged with the app's status (issue 25, "
            "deliberate).",
        ),
    ],
}


def recorded_quirks(kind: str) -> list[Quirk]:
    """Every entry of ``kind``, whatever versions it names."""
    return list(SERVER_QUIRKS.get(kind, []))


def quirks(kind: str, versions: Versions | None = None) -> list[Quirk]:
    """The entries of ``kind`` that apply to ``versions`` (default: the installed ones)."""
    versions = installed_versions(kind) if versions is None else versions
    return [quirk for quirk in recorded_quirks(kind) if quirk.applies_to(versions)]


def has_quirk(kind: str, what: str, versions: Versions | None = None) -> bool:
    return any(q.what == what for q in quirks(kind, versions))


def quirk_keys(kind: str, versions: Versions | None = None) -> set[str]:
    return {q.what for q in quirks(kind, versions)}


# --- what a case looks like on a given server ---------------------------------------------------
#
# ``cases.py`` says what an app must answer; the functions below turn that into what a client
# sees through a given server, one quirk at a time.

_BASE64_ACCEPT = r"[A-Za-z0-9+/]{27}="
STOCK_DAPHNE_FALLBACKS = (None, "close", "close_code")
# The kinds without the ASGI WebSocket Denial Response extension: a denial is the app's fallback.
NO_EXTENSION_KINDS = ("daphne-stock",)


@dataclass(frozen=True)
class Situation:
    """One case as an app plays it: ``app_raises`` (an exception escapes the app before
    accept, the reference on case 16); ``fallback``, on a kind without the denial extension,
    what the app does instead of a denial (see :func:`applied_quirks`)."""

    case: Any  # tests.conformance.cases.Case
    app_raises: bool = False
    fallback: str | None = None


def _own_response(status: int, body: bytes, content_type: str | None, *, closed: bool = True):
    headers = [("content-length", str(len(body)))]
    absent = list(UPGRADE_HEADERS)
    if content_type is None:
        absent.append("content-type")
    else:
        headers.append(("content-type", content_type))
    return Expect(status, headers=tuple(headers), absent_headers=tuple(absent), body=body, closed=closed)


def _bare_response(status: int):
    """Daphne's own answer through autobahn: a status line, no headers, no body, closed.
    ``Expect`` can only list absent headers; callers assert ``headers == []`` themselves."""
    return Expect(status, absent_headers=("content-type", "content-length", *UPGRADE_HEADERS), body=b"", closed=True)


def _no_response(server_dies: bool = False):
    return Expect(None, closed=True, server_dies=server_dies)


def _origin_lines(case) -> int:
    return (case.origin is not None) + sum(1 for name, _ in case.headers if name.lower() == "origin")


def _non_ascii_request(case) -> bool:
    values = [value for _, value in case.headers] + ([case.origin] if case.origin is not None else [])
    return not all(value.isascii() for value in values)


def _is_informational(expect) -> bool:
    return expect.status is not None and 100 <= expect.status < 200 and expect.status != 101


def _registered(status: int) -> bool:
    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True


def _repeats_a_header(expect) -> bool:
    names = [name for name, _ in expect.headers]
    return len(names) != len(set(names))


def _uvicorn_500():
    return _own_response(500, b"Internal Server Error", "text/plain; charset=utf-8")


Transform = Callable[[Any, Situation], Any]  # (expectation, situation) -> expectation or None

# what -> the server's own answer instead of the app's, or None when it does not apply. In
# order of precedence: the handshake (the app never runs), then the app's error, then a denial.
REPLACEMENTS: dict[str, Transform] = {
    "handshake.repeated-origin-400": lambda e, s: (
        _own_response(
            400,
            b"Failed to open a WebSocket connection: invalid Origin header: multiple values.\n",
            "text/plain; charset=utf-8",
        )
        if _origin_lines(s.case) > 1
        else None
    ),
    "handshake.repeated-origin-400-bad-request": lambda e, s: (
        _own_response(400, b"Bad Request", "text/plain; charset=utf-8") if _origin_lines(s.case) > 1 else None
    ),
    "handshake.repeated-origin-400-bare": lambda e, s: _bare_response(400) if _origin_lines(s.case) > 1 else None,
    "handshake.non-ascii-request-header-500": lambda e, s: (
        _own_response(
            500, b"Failed to open a WebSocket connection.\nSee server log for more information.\n", "text/plain"
        )
        if _non_ascii_request(s.case)
        else None
    ),
    "app-error.500-text-plain": lambda e, s: _uvicorn_500() if s.app_raises else None,
    "app-error.500-empty": lambda e, s: _own_response(500, b"", None) if s.app_raises else None,
    "app-error.malformed-no-response": lambda e, s: _no_response() if s.app_raises else None,
    "app-error.500-bare": lambda e, s: _bare_response(500) if s.app_raises else None,
    "app-error.403-empty-kept-alive": lambda e, s: _own_response(403, b"", None, closed=False) if s.app_raises else None,
    "denial.unregistered-status-becomes-500": lambda e, s: (
        _uvicorn_500() if e.denied and not _registered(e.status) else None
    ),
    "denial.informational-dropped": lambda e, s: _no_response() if _is_informational(e) else None,
    "denial.informational-protocol-error": lambda e, s: _no_response() if _is_informational(e) else None,
    "denial.informational-becomes-500": lambda e, s: _own_response(500, b"", None) if _is_informational(e) else None,
    "denial.informational-becomes-500-text-plain": lambda e, s: _uvicorn_500() if _is_informational(e) else None,
    "denial.repeated-header-kills-server": lambda e, s: (
        _no_response(server_dies=True) if e.denied and _repeats_a_header(e) else None
    ),
    # Without the extension: what the app's fallback becomes.
    "close-before-accept.403-access-denied": lambda e, s: (
        _bare_response(403) if e.denied and s.fallback == "close" else None
    ),
    "denial.unsupported-reset": lambda e, s: _no_response() if e.denied and s.fallback is None else None,
}


def _fill_content_headers(content_type: str) -> Transform:
    def modify(expect, situation):
        if not expect.denied:
            return None
        changed = expect
        if "content-length" in expect.absent_headers:
            changed = changed.with_header("content-length", str(len(expect.body or b"")))
        if "content-type" in expect.absent_headers:
            changed = changed.with_header("content-type", content_type)
        return changed if changed != expect else None

    return modify


def _utf8_header_values(expect, situation):
    if not expect.denied or all(v.isascii() for _, v in expect.headers):
        return None
    return replace(expect, headers=tuple((k, v.encode("utf-8").decode("latin-1")) for k, v in expect.headers))


def _add_upgrade_headers(expect, situation):
    if not expect.denied:
        return None
    return (
        expect.with_header("connection", "upgrade")
        .with_header("upgrade", "websocket")
        .with_pattern("sec-websocket-accept", _BASE64_ACCEPT)
    )


def _kept_alive(expect, situation):
    if not expect.denied or expect.closed is not True:
        return None
    return replace(expect, closed=False)


# what -> the app's response as the server alters it, or None when it does not apply
MODIFICATIONS: dict[str, Transform] = {
    "denial.fills-content-headers:text/plain": _fill_content_headers("text/plain"),
    "denial.fills-content-headers:text/plain; charset=utf-8": _fill_content_headers("text/plain; charset=utf-8"),
    "denial.header-values-sent-as-utf8": _utf8_header_values,
    "denial.upgrade-headers-added": _add_upgrade_headers,
    "denial.connection-kept-alive": _kept_alive,
}


def denial_detail(expect) -> str:
    """The detail a denial carries: ``detail`` of a ``{"detail": ...}`` body, else the
    status phrase (what ``wsreject.DenialResponse.detail`` defaults to)."""
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


def applied_quirks(
    kind: str,
    case,
    *,
    app_raises: bool = False,
    fallback: str | None = None,
    active: Iterable[Quirk] | None = None,
) -> tuple[Any, list[str]]:
    """(the expectation of ``case`` on ``kind``, the quirk keys that changed it).

    ``active``: the quirks to apply (default: those of ``kind`` for the installed versions).
    ``app_raises``: an exception escapes the app before accept; some quirk must say what
    the server answers then (ValueError otherwise). ``fallback`` matters only on a kind
    without the denial extension (``daphne-stock``), where a denial is the app's fallback:
    ``"close"`` (wsreject's default: ``websocket.close`` before accept, which the server
    answers itself), ``"close_code"`` (wsreject accepts, sends ``{"detail": ...}`` and
    closes with 4000 + status: a 101 whose first message is that frame; the close code is
    not part of ``Expect``), or ``None`` (an app that sends the extension's messages anyway,
    as FastAPI does).
    """
    active = list(quirks(kind) if active is None else active)
    if kind in NO_EXTENSION_KINDS and fallback not in STOCK_DAPHNE_FALLBACKS:
        raise ValueError(f"{kind}: fallback must be one of {STOCK_DAPHNE_FALLBACKS}, got {fallback!r}")
    situation = Situation(case, app_raises, fallback if kind in NO_EXTENSION_KINDS else None)
    expect = case.expect
    keys = {quirk.what for quirk in active}
    for what, replace_with in REPLACEMENTS.items():  # in their order of precedence
        if what in keys:
            result = replace_with(expect, situation)
            if result is not None:
                return result, [what]
    if app_raises:
        raise ValueError(f"{kind}: no quirk says what the server answers when the app raises ({case.id})")
    if kind in NO_EXTENSION_KINDS and expect.denied and situation.fallback == "close_code":
        return accepted(raw_first=compact_json({"detail": denial_detail(expect)})), []
    used = []
    for quirk in active:
        modify = MODIFICATIONS.get(quirk.what)
        if modify is not None:
            changed = modify(expect, situation)
            if changed is not None:
                expect = changed
                used.append(quirk.what)
    return expect, used


def expected_on_server(kind: str, case, *, app_raises: bool = False, fallback: str | None = None):
    """What a client sees of ``case`` (a ``tests.conformance.cases.Case``) through ``kind``
    with the installed versions (see :func:`applied_quirks`)."""
    return applied_quirks(kind, case, app_raises=app_raises, fallback=fallback)[0]


# --- evidence: what a whole run shows beyond the cases' expectations -------------------------------


@dataclass
class Evidence:
    """What one server run showed: its log, the raw answer to each case (``None``: no
    HTTP response), and close frames seen after accept (case id -> (code, reason))."""

    cases: Sequence[Any] = ()
    log: str = ""
    app: str = ""  # "reference" or "demo", when known
    responses: Mapping[str, Any] = field(default_factory=dict)
    closes: Mapping[str, tuple[int | None, str | None]] = field(default_factory=dict)


YES, NO, PARTLY = "yes", "no", "partly"


def _state(flags: Iterable[bool]) -> str | None:
    """YES when every flag is set, NO when none is, PARTLY otherwise; None without any."""
    seen = list(flags)
    if not seen:
        return None
    return YES if all(seen) else NO if not any(seen) else PARTLY


def _in_log(
    snippet: str, triggered_by: Callable[[Any], bool] | None = None, apps: Sequence[str] | None = None
) -> Callable[[Evidence], str | None]:
    """Whether the log shows ``snippet``; with ``triggered_by`` (an expectation predicate), only
    runs that sent such a case can tell; with ``apps``, only runs of those apps."""

    def judge(evidence: Evidence) -> str | None:
        if not evidence.log or (apps is not None and evidence.app not in apps):
            return None
        if triggered_by is not None and not any(triggered_by(case.expect) for case in evidence.cases):
            return None
        return _state([snippet in evidence.log])

    return judge


def _no_reason_phrase(evidence: Evidence) -> str | None:
    """Every denial with a registered status has an empty reason phrase (an unregistered
    status has none anywhere, so it tells nothing)."""
    return _state(
        response.reason == ""
        for response in evidence.responses.values()
        if response is not None and response.status != 101 and _registered(response.status)
    )


def _interleaved_names(names: Sequence[str]) -> list[str]:
    """The lines from the first to the last line of every name that repeats with another
    name in between (``a b a`` -> ``a b a``; ``a a b`` -> nothing), in order."""
    keep = [False] * len(names)
    for i, name in enumerate(names):
        j = max(k for k, other in enumerate(names) if other == name)
        if j > i and any(other != name for other in names[i:j]):
            keep[i : j + 1] = [True] * (j + 1 - i)
    return [name for name, kept in zip(names, keep) if kept]


def _header_lines_grouped(evidence: Evidence) -> str | None:
    """For each denial whose app sends one header name with another in between: are the
    lines of each name sent together (YES) or in the app's order (NO)?"""
    flags = []
    for case in evidence.cases:
        response = evidence.responses.get(case.id)
        wanted = _interleaved_names([name for name, _ in case.expect.headers])
        if response is None or not case.expect.denied or not wanted:
            continue
        sent = [name for name, _ in response.headers if name in set(wanted)]
        if sorted(sent) != sorted(wanted):
            continue  # not the app's header lines (the server's own answer): tells nothing
        grouped = sorted(wanted, key=wanted.index)
        if sent == wanted:
            flags.append(False)
        elif sent == grouped:
            flags.append(True)
        else:
            return PARTLY  # the app's lines in some other order
    return _state(flags)


def _close_reason_dropped(evidence: Evidence) -> str | None:
    return _state(reason == "" for code, reason in evidence.closes.values() if code is not None and code >= 4000)


# what -> judge(evidence) -> YES (the behaviour is seen), NO (the scenario's is), PARTLY, or
# None (this run cannot tell)
EVIDENCE: dict[str, Callable[[Evidence], str | None]] = {
    "status-line.no-reason-phrase": _no_reason_phrase,
    "log.deprecated-implementation": _in_log("The `websockets` implementation is deprecated"),
    "log.denial-logged-as-error": _in_log("ASGI callable returned without completing handshake.", apps=("reference",)),
    "log.informational-protocol-error": _in_log("can't handle event type EndOfMessage", triggered_by=_is_informational),
    "denial.header-lines-grouped-by-name": _header_lines_grouped,
    "close.reason-dropped": _close_reason_dropped,
}


# what -> what the evidence shows when the judge says YES, for reports
EVIDENCE_SHOWS: dict[str, str] = {
    "status-line.no-reason-phrase": "denials have an empty reason phrase",
    "log.deprecated-implementation": "the log says the `websockets` implementation is deprecated",
    "log.denial-logged-as-error": "the log calls correct denials an error (handshake not completed)",
    "log.informational-protocol-error": "the log shows h11's LocalProtocolError after a 1xx denial",
    "denial.header-lines-grouped-by-name": "the lines of a repeated header name are sent together, not in the app's order",
    "close.reason-dropped": "close frames after accept arrive without their reason",
}


def evidence_state(what: str, evidences: Iterable[Evidence]) -> str | None:
    """EVIDENCE[what] over several runs of one kind (both apps): runs that cannot tell are
    left out; YES or NO when the others agree, PARTLY otherwise."""
    states = [state for state in (EVIDENCE[what](evidence) for evidence in evidences) if state is not None]
    if not states:
        return None
    return states[0] if all(state == states[0] for state in states) else PARTLY
