"""What a handshake produced, whatever the target, and the properties every answer must have."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import model


@dataclass
class Outcome:
    """One handshake's answer. ``status`` is 101 when accepted, the HTTP status of a
    denial, or 4000 - close code for a close-code denial; None when nothing came back."""

    status: int | None
    mode: str  # "accepted", "http", "close_code", "none"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    greeting: Any = None  # the first message after accept, decoded JSON when it is JSON
    wire: bytes = b""  # everything the client received (for leak checks)
    reason: str = ""  # status line reason phrase / close reason
    note: str = ""

    @property
    def accepted(self) -> bool:
        return self.mode == "accepted"

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def is_json(self) -> bool:
        return any(v.split(b";")[0].strip().lower() == b"application/json" for v in self.header(b"content-type"))

    def label(self) -> str:
        if self.mode == "none":
            return "no response"
        if self.mode == "close_code":
            return f"close {4000 + (self.status or 0)}"
        return str(self.status)


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

#: Text that must never reach the wire with DEBUG off: tracebacks, exception class names,
#: source locations and the secret the demo's broken check raises with.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    ".py",
    "line ",
    "hunter2",
    "secret internal state",
    "database password",
    "RuntimeError",
    "ValueError",
    "TypeError",
    "KeyError",
    "AttributeError",
    "IndexError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "AssertionError",
    "OperationalError",
    "Resolver404",
    "Http404",
    "ImproperlyConfigured",
    "NeedsIO",
    "Exception",
    "wsreject.",
    "django.",
    "channels.",
)


def leaks(wire: bytes, request: bytes) -> list[str]:
    """The markers present in ``wire`` that the request did not bring itself (a denial may
    repeat what it was sent, as ``/ws/deny/`` does with ``?detail=``)."""
    text = wire.decode("latin-1")
    utf8 = wire.decode("utf-8", "replace")
    sent = request.decode("latin-1") + request.decode("utf-8", "replace")
    return [m for m in LEAK_MARKERS if (m in text or m in utf8) and m not in sent]


def response_problems(outcome: Outcome, request: bytes, *, app_answer: bool) -> list[str]:
    """Properties 3 and 4 for one answer. ``app_answer`` False: the server answered itself
    (only the HTTP framing is checked, not the JSON shape)."""
    problems = []
    if outcome.mode == "http":
        for name, value in outcome.headers:
            if not _TOKEN.fullmatch(name):
                problems.append(f"header name {name!r} is not a token")
            if _CONTROL.search(value):
                problems.append(f"header {name!r} has a control byte: {value!r}")
        status = outcome.status or 0
        lengths = outcome.header(b"content-length")
        chunked = any(b"chunked" in v.lower() for v in outcome.header(b"transfer-encoding"))
        if chunked and lengths:
            problems.append("both content-length and transfer-encoding: chunked")
        elif not chunked and not (status < 200 or status in (204, 304)):
            if not lengths and not app_answer:
                pass  # a server's own refusal may be delimited by the close (Twisted's 400)
            elif len(lengths) != 1:
                problems.append(f"{len(lengths)} content-length headers")
            elif lengths[0] != str(len(outcome.body)).encode():
                problems.append(f"content-length {lengths[0]!r} but the body has {len(outcome.body)} bytes")
        if app_answer and outcome.is_json:
            problems += _json_problems(outcome.body)
    elif outcome.mode == "close_code":
        problems += _json_problems(outcome.body)
    found = leaks(outcome.wire, request)
    if found:
        problems.append(f"exception text on the wire: {found} in {outcome.wire[:300]!r}")
    return problems


def _json_problems(body: bytes) -> list[str]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        return [f"JSON body does not parse ({exc}): {body[:200]!r}"]
    if not isinstance(data, dict) or "detail" not in data:
        return [f"JSON body has no detail: {body[:200]!r}"]
    return []


def server_error_problem(outcome: Outcome, r: model.Route | None) -> str | None:
    """Property 2: a 5xx only where the demo answers one on purpose."""
    status = outcome.status
    if status is not None and 500 <= status <= 599 and not model.allowed_server_error(r, status):
        return f"{outcome.label()} caused by client input (route {r})"
    return None


def accept_problems(outcome: Outcome, r: model.Route | None, user: str) -> list[str]:
    """Property 1 (model half): an accept must be one the demo allows this request."""
    if not outcome.accepted:
        return []
    if r is None:
        return ["accepted a path that no route matches"]
    problems = []
    if r.endpoint in model.LOGIN_REQUIRED:
        if not model.signed_in(user):
            problems.append(f"accepted on login-required {r.endpoint} without an exactly valid credential (model: {user})")
        greeted = model.greeting_user(outcome.greeting)
        if greeted is not None and greeted != user:
            problems.append(f"accepted as {greeted!r}, but the request's credential is {user!r}")
    if model.disabled_by_rule(r):
        problems.append(f"accepted on {r.routed_path}, which a disabled access rule covers")
    expected = model.expected_outcome(r, user if model.signed_in(user) else model.ANONYMOUS, "none", None)
    if expected is not None and not expected.allows(101) and r.endpoint != "subprotocol":
        problems.append(f"accepted where the demo never accepts this user: {expected.why}")
    return problems
