"""An outcome as text for people or as JSON for programs.

Everything the server sent is printed with control characters escaped, so a hostile
answer cannot drive the terminal; bodies are cut at :data:`SHOWN_BODY` characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TypeAlias

from ..http import status_phrase
from .client import CloseCodeDenied, Denied, Message, Outcome
from .http import ResponseHead

__all__ = [
    "SHOWN_BODY",
    "SHOWN_MESSAGE",
    "JsonValue",
    "body_text",
    "escape",
    "render_failure_json",
    "render_json",
    "render_request",
    "render_text",
]

SHOWN_BODY = 4000  # characters of a body in the text report
SHOWN_MESSAGE = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps TAB and LF
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


def escape(text: str, *, multiline: bool = False) -> str:
    """``text`` with control characters as ``\\xNN`` (line breaks kept when ``multiline``)."""
    pattern = _CONTROL if multiline else _CONTROL_OR_NEWLINE
    return pattern.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _status_text(status: int, reason: str = "") -> str:
    return f"{status} {reason or status_phrase(status)}".rstrip()


def _head_lines(head: ResponseHead) -> list[str]:
    lines = [escape(f"{head.http_version} {head.status} {head.reason}".rstrip())]
    if not head.reason and status_phrase(head.status) and head.http_version != "HTTP/2":  # HTTP/2 has no reason phrase
        lines[0] += f"  (no reason phrase; {status_phrase(head.status)})"
    lines += [f"{name}: {escape(value)}" for name, value in head.headers]
    return lines


def _decode(body: bytes, head: ResponseHead) -> str:
    try:
        return body.decode(head.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset
        return body.decode("utf-8", errors="replace")


def _is_json(head: ResponseHead) -> bool:
    media_type = head.content_type
    return media_type == "application/json" or media_type.endswith("+json")


def _parsed_json(denied: Denied) -> tuple[bool, JsonValue]:
    """(whether the body is JSON, the value)."""
    if not _is_json(denied.head) or denied.truncated:
        return False, None
    try:
        value: JsonValue = json.loads(denied.body)
    except ValueError:
        return False, None
    return True, value


def _cut(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many were left out."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def body_text(denied: Denied) -> list[str]:
    """The body as shown: pretty-printed when it is JSON, else text; cut when huge."""
    if not denied.body:
        return ["(no body)"]
    is_json, value = _parsed_json(denied)
    if is_json:
        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        text = _decode(denied.body, denied.head)
    shown, left_out = _cut(text, SHOWN_BODY)
    lines = [escape(shown, multiline=True)]
    if _is_json(denied.head) and not is_json and not denied.truncated:
        lines.append("(the content-type says JSON, but the body is not valid JSON)")
    if left_out or denied.truncated:
        total = f"{len(denied.body)}+ bytes" if denied.truncated else f"{len(text)} characters"
        lines.append(f"… (body cut: {len(shown)} of {total} shown)")
    return lines


def _message_line(message: Message) -> str:
    if message.text is None:
        shown, left_out = _cut(message.payload.hex(" "), SHOWN_MESSAGE)
        kind = f"binary, {len(message.payload)} bytes"
    else:
        shown, left_out = _cut(message.text, SHOWN_MESSAGE)
        kind = "text"
    return f"message ({kind}): {escape(shown)}" + (f" … ({left_out} more characters)" if left_out else "")


def _quoted(text: str | None) -> str:
    return "(none)" if text is None else json.dumps(text, ensure_ascii=False)


def render_text(outcome: Outcome) -> str:
    """The report a person reads."""
    lines: list[str]
    if isinstance(outcome, Denied):
        lines = [f"denied: HTTP {escape(_status_text(outcome.head.status, outcome.head.reason))}", ""]
        lines += _head_lines(outcome.head) + [""] + body_text(outcome)
        if outcome.note:
            lines.append(f"({outcome.note})")
    elif isinstance(outcome, CloseCodeDenied):
        code = outcome.close.code
        lines = [f"denied in close-code mode: close code {code} (HTTP {_status_text(outcome.status)})", ""]
        lines += _head_lines(outcome.head) + [""]
        lines += [
            f"subprotocol: {outcome.subprotocol or '(none)'}",
            f"close code: {code}",
            f"status: {_status_text(outcome.status)}",
            f"reason: {escape(_quoted(outcome.close.reason))}",
            f"detail: {escape(_quoted(outcome.detail)) if outcome.detail is not None else '(no detail frame)'}",
        ]
    else:
        # 101 over HTTP/1.1; a 2xx to the extended CONNECT over HTTP/2 (RFC 8441 §5)
        lines = [f"accepted: HTTP {escape(_status_text(outcome.head.status, outcome.head.reason))}", ""]
        lines += _head_lines(outcome.head) + [""]
        lines.append(f"subprotocol: {outcome.subprotocol or '(none)'}")
        lines += [_message_line(message) for message in outcome.messages]
        if outcome.close is not None:
            lines.append(f"closed by the server: {outcome.close.code} {escape(_quoted(outcome.close.reason))}")
        if outcome.note:
            lines.append(f"({outcome.note})")
    return "\n".join(lines)


def _headers_json(head: ResponseHead) -> JsonValue:
    return {
        "version": head.http_version,
        "status": head.status,
        "reason": head.reason,
        "headers": [[name, value] for name, value in head.headers],
    }


def _message_json(message: Message) -> JsonValue:
    if message.text is None:
        return {"type": "binary", "hex": message.payload.hex()}
    return {"type": "text", "text": message.text}


def render_json(outcome: Outcome, request: Sequence[str] = ()) -> str:
    """The report a program reads: one JSON object (``request``: the masked request head)."""
    data: dict[str, JsonValue] = {
        "url": outcome.url,
        "exit_code": outcome.exit_code,
        "request": list(request),
        "http": _headers_json(outcome.head),
    }
    if isinstance(outcome, Denied):
        is_json, value = _parsed_json(outcome)
        detail = value.get("detail") if is_json and isinstance(value, dict) else None
        data.update(
            outcome="denied",
            status=outcome.head.status,
            detail=detail,
            body=_decode(outcome.body, outcome.head),
            body_json=value,
            body_truncated=outcome.truncated,
            note=outcome.note,
        )
    elif isinstance(outcome, CloseCodeDenied):
        data.update(
            outcome="denied_close_code",
            status=outcome.status,
            detail=outcome.detail,
            subprotocol=outcome.subprotocol,
            close_code=outcome.close.code,
            close_reason=outcome.close.reason,
        )
    else:
        close = outcome.close
        data.update(
            outcome="accepted",
            status=outcome.head.status,
            subprotocol=outcome.subprotocol,
            messages=[_message_json(message) for message in outcome.messages],
            close=None if close is None else {"code": close.code, "reason": close.reason},
            note=outcome.note,
        )
    return json.dumps(data, indent=2, ensure_ascii=False)


def render_failure_json(url: str, message: str, head: ResponseHead | None, request: Sequence[str] = ()) -> str:
    data: dict[str, JsonValue] = {
        "url": url,
        "exit_code": 2,
        "outcome": "error",
        "error": message,
        "request": list(request),
    }
    if head is not None:
        data["http"] = _headers_json(head)
    return json.dumps(data, indent=2, ensure_ascii=False)


def render_request(lines: Sequence[str]) -> str:
    """The request head as sent (credentials masked), curl style."""
    return "\n".join(f"> {escape(line)}" for line in lines)
