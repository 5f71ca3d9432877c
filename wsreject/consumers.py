"""``AuthorizedConsumer``: declare who may connect, as Django's ``PermissionRequiredMixin`` does.

Put it first among the bases of any Channels WebSocket consumer, sync or
async, plain or JSON::

    class RoomConsumer(AuthorizedConsumer, AsyncJsonWebsocketConsumer):
        permission_required = "chat.join_room"
        permission_denied_message = "Not allowed to join this room"

        def get_permission_object(self):
            try:
                return Room.objects.get(name=self.scope["url_route"]["kwargs"]["name"])
            except Room.DoesNotExist:
                raise DenyHandshake(404, "Room not found")

The checks run when ``websocket.connect`` arrives, before ``connect()``:
login, Django permissions, ``permission_classes``, then the object from
``get_permission_object()`` and the object-level checks. They are decided on
the event loop when everything they read is cached in this process (no thread
hop at all, not even Channels' per-message one), else in exactly one worker
thread; either way before Channels sets the consumer up, so a refusal never
touches the channel layer. ``connect()`` may raise
:class:`~wsreject.denial.DenyHandshake` itself. A denial, or any error before
accept, is sent by the consumer in its ``denial_mode`` and the consumer stops.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from .authentication import refused_without_credentials, unauthenticated
from .connections import close_revoked
from .denial import DenyHandshake
from .handshake import Handshake, current_handshake
from .offload import attempt_on_loop, decision, require_io
from .permissions import AllOf, AllowAny, BasePermission, HasPermissions, IsAuthenticated, as_permission, evaluate, perm_tuple
from .scope import escape
from .trace import active, describe, record
from .types import Message, Send

__all__ = ["AuthorizedConsumer"]

logger = logging.getLogger("wsreject")


class AuthorizedConsumer:
    """Mixin for WebSocket consumers that decides the handshake before ``connect()``."""

    #: Deny anonymous users with 401.
    login_required = False
    #: A permission name or an iterable of them ("app_label.codename"), checked
    #: with ``user.has_perms()`` through the auth backends, so groups count.
    permission_required: str | tuple[str, ...] | None = None
    #: Permissions checked against ``get_permission_object()`` (needs an
    #: object-permission backend such as django-guardian).
    object_permission_required: str | tuple[str, ...] | None = None
    #: The 403 detail for a failed ``permission_required``.
    permission_denied_message = "Forbidden"
    #: Extra permission classes or instances, composable with ``&``, ``|``, ``~``.
    permission_classes: tuple[Any, ...] | list[Any] = ()
    #: "http" or "close_code"; None follows the stack, then ``WSREJECT["DENIAL_MODE"]``.
    denial_mode: str | None = None

    # Set by Channels' AsyncConsumer; declared for the type checker.
    scope: dict[str, Any]
    base_send: Any
    _sync: bool
    _authorized = False
    _decided_in_thread = False
    _handshake: Handshake

    # --- the hooks, in the style of Django's AccessMixin ---------------------------------------

    def get_permission_required(self) -> tuple[str, ...]:
        return perm_tuple(self.permission_required)

    def get_object_permission_required(self) -> tuple[str, ...]:
        return perm_tuple(self.object_permission_required)

    def get_permission_denied_message(self) -> str:
        return self.permission_denied_message

    def get_permission_classes(self) -> list[BasePermission]:
        return [as_permission(p) for p in self.permission_classes]

    def get_permissions(self) -> BasePermission:
        """Everything this consumer requires, as one permission (checked in this order)."""
        checks: list[BasePermission] = []
        if self.login_required:
            checks.append(IsAuthenticated())
        if perms := self.get_permission_required():
            checks.append(HasPermissions(perms, detail=self.get_permission_denied_message()))
        if perms := self.get_object_permission_required():
            checks.append(HasPermissions(perms, detail=self.get_permission_denied_message(), object_level=True))
        checks.extend(self.get_permission_classes())
        return AllOf(*checks) if checks else AllowAny()

    def get_permission_object(self) -> Any:
        """The object for object-level checks, or None. Runs in a worker thread."""
        return None

    def handle_no_permission(self, denial: DenyHandshake) -> None:
        """Called with the failing check's denial; raise it, or another one."""
        raise denial

    async def on_access_revoked(self, denial: DenyHandshake) -> None:
        """Access changed under this open connection and a new handshake would now get ``denial``
        (see :mod:`wsreject.revocation`). The default closes it with ``4000 + status`` and the
        detail as reason. Override to say goodbye first (then ``close()``), or to keep it open.
        A coroutine runs on the event loop; a plain method in a worker thread."""
        handshake = current_handshake(self.scope)
        if handshake is not None:
            await close_revoked(handshake, self.scope, denial)

    async def _access_revoked(self, denial: DenyHandshake) -> None:
        hook: Any = self.on_access_revoked
        if inspect.iscoroutinefunction(hook):
            await hook(denial)
        else:
            await sync_to_async(hook)(denial)

    def authorize(self) -> None:
        """Run every check; raise the denial. Synchronous: it may query the database."""
        permission = self.get_permissions()
        if permission.requires_authentication and refused_without_credentials(self.scope):
            refusal = unauthenticated(self.scope)
            if active():
                record(describe(permission), refusal, "no credential")
            self.handle_no_permission(refusal)
        if (denial := evaluate(permission, self.scope, self)) is not None:
            self.handle_no_permission(denial)
        object_perms = self.get_object_permission_required()
        if type(self).get_permission_object is AuthorizedConsumer.get_permission_object and not object_perms:
            return
        require_io()  # get_permission_object() is the project's code: it may query
        try:
            obj = self.get_permission_object()
        except Exception as exc:
            record(f"{type(self).__name__}.get_permission_object()", exc)
            raise
        if obj is not None:
            denial = permission.check_object(self.scope, self, obj)
            if active():
                record(f"object checks on {describe(obj)}", denial)
        elif object_perms:
            # Fail closed: with no object, object-level permissions are required globally.
            denial = HasPermissions(object_perms, detail=self.get_permission_denied_message()).check(self.scope, self)
            if active():
                record(f"{object_perms!r} without an object (required globally)", denial)
        else:
            denial = None
            if active():
                record(f"{type(self).__name__}.get_permission_object()", None, "no object: no object checks")
        if denial is not None:
            self.handle_no_permission(denial)

    # --- how Channels drives it ----------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> Any:
        """Decide ``websocket.connect`` before Channels sets the consumer up: a refusal never
        creates a channel-layer channel, joins a group or leaves a channel-layer read pending.
        On the event loop when the checks need no I/O (no thread hop), else in one worker thread."""
        self.scope = scope
        handshake = current_handshake(scope)
        if handshake is None:  # no wsreject stack: this consumer's own handshake, for its denials
            handshake = Handshake(receive, send)
            receive, send = handshake.receive, handshake.send
        else:
            handshake.on_revoked = self._access_revoked  # revocation asks this consumer first
        handshake.fix_mode(self.denial_mode)  # a no-op when the route's leaf fixed it already
        self._handshake = handshake
        first = await receive()
        with decision():  # what the checks did on the loop is remembered if they run again in a thread
            if first["type"] == "websocket.connect":
                try:
                    self._authorized, _ = await attempt_on_loop(self.authorize)
                    if not self._authorized:
                        await database_sync_to_async(self.authorize)()
                        self._authorized = self._decided_in_thread = True
                except Exception as exc:
                    await self._deny(exc)
                    if isinstance(exc, DenyHandshake):
                        exc.__traceback__ = None  # its frames hold it: a cycle only the collector frees
                    return None
            replay = [first]

            async def receive_after_first() -> Message:
                return replay.pop() if replay else await receive()  # type: ignore[no-any-return]

            return await super().__call__(scope, receive_after_first, send)  # type: ignore[misc]

    async def dispatch(self, message: Message) -> None:
        """Channels' dispatch, except for a ``websocket.connect`` decided in a worker thread on an
        async consumer: that hop closed stale database connections already, so ``connect()``
        runs without Channels' second one. (Decided on the event loop, the connect keeps
        Channels' hop, which closes them.)"""
        if message.get("type") == "websocket.connect" and self._decided_in_thread and not self._sync:
            self._decided_in_thread = False
            await self.websocket_connect(message)
            return None
        return await super().dispatch(message)  # type: ignore[misc, no-any-return]

    def websocket_connect(self, message: Message) -> Any:
        # Channels calls this with the connect message. An async consumer must get an
        # awaitable back; a sync one (``_sync``) runs it in its worker thread.
        if not self._sync:
            return self._async_websocket_connect(message)
        try:
            if not self._authorized:
                self.authorize()
            return super().websocket_connect(message)  # type: ignore[misc]
        except StopConsumer:
            raise
        except Exception as exc:
            async_to_sync(self._deny)(exc)  # the same path as an async consumer's, on the event loop
            raise StopConsumer() from None

    async def _async_websocket_connect(self, message: Message) -> Any:
        try:
            if not self._authorized:
                await database_sync_to_async(self.authorize)()
            return await super().websocket_connect(message)  # type: ignore[misc]
        except StopConsumer:
            raise
        except Exception as exc:
            await self._deny(exc)
            raise StopConsumer() from None

    async def _deny(self, exc: BaseException) -> None:
        """Leave the groups and answer ``exc`` on the one denial path, the handshake's
        (:meth:`~wsreject.handshake.Handshake.fail`: its handler, its mode fixed when the
        handshake reached this consumer), as for a denial raised in middleware."""
        await self._discard_groups()
        if self._client_left(exc):
            return
        await self._handshake.fail(self.scope, exc)

    def _client_left(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the server saying the client is gone (a send raised, e.g.
        ``accept()`` after the client hung up during the checks): nothing to answer, nothing wrong."""
        if not self._handshake.client_gone or not isinstance(exc, OSError):
            return False
        logger.debug(
            "WebSocket %s: the client left before its handshake was answered (%r)", escape(self.scope.get("path", "")), exc
        )
        return True

    async def _discard_groups(self) -> None:
        layer = getattr(self, "channel_layer", None)
        if layer is not None:
            for group in getattr(self, "groups", None) or ():
                await layer.group_discard(group, self.channel_name)  # type: ignore[attr-defined]
