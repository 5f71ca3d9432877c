"""The FastAPI reference implementation of the "rooms" conformance scenario.

Written the way FastAPI users write it: dependencies that raise ``HTTPException``
(FastAPI sends those through the ASGI WebSocket Denial Response extension as
``{"detail": ...}`` JSON), ``websocket.send_denial_response()`` for an arbitrary
response, ``WebSocketException`` after accept. It is the yardstick the Django demo
is compared with; see ``/work/shared/conformance/scenario.md`` and
``tests/conformance/cases.py``.

Run it: ``WSREJECT_REF_TOKENS='{"alice": "..."}' uvicorn tests.conformance.reference_fastapi:app``.

Tokens come from the environment variable ``WSREJECT_REF_TOKENS``, a JSON object
``{username: token}``; the suite generates them. A token mapped to a user that
does not exist here (e.g. ``erin``, "deleted") or to an inactive user (``dave``)
answers ``401 Invalid credentials``, exactly like a token nobody issued.

Behaviour of the extra endpoints (the Django demo implements the same):

``/ws/deny/{status}/`` (anonymous)
    Denies with ``HTTPException(status, detail, headers)``. ``?detail=`` sets the
    detail (absent: the status phrase; present and empty: ``""``). Each repeated
    ``?h=name:value`` adds a response header. ``HTTPException.headers`` is a dict,
    so one name can carry one value only; when a name repeats, the endpoint renders
    the exception with FastAPI's own ``http_exception_handler`` (the first value of
    each name in the dict, as ``raise`` would), appends the further values to the
    response's raw headers with ``response.headers.append`` and sends it with
    ``websocket.send_denial_response``. The bytes on the wire are those ``raise``
    would produce, plus the repeated lines, which come after ``content-type``.
    FastAPI renders 1xx, 204, 205 and 304 without a body (205 still gets
    ``content-length: 0``, Starlette only omits it for 1xx/204/304).

``/ws/subprotocol/``
    Accepts with the first subprotocol the client offers among ``chat.v1`` and
    ``chat.v2`` (the client's order decides), or without one when none is offered;
    offered but none supported: ``400 Unsupported subprotocol``. After accept it
    sends ``{"subprotocol": <chosen or null>}``.

Checks run in the scenario's order: origin (an app-wide dependency, so it also
guards the catch-all), then authentication, then permission, then existence.
The rate limiter counts admitted connections only: ``Retry-After`` is the time
until the oldest of them leaves the 60 s window, so retrying then succeeds.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, WebSocket, WebSocketException
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.websockets import WebSocketDisconnect

# --- users, rooms, tokens -------------------------------------------------------------


@dataclass(frozen=True)
class User:
    username: str
    is_active: bool = True
    is_staff: bool = False
    permissions: frozenset[str] = frozenset()

    def has_perm(self, perm: str) -> bool:
        return self.is_active and perm in self.permissions


# alice is in group "members", which holds chat.join_room.
USERS: dict[str, User] = {
    "alice": User("alice", permissions=frozenset({"chat.join_room"})),
    "bob": User("bob"),
    "carol": User("carol", is_staff=True),
    "dave": User("dave", is_active=False),
}
ROOMS = frozenset({"lobby", "dev"})
SUPPORTED_SUBPROTOCOLS = ("chat.v1", "chat.v2")
ALLOWED_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1"})
RATE_LIMIT = 3
RATE_WINDOW = 60.0


def load_tokens() -> dict[str, str]:
    """token -> username, from ``WSREJECT_REF_TOKENS`` (``{username: token}``)."""
    raw = os.environ.get("WSREJECT_REF_TOKENS", "{}")
    mapping = json.loads(raw)
    if not isinstance(mapping, dict):
        raise TypeError("WSREJECT_REF_TOKENS must be a JSON object {username: token}")
    return {str(token): str(username) for username, token in mapping.items()}


TOKENS = load_tokens()


# --- dependencies -----------------------------------------------------------------------


def origin_allowed(origin: str) -> bool:
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host in ALLOWED_ORIGIN_HOSTS


async def check_origin(websocket: WebSocket) -> None:
    """A missing Origin (non-browser client) passes; a present one must be local."""
    origins = websocket.headers.getlist("origin")
    if not origins:
        return
    if len(origins) > 1 or not origin_allowed(origins[0]):
        raise HTTPException(status_code=403, detail="Origin not allowed")


# FastAPI's own scheme: a missing header, another scheme or "Bearer" alone raise
# 401 "Not authenticated" with WWW-Authenticate: Bearer (HTTPBearer takes an HTTPConnection,
# so it works on WebSockets). The query string is never looked at: ?token= is no credential.
bearer_scheme = HTTPBearer(description="Authorization: Bearer <token>")


async def current_user(
    websocket: WebSocket, credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer_scheme)]
) -> User:
    token = credentials.credentials
    # Malformed is no credential either: several Authorization headers, non-ASCII, spaces.
    if len(websocket.headers.getlist("authorization")) != 1 or not token.isascii() or " " in token:
        raise bearer_scheme.make_not_authenticated_error()
    user = USERS.get(TOKENS.get(token, ""))
    if user is None or not user.is_active:
        # RFC 6750 §3.1: a token was presented and refused.
        challenge = 'Bearer error="invalid_token", error_description="Invalid credentials"'
        raise HTTPException(status_code=401, detail="Invalid credentials", headers={"WWW-Authenticate": challenge})
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def staff_user(user: CurrentUser) -> User:
    if not user.is_staff:
        raise HTTPException(status_code=403, detail="Staff only")
    return user


async def room_member(room: str, user: CurrentUser) -> tuple[str, User]:
    # Permission before existence: bob learns nothing about which rooms exist.
    if not user.has_perm("chat.join_room"):
        raise HTTPException(status_code=403, detail="Not allowed to join this room")
    if room not in ROOMS:
        raise HTTPException(status_code=404, detail="Room not found")
    return room, user


class RateLimiter:
    """At most ``limit`` admitted connections per client host in a sliding window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.hits: dict[str, deque[float]] = {}

    async def __call__(self, websocket: WebSocket) -> None:
        host = websocket.client.host if websocket.client else "-"
        now = time.monotonic()
        hits = self.hits.setdefault(host, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry_after = max(1, math.ceil(hits[0] + self.window - now))
            raise HTTPException(
                status_code=429,
                detail="Too many connection attempts",
                headers={"Retry-After": str(retry_after)},
            )
        hits.append(now)


limit_connections = RateLimiter(RATE_LIMIT, RATE_WINDOW)


async def broken_check(websocket: WebSocket) -> None:
    raise RuntimeError("database exploded: password=hunter2")  # must never reach the client


# Origin first, for every route including the catch-all.
app = FastAPI(title="wsreject reference (rooms)", dependencies=[Depends(check_origin)])


# --- endpoints ----------------------------------------------------------------------------


async def echo_text(websocket: WebSocket) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is None:
                raise WebSocketException(code=1003, reason="Text frames only")
            await websocket.send_text(message["text"])
    except WebSocketDisconnect:
        return


async def hold_open(websocket: WebSocket) -> None:
    """Keep the connection until the client leaves."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        return


@app.websocket("/ws/echo/")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await echo_text(websocket)


@app.websocket("/ws/private/")
async def private(websocket: WebSocket, user: CurrentUser) -> None:
    await websocket.accept()
    await websocket.send_json({"user": user.username})
    await hold_open(websocket)


@app.websocket("/ws/rooms/{room}/")
async def room(websocket: WebSocket, member: Annotated[tuple[str, User], Depends(room_member)]) -> None:
    room_name, user = member
    await websocket.accept()
    await websocket.send_json({"room": room_name, "user": user.username})
    await hold_open(websocket)


@app.websocket("/ws/staff/")
async def staff(websocket: WebSocket, user: Annotated[User, Depends(staff_user)]) -> None:
    await websocket.accept()
    await websocket.send_json({"user": user.username})
    await hold_open(websocket)


@app.websocket("/ws/maintenance/")
async def maintenance(websocket: WebSocket) -> None:
    raise HTTPException(status_code=503, detail="Down for maintenance", headers={"Retry-After": "120"})


@app.websocket("/ws/limited/", dependencies=[Depends(limit_connections)])
async def limited(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"ok": True})
    await hold_open(websocket)


@app.websocket("/ws/broken/", dependencies=[Depends(broken_check)])
async def broken(websocket: WebSocket) -> None:  # pragma: no cover - the dependency always raises
    await websocket.accept()


@app.websocket("/ws/teapot/")
async def teapot(websocket: WebSocket) -> None:
    response = Response(
        content="I'm a teapot",
        status_code=418,
        media_type="text/plain",
        headers={"X-Teapot": "short-and-stout"},
    )
    await websocket.send_denial_response(response)


@app.websocket("/ws/subprotocol/")
async def subprotocol(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols") or []
    chosen = next((p for p in offered if p in SUPPORTED_SUBPROTOCOLS), None)
    if offered and chosen is None:
        raise HTTPException(status_code=400, detail="Unsupported subprotocol")
    await websocket.accept(subprotocol=chosen)
    await websocket.send_json({"subprotocol": chosen})
    await hold_open(websocket)


@app.websocket("/ws/deny/{status}/")
async def deny(websocket: WebSocket, status: int) -> None:
    params = websocket.query_params
    detail = params.get("detail")  # None -> the status phrase, "" stays ""
    pairs: list[tuple[str, str]] = []
    for spec in params.getlist("h"):
        name, sep, value = spec.partition(":")
        if not sep or not name:
            raise HTTPException(status_code=400, detail="h must be name:value")
        pairs.append((name, value))
    first: dict[str, str] = {}
    repeats: list[tuple[str, str]] = []
    for name, value in pairs:
        if name.lower() in (key.lower() for key in first):
            repeats.append((name, value))
        else:
            first[name] = value
    exc = HTTPException(status_code=status, detail=detail, headers=first or None)
    if not repeats:
        raise exc
    response = await http_exception_handler(websocket, exc)  # type: ignore[arg-type]
    for name, value in repeats:
        response.headers.append(name, value)
    await websocket.send_denial_response(response)


@app.websocket("/{path:path}")
async def not_found(websocket: WebSocket, path: str) -> None:
    # Starlette answers an unknown WebSocket path with a bare 403; the scenario wants
    # a 404 with a body (deliberate difference 14), so the reference says so itself.
    raise HTTPException(status_code=404, detail="Not Found")
