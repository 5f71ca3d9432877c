"""Permission classes for handshakes, composable with ``&``, ``|`` and ``~``.

Written in the style of DRF's ``permissions.py``: a check answers
``has_permission(scope, consumer)`` (and, for an object,
``has_object_permission(scope, consumer, obj)``) and, when it fails, says how
to deny with :meth:`BasePermission.denial`. ``consumer`` is the consumer
instance, or — for :class:`~wsreject.middleware.PermissionMiddleware` — the
application it guards.

Checks are synchronous and may query the database: wsreject runs a whole check
in one worker thread. Classes that never block say so with
``runs_on_event_loop = True``; the built-in ones do (they read process-local
caches, and ask for a thread themselves when those cannot answer: see
:mod:`wsreject.offload`), so a handshake whose answer is cached is decided
without leaving the event loop.

The default denial follows Django's ``AccessMixin``: an anonymous user gets
``401`` with a ``WWW-Authenticate`` challenge ("Not authenticated", or why a
presented credential was refused); an authenticated user gets the check's
``status_code`` (403) and ``detail``. A composite keeps the denial of the check
that failed: ``A & B`` the first failing one, ``A | B`` the left-most when all
fail.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .authentication import is_authenticated, refused_without_credentials, unauthenticated
from .cache.permsets import has_perms
from .denial import DenyHandshake, prebuilt_denial
from .offload import require_io, run_off_loop_if_needed
from .trace import active, describe, record
from .types import Scope

__all__ = [
    "AllOf",
    "AllowAny",
    "AnyOf",
    "BasePermission",
    "HasPermissions",
    "IsAuthenticated",
    "IsStaff",
    "IsSuperuser",
    "Not",
    "Peek",
    "as_permission",
    "authorize",
    "dry_run",
    "evaluate",
    "perm_tuple",
    "register_peek",
]

Peek = Callable[[Any, Scope, Any], "DenyHandshake | None"]

_dry_run: contextvars.ContextVar[bool] = contextvars.ContextVar("wsreject_dry_run", default=False)
_peeks: dict[type, Peek] = {}


@contextmanager
def dry_run() -> Iterator[None]:
    """Checks evaluated inside change nothing: a check with side effects (a throttle counts
    the attempt) is asked through its registered *peek* instead (:func:`register_peek`)."""
    token = _dry_run.set(True)
    try:
        yield
    finally:
        _dry_run.reset(token)


def register_peek(cls: type, peek: Peek) -> None:
    """In a dry run, answer ``cls`` (and subclasses) checks with ``peek(permission, scope, consumer)``:
    what the check would say, without its side effects."""
    _peeks[cls] = peek


def evaluate(permission: BasePermission, scope: Scope, consumer: Any) -> DenyHandshake | None:
    """``permission.check(scope, consumer)``, or its peek in a dry run (recorded when tracing)."""
    peek = _peek_for(permission) if _dry_run.get() and _peeks else None
    if active():
        return _traced(permission, scope, consumer, peek)
    return permission.check(scope, consumer) if peek is None else peek(permission, scope, consumer)


def _peek_for(permission: BasePermission) -> Peek | None:
    for cls in type(permission).__mro__:
        peek = _peeks.get(cls)
        if peek is not None:
            return peek
    return None


def _traced(permission: BasePermission, scope: Scope, consumer: Any, peek: Peek | None) -> DenyHandshake | None:
    try:
        denial = permission.check(scope, consumer) if peek is None else peek(permission, scope, consumer)
    except Exception as exc:
        if not isinstance(permission, AllOf):  # a conjunction: its operands are recorded
            record(describe(permission), exc, "raised")
        raise
    if not isinstance(permission, AllOf):
        record(describe(permission), denial, "peeked, not counted" if peek is not None else "")
    return denial


class _PermissionMeta(type):
    """Lets classes compose too: ``IsAuthenticated & IsStaff``."""

    def __and__(cls, other: Any) -> AllOf:
        return AllOf(cls, other)

    def __or__(cls, other: Any) -> AnyOf:  # type: ignore[override]  # type.__or__ builds unions; ours composes
        return AnyOf(cls, other)

    def __rand__(cls, other: Any) -> AllOf:
        return AllOf(other, cls)

    def __ror__(cls, other: Any) -> AnyOf:  # type: ignore[override]
        return AnyOf(other, cls)

    def __invert__(cls) -> Not:
        return Not(cls)


class BasePermission(metaclass=_PermissionMeta):
    """Allow everything; subclasses override the ``has_*`` methods."""

    status_code = 403
    detail = "Forbidden"
    #: True when the check can only pass for an authenticated user. wsreject then
    #: denies a handshake without any credential at once, without a thread hop.
    requires_authentication = False
    #: True when ``has_permission`` / ``has_object_permission`` never block (no
    #: database, no network), so they may run on the event loop.
    runs_on_event_loop = False

    def has_permission(self, scope: Scope, consumer: Any) -> bool:
        return True

    def has_object_permission(self, scope: Scope, consumer: Any, obj: Any) -> bool:
        return True

    def denial(self, scope: Scope) -> DenyHandshake:
        if not is_authenticated(scope):
            return unauthenticated(scope)
        return prebuilt_denial(self.status_code, self.detail)

    def check(self, scope: Scope, consumer: Any) -> DenyHandshake | None:
        """None when allowed, else the denial to raise."""
        if not self.runs_on_event_loop:
            require_io()
        return None if self.has_permission(scope, consumer) else self.denial(scope)

    def check_object(self, scope: Scope, consumer: Any, obj: Any) -> DenyHandshake | None:
        if not self.runs_on_event_loop:
            require_io()
        return None if self.has_object_permission(scope, consumer, obj) else self.denial(scope)

    def __and__(self, other: Any) -> AllOf:
        return AllOf(self, other)

    def __or__(self, other: Any) -> AnyOf:
        return AnyOf(self, other)

    def __rand__(self, other: Any) -> AllOf:
        return AllOf(other, self)

    def __ror__(self, other: Any) -> AnyOf:
        return AnyOf(other, self)

    def __invert__(self) -> Not:
        return Not(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def as_permission(value: Any) -> BasePermission:
    """An instance from a permission class or instance."""
    if isinstance(value, type) and issubclass(value, BasePermission):
        return value()
    if isinstance(value, BasePermission):
        return value
    raise TypeError(f"{value!r} is not a wsreject permission class or instance")


class AllOf(BasePermission):
    """Every operand must pass; the first failure's denial is raised."""

    runs_on_event_loop = True  # each operand asks for a thread itself

    def __init__(self, *operands: Any) -> None:
        self.operands = tuple(as_permission(op) for op in operands)

    @property
    def requires_authentication(self) -> bool:  # type: ignore[override]
        return any(op.requires_authentication for op in self.operands)

    def check(self, scope: Scope, consumer: Any) -> DenyHandshake | None:
        for op in self.operands:
            if (denial := evaluate(op, scope, consumer)) is not None:
                return denial
        return None

    def check_object(self, scope: Scope, consumer: Any, obj: Any) -> DenyHandshake | None:
        for op in self.operands:
            if (denial := op.check_object(scope, consumer, obj)) is not None:
                return denial
        return None

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.operands)) + ")"


class AnyOf(BasePermission):
    """One operand must pass; when none does, the left-most denial is raised."""

    runs_on_event_loop = True

    def __init__(self, *operands: Any) -> None:
        self.operands = tuple(as_permission(op) for op in operands)

    @property
    def requires_authentication(self) -> bool:  # type: ignore[override]
        return all(op.requires_authentication for op in self.operands)

    def check(self, scope: Scope, consumer: Any) -> DenyHandshake | None:
        first = None
        for op in self.operands:
            denial = evaluate(op, scope, consumer)
            if denial is None:
                return None
            first = first or denial
        return first

    def check_object(self, scope: Scope, consumer: Any, obj: Any) -> DenyHandshake | None:
        first = None
        for op in self.operands:
            denial = op.check_object(scope, consumer, obj)
            if denial is None:
                return None
            first = first or denial
        return first

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.operands)) + ")"


class Not(BasePermission):
    """Passes when its operand fails; denies with its own ``status_code`` and ``detail``."""

    runs_on_event_loop = True

    def __init__(self, operand: Any, *, status_code: int = 403, detail: str = "Forbidden") -> None:
        self.operand = as_permission(operand)
        self.status_code = status_code
        self.detail = detail

    def has_permission(self, scope: Scope, consumer: Any) -> bool:
        return evaluate(self.operand, scope, consumer) is not None

    def has_object_permission(self, scope: Scope, consumer: Any, obj: Any) -> bool:
        return self.operand.check_object(scope, consumer, obj) is not None

    def denial(self, scope: Scope) -> DenyHandshake:
        return prebuilt_denial(self.status_code, self.detail)

    def __repr__(self) -> str:
        return f"~{self.operand!r}"


class AllowAny(BasePermission):
    runs_on_event_loop = True


class IsAuthenticated(BasePermission):
    requires_authentication = True
    runs_on_event_loop = True  # loading the user asks for a thread when it must

    def has_permission(self, scope: Scope, consumer: Any) -> bool:
        return is_authenticated(scope)


class IsStaff(IsAuthenticated):
    detail = "Staff only"

    def has_permission(self, scope: Scope, consumer: Any) -> bool:
        return is_authenticated(scope) and bool(scope["user"].is_staff)


class IsSuperuser(IsAuthenticated):
    detail = "Superusers only"

    def has_permission(self, scope: Scope, consumer: Any) -> bool:
        return is_authenticated(scope) and bool(scope["user"].is_superuser)


def perm_tuple(perms: str | Iterable[str] | None) -> tuple[str, ...]:
    """Permission names as a tuple, each checked to be ``"app_label.codename"``."""
    if perms is None:
        return ()
    perms = (perms,) if isinstance(perms, str) else tuple(perms)
    for perm in perms:
        if not isinstance(perm, str) or "." not in perm:
            raise ValueError(f"permission {perm!r} must be 'app_label.codename'")
    return perms


class HasPermissions(BasePermission):
    """The user holds every Django permission named, through the auth backends (groups count).

    ``object_level=True`` asks the backends about the object instead, which
    needs an object-permission backend such as django-guardian's.
    """

    requires_authentication = True
    runs_on_event_loop = True  # the cached permission sets ask for a thread when they must

    def __init__(self, perms: str | Iterable[str], *, detail: str | None = None, object_level: bool = False) -> None:
        self.perms = perm_tuple(perms)
        self.object_level = object_level
        if detail is not None:
            self.detail = detail

    def has_permission(self, scope: Scope, consumer: Any) -> bool:
        if self.object_level:
            return True
        return is_authenticated(scope) and has_perms(scope["user"], self.perms)

    def has_object_permission(self, scope: Scope, consumer: Any, obj: Any) -> bool:
        if not self.object_level:
            return True
        require_io()
        return is_authenticated(scope) and bool(scope["user"].has_perms(self.perms, obj))

    def __repr__(self) -> str:
        return f"HasPermissions{self.perms!r}"


async def authorize(scope: Scope, permission: BasePermission, consumer: Any = None) -> None:
    """Raise the denial of ``permission`` for this handshake, if any.

    Decided on the event loop when it can be (no credential at all and a check
    that needs a login; or everything it reads is cached locally), else in one
    worker thread.
    """
    if permission.requires_authentication and refused_without_credentials(scope):
        refusal = unauthenticated(scope)
        if active():
            record(describe(permission), refusal, "no credential")
        raise refusal
    denial = await run_off_loop_if_needed(evaluate, permission, scope, consumer)
    if denial is not None:
        raise denial
