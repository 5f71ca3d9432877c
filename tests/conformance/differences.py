"""The deliberate differences between the Django demo and the FastAPI reference, as data.

The conformance runner (``runner.py``) compares both apps' answers to every case on every
target field by field. A field that differs is a failure unless an entry here names the
case, the target (a server kind, ``"in-process"``, or ``"*"`` for every target) and the
field. Entries are asserted too: a listed field that no longer differs on a target the
entry names fails the suite, so the list cannot go stale.

Field names (see ``runner.compare``): ``outcome`` (one app answered, the other did not:
then nothing else is compared), ``status``, ``reason`` (the status line's phrase),
``header:<name>`` (that header's values, in order), ``body``, ``connection`` (whether the
server closed TCP after the denial), ``extra``, ``after``, ``messages``, ``attempts``.

``docs/conformance.md`` renders this list (regenerate it with
``python -m tests.conformance.runner --markdown docs/conformance.md``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    case: str  # a case id of cases.py
    target: str  # a server kind, "in-process", or "*"
    fields: tuple[str, ...]  # what differs (runner.Diff.field)
    reference: str  # what the FastAPI reference answers there
    demo: str  # what the Django demo answers there
    why: str


_DEMO_500 = '500 `{"detail":"Internal Server Error"}` (application/json, content-length 34)'
_WHY_16 = (
    "Scenario case 16, deliberate: FastAPI lets an unexpected error before accept reach the "
    "server, so the client gets whatever that server makes of a crashed app; wsreject's "
    "DenialMiddleware catches it, logs it and answers a JSON 500 like every other denial, so "
    "clients see one shape for all refusals on every server. Neither leaks the exception."
)

DIFFERENCES: list[Difference] = [
    Difference(
        "s16-broken",
        "in-process",
        ("outcome",),
        "the RuntimeError escapes the ASGI application; it sends nothing",
        _DEMO_500,
        _WHY_16 + " In process there is no server to turn the exception into a response.",
    ),
    Difference(
        "s16-broken",
        "daphne-wsreject",
        ("header:content-type", "header:content-length", "body"),
        "500 `Internal Server Error`, text/plain; charset=utf-8, from wsreject.daphne's protocol "
        "(SERVER_QUIRKS: app-error.500-text-plain)",
        _DEMO_500,
        _WHY_16,
    ),
    *(
        Difference(
            "s16-broken",
            kind,
            ("header:content-type", "header:content-length", "body", *extra),
            f"uvicorn's own 500 `Internal Server Error`, text/plain; charset=utf-8{note} "
            "(SERVER_QUIRKS: app-error.500-text-plain)",
            _DEMO_500 + (", no `connection` header" if extra else ""),
            _WHY_16,
        )
        for kind, extra, note in (
            ("uvicorn-websockets", (), ""),
            ("uvicorn-websockets-sansio", (), ""),
            # wsproto writes `connection: close` on uvicorn's own error response only.
            ("uvicorn-wsproto", ("header:connection",), ", `connection: close`"),
        )
    ),
    Difference(
        "s16-broken",
        "hypercorn",
        ("header:content-type", "header:content-length", "header:connection", "body"),
        "hypercorn's own 500: `content-length: 0`, `connection: close`, no content-type, no body "
        "(SERVER_QUIRKS: app-error.500-empty)",
        _DEMO_500 + ", no `connection` header",
        _WHY_16,
    ),
    Difference(
        "s16-broken",
        "hypercorn-h2",
        ("header:content-type", "header:content-length", "body"),
        "hypercorn's own 500 over HTTP/2: `content-length: 0`, no content-type, no body, the stream "
        "ended (SERVER_QUIRKS: app-error.500-empty)",
        _DEMO_500,
        _WHY_16,
    ),
    Difference(
        "s16-broken",
        "hypercorn-h3",
        ("outcome",),
        "no response: hypercorn's own 500 carries `connection: close`, which HTTP/3 forbids, and "
        "the client rejects it (SERVER_QUIRKS: app-error.malformed-no-response)",
        _DEMO_500,
        _WHY_16,
    ),
    Difference(
        "s16-broken",
        "granian",
        (
            "status",
            "reason",
            "header:content-type",
            "header:content-length",
            "header:connection",
            "header:upgrade",
            "header:sec-websocket-accept",
            "body",
            "attempts",
        ),
        "granian's own `403 Forbidden`, `content-length: 0`, no body, connection kept open "
        "(SERVER_QUIRKS: app-error.403-empty-kept-alive): a server error that looks like a refusal",
        _DEMO_500 + " with granian's upgrade headers on the denial (SERVER_QUIRKS: "
        "denial.upgrade-headers-added), connection kept open",
        _WHY_16,
    ),
]

_WHY_NOT_AN_ERROR = (
    "Deliberate: a handshake is refused with a client or server error. FastAPI sends whatever "
    "status an HTTPException carries (1xx, 2xx, 3xx included, which clients read as a failed or "
    "even a redirected handshake); wsreject refuses to build such a denial where it is written "
    "(ValueError), so the demo's DenyConsumer fails and answers its JSON 500 like any other bug."
)

#: Fields that may differ on some target for a non-error status: the servers treat the
#: reference's 1xx/2xx/3xx answers in their own ways (SERVER_QUIRKS), the demo's 500 alike.
_COMMON = ("status", "reason", "header:content-length", "body", "attempts")
_NOT_AN_ERROR_FIELDS = {
    # 1xx: some servers send nothing for the reference (outcome), granian its upgrade headers.
    "deny-100-informational": (
        *_COMMON, "header:content-type", "header:connection", "header:upgrade", "header:sec-websocket-accept", "connection", "outcome",
    ),
    "deny-200": _COMMON,
    "deny-204-no-body": (*_COMMON, "header:content-type"),
    "deny-205-no-body": (*_COMMON, "header:content-type"),
    "deny-301-location": (*_COMMON, "header:location"),
    "deny-304-no-body": (*_COMMON, "header:content-type", "header:etag"),
}

DIFFERENCES += [
    Difference(case, "*", fields, "the status it was given, as FastAPI renders it", _DEMO_500, _WHY_NOT_AN_ERROR)
    for case, fields in _NOT_AN_ERROR_FIELDS.items()
]
