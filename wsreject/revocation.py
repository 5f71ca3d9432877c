"""Revocation: open connections are decided again when what their decision depends on changes.

A handshake is decided once; access can change while the connection stays open.
Every change wsreject already tracks to retire its caches (see
:mod:`wsreject.cache.invalidation`) names what changed — a user (groups,
permissions, active flag, tokens), every permission set, the access rules, a
session ended — and is pushed to every process (:mod:`wsreject.cache.bus`).
Each process then re-runs :func:`wsreject.decision.decide` (no side effects), on
the scope the server gave, for exactly the open connections it affects (the
:mod:`wsreject.connections` registry): a connection still admitted is left
alone; one a new handshake would now refuse is handed to its consumer's
``on_access_revoked()`` (:class:`~wsreject.consumers.AuthorizedConsumer`; any
other consumer is closed directly) and closed with ``4000 + status`` and the
detail as reason: ``4401`` credential gone or expired, ``4403`` no longer
allowed, ``4503`` endpoint disabled (or a dependency down during the re-check:
fail closed). A throttle's ``429`` limits how often connections open, not how
long they stay: it never closes one.

A credential that expires (a SimpleJWT ``exp``, a wsreject token's ``expires``, a
session's expiry) arms a timer: at the expiry plus ``WSREJECT["EXPIRY_GRACE"]``
(default 0) the connection is decided again, and closed with ``4401``.

Without a push (a cache other than Redis, or the local-memory default) each
process re-checks its open connections every ``WSREJECT["MAX_STALENESS"]``
seconds, forgetting first the versions they were decided under, so a change
made in another process closes them within that bound.

Cost: nothing per message; per change, one decision per affected connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .authentication.base import NOT_AUTHENTICATED
from .cache import bus
from .cache.versions import PERMS_VERSION_KEY, RULES_VERSION_KEY, get_cache, is_process_local, local, user_version_key
from .conf import wsreject_settings
from .connections import Connection, close_revoked, registry
from .denial import DenyHandshake

if TYPE_CHECKING:
    from .decision import Decision
from .offload import run_off_loop_if_needed
from .scope import escape

__all__ = [
    "CATCH_UP_DELAY",
    "KEPT_STATUSES",
    "USER_PREFIX",
    "WORKERS",
    "Batch",
    "Rechecker",
    "affected",
    "arm_expiry",
    "builtin_expiry",
    "changed",
    "credential_of",
    "decide_again",
    "handshake_key",
    "install",
    "is_gone",
    "jwt_expiry",
    "missed",
    "opened_as",
    "owner_key",
    "recheck",
    "recognised",
    "registered",
    "revoke",
    "same_user",
    "shared_decision",
]

logger = logging.getLogger("wsreject")

USER_PREFIX = user_version_key("")
#: Statuses a re-check never closes for: a throttle limits how often connections open.
KEPT_STATUSES = frozenset({429})
#: Re-checks running at once per process (each may wait on the database or the cache).
WORKERS = 8


# --- what a change affects ---------------------------------------------------------------------


def affected(key: str) -> list[Connection]:
    """The open connections of this process whose decision depends on ``key``."""
    if key.startswith(USER_PREFIX):
        return registry.of_user(key[len(USER_PREFIX) :])
    if key == PERMS_VERSION_KEY:
        return registry.authenticated()
    if key == RULES_VERSION_KEY:
        return list(registry)
    return registry.of_credential(key)


def changed(key: str) -> None:
    """``key`` changed in some process (any thread): re-check what it affects."""
    _on_loops(lambda: recheck(affected(key)))


#: Seconds after the bus says pushes may have been missed before the catch-up re-check.
CATCH_UP_DELAY = 0.5


def missed() -> None:
    """Pushes may have been missed: the bus (re)subscribed, or went down. Once it is up again,
    re-check every connection of this process once; while it is down the periodic re-check
    (every ``MAX_STALENESS``) stands in, rather than a re-check of everything at each retry."""
    _on_loops(lambda: asyncio.get_running_loop().call_later(CATCH_UP_DELAY, _catch_up))


def _catch_up() -> None:
    running = bus.bus_for(get_cache())
    if running is not None and running.live:
        recheck(list(registry))


def _on_loops(callback: Any) -> None:
    for loop in list(registry.loops):
        if loop.is_closed():
            registry.loops.discard(loop)
            continue
        with contextlib.suppress(RuntimeError):  # a loop closing meanwhile
            loop.call_soon_threadsafe(callback, context=contextvars.Context())


# --- re-checking -------------------------------------------------------------------------------


class Rechecker:
    """The queue of connections to decide again, drained by a few tasks of one event loop.

    Connections queued by one change form a batch: those with the same handshake (path,
    headers, query, client address) share one decision, so a change affecting many connections
    of a few kinds costs a few decisions. A connection queued again by a later change moves to
    the later batch (a decision made before that change is not reused for it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: deque[Connection] = deque()
        self.batch_of: dict[Connection, Batch] = {}
        self.workers: set[asyncio.Task[None]] = set()

    def add(self, connections: list[Connection]) -> None:
        batch: Batch = {}
        for connection in connections:
            if not connection.open:
                continue
            self.batch_of[connection] = batch
            if not connection.pending:
                connection.pending = True
                self.queue.append(connection)
        while self.queue and len(self.workers) < WORKERS:
            task = self.loop.create_task(self._work(), context=contextvars.Context())
            self.workers.add(task)
            task.add_done_callback(self.workers.discard)

    async def _work(self) -> None:
        while self.queue:
            connection = self.queue.popleft()
            connection.pending = False
            batch = self.batch_of.pop(connection, {})
            try:
                await decide_again(connection, batch)
            except Exception:
                logger.exception("Re-checking %r failed", connection)


Batch = dict[tuple[Any, ...], "asyncio.Future[Decision]"]


def handshake_key(connection: Connection) -> tuple[Any, ...]:
    """What a decision can depend on in a handshake's scope (not the client's port, nor the
    handshake's own ``Sec-WebSocket-Key``)."""
    scope = connection.scope
    client = scope.get("client")
    return (
        id(connection.application),
        scope.get("path"),
        scope.get("root_path"),
        scope.get("query_string"),
        tuple(header for header in scope.get("headers") or () if header[0].lower() != b"sec-websocket-key"),
        tuple(scope.get("subprotocols") or ()),
        client[0] if client else None,
    )


_recheckers: dict[asyncio.AbstractEventLoop, Rechecker] = {}


def recheck(connections: list[Connection]) -> None:
    """Decide ``connections`` again (on their event loop, which must be the running one)."""
    loop = asyncio.get_running_loop()
    rechecker = _recheckers.get(loop)
    if rechecker is None:
        for closed in [other for other in _recheckers if other.is_closed()]:
            del _recheckers[closed]  # an event loop that ended (tests run many)
        rechecker = _recheckers[loop] = Rechecker(loop)
    rechecker.add([connection for connection in connections if connection.loop is loop])


def is_gone(connection: Connection) -> bool:
    return not connection.open


async def decide_again(connection: Connection, batch: Batch | None = None) -> None:
    """One re-check: the decision a new handshake with this connection's scope would get now."""
    if not connection.open:
        return
    decision = await shared_decision(connection, {} if batch is None else batch)
    if is_gone(connection):  # closed while it was decided
        return
    denial = decision.denial
    if denial is None and connection.user_pk is not None and not same_user(decision.user, connection.user_pk):
        denial = DenyHandshake(401, NOT_AUTHENTICATED)  # admitted, but no longer as the user it was opened by
    if denial is None or denial.status_code in KEPT_STATUSES:
        if connection.expires is not None and connection.expires <= time.time():
            await arm_expiry(connection)  # admitted past its expiry: extended (a session), read it again
        return
    await revoke(connection, denial)


async def shared_decision(connection: Connection, batch: Batch) -> Decision:
    from .decision import decide  # the top of the stack: imported when first needed

    key = handshake_key(connection)
    pending = batch.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    pending = batch[key] = asyncio.get_running_loop().create_future()
    try:
        user = await opened_as(connection)
        decision = await decide(connection.scope, application=connection.application, user=user)
    except Exception as exc:  # decide() answers errors itself: this is a bug, told to every waiter
        del batch[key]
        pending.set_exception(exc)
        pending.add_done_callback(lambda done: done.exception())  # retrieved even without waiters
        raise
    except BaseException:
        del batch[key]
        pending.cancel()
        raise
    pending.set_result(decision)
    return decision


async def opened_as(connection: Connection) -> Any:
    """For a connection opened with a single-use credential (a ticket, spent by its handshake):
    the user it was opened as, read again (an anonymous user when gone), to decide for; None for
    every other connection, which presents its credential again."""
    found = recognised(connection.scope)
    if found is None or not getattr(found[0], "single_use", False) or connection.user_pk is None:
        return None
    from django.contrib.auth.models import AnonymousUser

    from .cache.users import cached_user

    user = await run_off_loop_if_needed(cached_user, connection.user_pk)
    return AnonymousUser() if user is None else user


def same_user(user: Any, pk: str) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and str(user.pk) == pk


async def revoke(connection: Connection, denial: DenyHandshake) -> None:
    """Hand ``denial`` to the consumer's ``on_access_revoked()`` when it has one, else close."""
    handshake = connection.handshake
    if handshake.on_revoked is not None:
        try:
            await handshake.on_revoked(denial)
            return
        except Exception:
            logger.exception("on_access_revoked() failed for WebSocket %s; closing", escape(connection.scope.get("path", "")))
    await close_revoked(handshake, connection.scope, denial)


# --- credential lifetime -----------------------------------------------------------------------


def registered(connection: Connection) -> None:
    """A new connection: learn its credential (for the index and the expiry) off the handshake's path."""
    try:  # indexed at once: a logout right after the handshake must find the connection
        key = owner_key(connection.scope)
    except Exception:
        key = None  # arm_expiry tries again, and reports
    if key is not None:
        registry.index_credential(connection, key)
    connection.loop.create_task(arm_expiry(connection), context=contextvars.Context())  # not the handshake's
    _ensure_sweep(connection.loop)
    try:
        bus.bus_for(get_cache())  # this process hears the other processes' changes from now on
    except Exception as exc:
        logger.warning("WebSocket access push not started: %r", exc)


async def arm_expiry(connection: Connection) -> None:
    """Find the credential's owner key and expiry; re-check at the expiry plus the grace."""
    if not connection.open:
        return
    try:
        found = await run_off_loop_if_needed(credential_of, connection.scope)
    except Exception as exc:  # the re-check at the next change decides; nothing to close here
        logger.warning("WebSocket %s: credential expiry unknown: %r", escape(connection.scope.get("path", "")), exc)
        return
    if found is None or not connection.open:
        return
    key, expires = found
    if key is not None and connection.credential_key is None:
        registry.index_credential(connection, key)
    grace = float(wsreject_settings.EXPIRY_GRACE or 0)
    if expires is not None and connection.expires is not None and expires + grace <= time.time():
        expires = None  # admitted after its expiry, and it says so still: no timer to loop on
    connection.expires = expires
    if connection.timer is not None:
        connection.timer.cancel()
        connection.timer = None
    if expires is None:
        return
    delay = max(0.0, expires + grace - time.time())
    connection.timer = connection.loop.call_later(delay, recheck, [connection], context=contextvars.Context())


def credential_of(scope: dict[str, Any]) -> tuple[str | None, float | None] | None:
    """``(owner cache key, expiry timestamp)`` of the credential the handshake presented, as the
    first configured authenticator that recognises one reads it; None when there is none.

    Built in: sessions (the session's expiry), wsreject tokens (``expires``), SimpleJWT
    (``exp``). Another authenticator may define ``credential_expiry(scope, credential)``
    returning the same pair."""
    found = recognised(scope)
    if found is None:
        return None
    authenticator, credential, probe = found
    hook = getattr(authenticator, "credential_expiry", None)
    if hook is not None:
        result: tuple[str | None, float | None] | None = hook(probe, credential)
        return result
    return builtin_expiry(authenticator, probe, credential)


def recognised(scope: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]] | None:
    """The first configured authenticator recognising a credential in ``scope``, the credential
    and the scope as authenticators read it; no I/O (their ``get_credential`` contract)."""
    from .authentication.base import AUTHORIZATION_KEY, parse_authorization
    from .authentication.credentials import candidates

    probe = dict(scope)
    probe[AUTHORIZATION_KEY] = parse_authorization(probe)
    found = candidates(probe, wsreject_settings.authenticators())
    return (found[0][0], found[0][1], probe) if found else None


def owner_key(scope: dict[str, Any]) -> str | None:
    """The cache key of the owner of the session or wsreject token ``scope`` presents (what a
    logout or a deleted token publishes), computed without I/O."""
    from .authentication.session import SessionAuthenticator
    from .authentication.tokens import AccessTokenAuthenticator, digest
    from .cache.users import session_owner_key

    found = recognised(scope)
    if found is None:
        return None
    authenticator, credential, _ = found
    if isinstance(authenticator, SessionAuthenticator):
        return session_owner_key(credential)
    if isinstance(authenticator, AccessTokenAuthenticator):
        return f"wsreject:token:{digest(credential)}"
    return None


def builtin_expiry(authenticator: Any, scope: dict[str, Any], credential: Any) -> tuple[str | None, float | None] | None:
    from .authentication.session import SessionAuthenticator
    from .authentication.tokens import AccessTokenAuthenticator, digest, token_owner
    from .cache.users import cached_owner, session_owner_key

    if isinstance(authenticator, SessionAuthenticator):
        key = session_owner_key(credential)
        owner = cached_owner(key, lambda: authenticator.owner(scope))
        return key, (owner[1] if owner is not None else None)
    if isinstance(authenticator, AccessTokenAuthenticator):
        token_digest = digest(credential)
        found = token_owner(token_digest)
        return f"wsreject:token:{token_digest}", (found[1] if found is not None else None)
    if type(authenticator).__name__ == "SimpleJWTAuthenticator":
        return None, jwt_expiry(credential)
    return None


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT the handshake's decision verified (read, not verified again)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    except (IndexError, ValueError, AttributeError):
        return None


# --- without a push: a periodic re-check -------------------------------------------------------

_sweeps: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def _ensure_sweep(loop: asyncio.AbstractEventLoop) -> None:
    task = _sweeps.get(loop)
    if task is None or task.done():
        for closed in [other for other in _sweeps if other.is_closed()]:
            del _sweeps[closed]
        _sweeps[loop] = loop.create_task(_sweep(loop), context=contextvars.Context())


async def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    """Every ``MAX_STALENESS`` seconds while this loop has connections: when changes are not
    pushed, forget the versions they were decided under and decide them again."""
    while True:
        period = wsreject_settings.MAX_STALENESS
        await asyncio.sleep(float(period) if period else 5.0)
        connections = [connection for connection in registry if connection.loop is loop]
        if not connections:
            _sweeps.pop(loop, None)
            return
        cache = get_cache()
        running = bus.bus_for(cache)
        if running is not None and running.live:
            continue
        if is_process_local(cache):
            keys = {PERMS_VERSION_KEY, RULES_VERSION_KEY}
            keys.update(user_version_key(c.user_pk) for c in connections if c.user_pk is not None)
            for key in keys:
                local.forget_version(key)
            with contextlib.suppress(Exception):
                cache.delete_many(list(keys))
        recheck(connections)


def install() -> None:
    """Connect revocation to the registry and to the push; called by ``WSRejectConfig.ready()``."""
    registry.on_register = registered
    bus.add_listener(changed, missed)
