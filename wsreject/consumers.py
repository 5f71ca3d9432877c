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
``get_permission_object()`` and the object-level checks. They run in one
worker thread (the consumer's own for sync consumers), never on the event
loop, and a handshake without credentials that needs a login is refused
without leaving it. ``connect()`` may raise :class:`DenyHandshake` itself.
A denial or any error before accept is sent by the consumer itself, in its
``denial_mode``, and the consumer stops.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from .auth import loaded_user
from .denial import DenyHandshake
from .middleware import STACK_MODE_KEY, denial_for_exception
from .permissions import (
    AllOf,
    AllowAny,
    BasePermission,
    HasPermissions,
    IsAuthenticated,
    as_permission,
    is_authenticated,
    unauthenticated,
)
from .transport import denial_messages, record_denial, send_denial


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
    permission_classes: tuple = ()
    #: "http" or "close_code"; None follows the stack, then ``WSREJECT["DENIAL_MODE"]``.
    denial_mode: str | None = None

    def get_permission_required(self) -> tuple[str, ...]:
        perms = self.permission_required
        if perms is None:
            return ()
        return (perms,) if isinstance(perms, str) else tuple(perms)

    def get_object_permission_required(self) -> tuple[str, ...]:
        perms = self.object_permission_required
        if perms is None:
            return ()
        return (perms,) if isinstance(perms, str) else tuple(perms)

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

    def authorize(self) -> None:
        """Run every check; raise the denial. Synchronous: it may query the database."""
        permission = self.get_permissions()
        if (denial := permission.check(self.scope, self)) is not None:
            self.handle_no_permission(denial)
        obj = self.get_permission_object()
        if obj is not None:
            denial = permission.check_object(self.scope, self, obj)
        elif perms := self.get_object_permission_required():
            # Fail closed: with no object, object-level permissions are required globally.
            denial = HasPermissions(perms, detail=self.get_permission_denied_message()).check(self.scope, self)
        else:
            denial = None
        if denial is not None:
            self.handle_no_permission(denial)

    def _refused_without_credentials(self) -> DenyHandshake | None:
        """A login check decided on the event loop when no credential was presented."""
        if loaded_user(self.scope) is not None and not is_authenticated(self.scope):
            if self.get_permissions().requires_authentication:
                return unauthenticated(self.scope)
        return None

    def _mode(self) -> str | None:
        return self.denial_mode or self.scope.get(STACK_MODE_KEY)

    # Channels calls websocket_connect with the connect message. For an async
    # consumer it must return an awaitable; a sync one (``_sync``) runs it in a thread.
    def websocket_connect(self, message):
        if not self._sync:
            return self._async_websocket_connect(message)
        try:
            self.authorize()
            return super().websocket_connect(message)
        except StopConsumer:
            raise
        except Exception as exc:
            self._discard_groups_sync()
            # A sync consumer's base_send is already async_to_sync(send): send message by message.
            response = denial_for_exception(exc)
            transport, messages = denial_messages(self.scope, response, self._mode())
            for outgoing in messages:
                self.base_send(outgoing)
            record_denial(self.scope, response, transport)
            raise StopConsumer() from None

    async def _async_websocket_connect(self, message):
        try:
            if (denial := self._refused_without_credentials()) is not None:
                self.handle_no_permission(denial)
            await database_sync_to_async(self.authorize)()
            return await super().websocket_connect(message)
        except StopConsumer:
            raise
        except Exception as exc:
            await self._discard_groups()
            await send_denial(self.scope, self.base_send, denial_for_exception(exc), self._mode())
            raise StopConsumer() from None

    async def _discard_groups(self) -> None:
        layer = getattr(self, "channel_layer", None)
        if layer is not None:
            for group in getattr(self, "groups", None) or ():
                await layer.group_discard(group, self.channel_name)

    def _discard_groups_sync(self) -> None:
        if getattr(self, "channel_layer", None) is not None and getattr(self, "groups", None):
            async_to_sync(self._discard_groups)()
