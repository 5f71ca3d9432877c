"""Helpers for the authentication tests: handshakes against the demo's own ASGI application."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from wsreject.testing import Accepted, Denied, HandshakeCommunicator

Headers = Sequence[tuple[bytes, bytes]]

INVALID_TICKET = "Invalid, expired or already used ticket"


def demo_application() -> Any:
    """``project.asgi.application``, imported when first needed (after Django is set up)."""
    from project.asgi import application

    return application


def authorization(scheme: str, credential: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"{scheme} {credential}".encode("latin-1"))]


async def connect(
    path: str, headers: Headers = (), *, app: Any = None, close_code: bool = False
) -> tuple[HandshakeCommunicator, Accepted | Denied]:
    """One handshake against the demo (or ``app``); a denied application is waited for.
    ``close_code``: recognise close-code denials (``/ws/browser/...``) as denials."""
    communicator = HandshakeCommunicator(app or demo_application(), path, headers=list(headers))
    result = await communicator.handshake(timeout=10, close_code=close_code)
    if not result.accepted:
        if result.denial_mode == "close":  # the server answers 403 and tells the application
            await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
        await communicator.wait(timeout=10)
    return communicator, result


async def greeting(path: str, headers: Headers = (), *, app: Any = None) -> Any:
    """Open ``path``, return the consumer's first JSON message, disconnect; fail if denied."""
    communicator, result = await connect(path, headers, app=app)
    assert result.accepted, f"{path} denied: {result.status_code} {result.body!r}"
    try:
        return json.loads(await communicator.receive_from(timeout=10))
    finally:
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(timeout=10)


async def denial(path: str, headers: Headers = (), *, app: Any = None, close_code: bool = False) -> Denied:
    """Open ``path`` and return the denial; fail if it was accepted."""
    communicator, result = await connect(path, headers, app=app, close_code=close_code)
    if result.accepted:
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(timeout=10)
        raise AssertionError(f"{path} was accepted")
    assert isinstance(result, Denied)
    return result


def assert_401(result: Denied, detail: str, challenge: str) -> None:
    """A 401 with exactly this JSON body and ``WWW-Authenticate`` challenge."""
    assert result.denial_mode == "http"
    assert result.status_code == 401, (result.status_code, result.body)
    assert result.body == json.dumps({"detail": detail}, separators=(",", ":")).encode()
    assert result.header_list("www-authenticate") == [challenge]


def invalid_token(detail: str, scheme: str = "Bearer") -> str:
    """The RFC 6750 challenge for a refused credential."""
    return f'{scheme} error="invalid_token", error_description="{detail}"'


def get_user(username: str) -> Any:
    return get_user_model().objects.get(username=username)


aget_user = sync_to_async(get_user)
