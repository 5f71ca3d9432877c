"""The open connections wsreject admitted, in this process: what revocation re-checks and closes.

The outermost :class:`~wsreject.middleware.DenialMiddleware` registers a connection
when the application accepts a handshake that reached a routed endpoint, and
forgets it when it closes (or the application returns). A :class:`Connection`
keeps what is needed to decide it again (the scope the server gave, the
application) and who it belongs to: the user's primary key and the cache key of
its credential (a session, a token), the indexes revocation looks connections up
by. Nothing is done per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from .denial import DenyHandshake
from .handshake import Handshake
from .scope import escape
from .signals import connection_revoked
from .transport import CLOSE_CODE_BASE, truncate_utf8
from .types import Scope

__all__ = ["Connection", "Registry", "close_revoked", "registry", "unwatch", "watch"]

logger = logging.getLogger("wsreject")


class Connection:
    """One accepted connection: enough to decide it again, and to close it."""

    __slots__ = ("application", "credential_key", "expires", "handshake", "loop", "pending", "scope", "timer", "user_pk")

    def __init__(self, handshake: Handshake, scope: Scope, application: Any) -> None:
        self.handshake = handshake
        self.scope = scope  # as the server gave it, before any wsreject layer
        self.application = application  # the outermost DenialMiddleware: decide() runs it again
        self.loop = asyncio.get_running_loop()
        user = handshake.user
        self.user_pk: str | None = str(user.pk) if getattr(user, "is_authenticated", False) else None
        self.credential_key: str | None = None  # the cache key of the credential's owner, once known
        self.expires: float | None = None  # when the credential expires (a timestamp), once known
        self.timer: asyncio.TimerHandle | None = None
        self.pending = False  # a re-check is queued

    @property
    def open(self) -> bool:
        return self.handshake.accepted and not self.handshake.closed

    def __repr__(self) -> str:
        return f"<Connection {self.scope.get('path')!r} user={self.user_pk}>"


class Registry:
    """The connections of this process, by user and by credential."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.by_user: dict[str, set[Connection]] = {}
        self.by_credential: dict[str, set[Connection]] = {}
        #: Called with each new connection (revocation arms its expiry there).
        self.on_register: Callable[[Connection], None] | None = None
        self.loops: set[asyncio.AbstractEventLoop] = set()

    def __len__(self) -> int:
        return len(self.connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self.connections))

    def register(self, handshake: Handshake, scope: Scope, application: Any) -> Connection:
        connection = Connection(handshake, scope, application)
        self.connections.add(connection)
        self.loops.add(connection.loop)
        if connection.user_pk is not None:
            self.by_user.setdefault(connection.user_pk, set()).add(connection)
        if self.on_register is not None:
            self.on_register(connection)
        return connection

    def index_credential(self, connection: Connection, key: str) -> None:
        if connection in self.connections:
            connection.credential_key = key
            self.by_credential.setdefault(key, set()).add(connection)

    def forget(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        for index, key in ((self.by_user, connection.user_pk), (self.by_credential, connection.credential_key)):
            if key is not None and (bucket := index.get(key)) is not None:
                bucket.discard(connection)
                if not bucket:
                    del index[key]

    def of_user(self, pk: str) -> list[Connection]:
        return list(self.by_user.get(pk, ()))

    def of_credential(self, key: str) -> list[Connection]:
        return list(self.by_credential.get(key, ()))

    def authenticated(self) -> list[Connection]:
        return [connection for connection in self.connections if connection.user_pk is not None]


#: This process's registry.
registry = Registry()


def watch(handshake: Handshake, scope: Scope, application: Any) -> None:
    """Register the connection when ``handshake`` is accepted at a routed endpoint, forget it when
    it closes. Called by the outermost ``DenialMiddleware`` on every handshake: it only leaves one
    hook, and nothing is built for a handshake that is denied."""
    handshake.on_accepted = partial(_accepted, handshake, scope, application)


def _accepted(handshake: Handshake, scope: Scope, application: Any) -> None:
    handshake.on_accepted = None  # once
    if handshake.route is not None:
        handshake.on_closed = partial(registry.forget, registry.register(handshake, scope, application))


def unwatch(handshake: Handshake) -> None:
    """The application returned: the connection is gone whatever it said. Every hook goes (each
    refers back to the handshake or to its consumer: a cycle only the garbage collector frees)."""
    closed = handshake.on_closed
    handshake.on_accepted = handshake.on_closed = handshake.on_revoked = None
    if closed is not None:
        closed()


async def close_revoked(handshake: Handshake, scope: Scope, denial: DenyHandshake) -> bool:
    """Close the open connection of ``handshake`` with ``4000 + status`` and the detail as reason,
    log one line and send :data:`~wsreject.signals.connection_revoked`; False if it was closed already."""
    response = denial.response()
    code, reason = CLOSE_CODE_BASE + response.status_code, truncate_utf8(response.detail)
    if not await handshake.close_revoked(code, reason):
        return False
    user = handshake.user if getattr(handshake.user, "is_authenticated", False) else None
    logger.info(
        "WebSocket %s closed with %d: access revoked (%s), user %s",
        escape(scope.get("path", "")),
        code,
        escape(reason),
        escape(user.pk) if user is not None else "-",
    )
    for receiver, result in connection_revoked.send_robust(
        sender=None, scope=scope, user=user, denial=denial, code=code, reason=reason
    ):
        if isinstance(result, Exception):
            logger.error("connection_revoked receiver %r failed", receiver, exc_info=result)
    return True
