"""The little of RFC 6455 framing the probe needs: read a server's frames, write masked ones."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Close", "Frame", "FrameError", "Opcode", "apply_mask", "close_payload", "encode_frame", "parse_close", "parse_frame"]


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        return self >= 0x8


class FrameError(ValueError):
    """A frame that breaks RFC 6455."""


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: Opcode
    payload: bytes


def parse_frame(data: bytes | bytearray, max_payload: int) -> tuple[Frame, int] | None:
    """The first frame in ``data`` and the bytes it took, or None when more data is needed.

    Frames from a server are never masked (RFC 6455 §5.1); a payload over ``max_payload``
    bytes is refused rather than buffered.
    """
    if len(data) < 2:
        return None
    first, second = data[0], data[1]
    if first & 0x70:
        raise FrameError("reserved bits set without a negotiated extension")
    try:
        opcode = Opcode(first & 0x0F)
    except ValueError:
        raise FrameError(f"unknown opcode {first & 0x0F:#x}") from None
    fin = bool(first & 0x80)
    if second & 0x80:
        raise FrameError("a frame from the server is masked")
    length = second & 0x7F
    offset = 2
    if length == 126:
        if len(data) < 4:
            return None
        (length,) = struct.unpack_from("!H", data, 2)
        offset = 4
    elif length == 127:
        if len(data) < 10:
            return None
        (length,) = struct.unpack_from("!Q", data, 2)
        offset = 10
    if opcode.is_control and (length > 125 or not fin):
        raise FrameError("a control frame longer than 125 bytes or fragmented")
    if length > max_payload:
        raise FrameError(f"a frame of {length} bytes (the probe reads at most {max_payload})")
    if len(data) < offset + length:
        return None
    return Frame(fin, opcode, bytes(data[offset : offset + length])), offset + length


def encode_frame(opcode: Opcode, payload: bytes = b"", mask_key: bytes | None = None) -> bytes:
    """One final client frame, masked as RFC 6455 §5.3 requires (random key unless given)."""
    key = mask_key if mask_key is not None else os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + key + apply_mask(payload, key)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (its own inverse)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")


@dataclass(frozen=True)
class Close:
    """A close frame's content: ``code`` None when the frame carried none (RFC 6455 §7.1.5: 1005)."""

    code: int | None
    reason: str


def parse_close(payload: bytes) -> Close:
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        raise FrameError("a close frame with a 1-byte payload")
    (code,) = struct.unpack_from("!H", payload)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("a close reason that is not UTF-8") from None
    return Close(code, reason)
