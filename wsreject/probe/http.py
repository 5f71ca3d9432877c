"""The HTTP/1.1 response to an upgrade request: its head, and how its body is framed."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HEAD_END", "BodyFraming", "MalformedResponse", "ResponseHead", "body_framing", "parse_head"]

_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEAD_END = re.compile(rb"\r?\n\r?\n")


class MalformedResponse(ValueError):
    """The server's answer is not a valid HTTP response."""


@dataclass(frozen=True)
class ResponseHead:
    http_version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # in wire order, names as sent, values decoded as latin-1

    def values(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive), in order."""
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def value(self, name: str) -> str | None:
        """The values of ``name`` joined with ", " (RFC 9110 §5.3), or None."""
        values = self.values(name)
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        """A comma-separated header's elements, lower-cased."""
        return [item.strip().lower() for value in self.values(name) for item in value.split(",") if item.strip()]

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return (self.value("content-type") or "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        match = re.search(r";\s*charset=\"?([\w.:-]+)", self.value("content-type") or "", re.IGNORECASE)
        return match.group(1) if match else None


def parse_head(raw: bytes) -> ResponseHead:
    """``raw``: the bytes up to (not including) the blank line ending the head."""
    lines = [line.rstrip(b"\r") for line in raw.split(b"\n")]
    match = _STATUS_LINE.fullmatch(lines[0])
    if not match:
        raise MalformedResponse(f"not an HTTP/1.x status line: {_printable(lines[0])}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise MalformedResponse("a folded header line (obsolete line folding)")
        name, colon, value = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise MalformedResponse(f"a malformed header line: {_printable(line)}")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return ResponseHead(
        http_version=match.group(1).decode("ascii"),
        status=int(match.group(2)),
        reason=(match.group(3) or b"").decode("latin-1").strip(),
        headers=tuple(headers),
    )


@dataclass(frozen=True)
class BodyFraming:
    """How the body ends: ``length`` bytes, chunked, at EOF, or not at all (``length == 0``)."""

    length: int | None  # None: chunked or until close
    chunked: bool = False


def body_framing(head: ResponseHead) -> BodyFraming:
    """RFC 9112 §6.3, for a response to a GET."""
    if head.status < 200 or head.status in (204, 304):
        return BodyFraming(0)
    codings = head.tokens("transfer-encoding")
    if codings:
        if codings[-1] != "chunked":
            return BodyFraming(None)
        return BodyFraming(None, chunked=True)
    lengths = {value.strip() for value in head.values("content-length")}
    if not lengths:
        return BodyFraming(None)
    if len(lengths) > 1 or not all(part.strip().isdigit() for part in next(iter(lengths)).split(",")):
        raise MalformedResponse(f"an invalid content-length: {', '.join(sorted(lengths))}")
    numbers = {int(part) for part in next(iter(lengths)).split(",")}
    if len(numbers) > 1:
        raise MalformedResponse(f"conflicting content-length values: {sorted(numbers)}")
    return BodyFraming(numbers.pop())


def _printable(data: bytes, limit: int = 80) -> str:
    text = repr(data[:limit])[2:-1]
    return text + ("…" if len(data) > limit else "")
