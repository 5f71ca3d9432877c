"""Permission classes for handshakes, composable with ``&``, ``|`` and ``~``.

Written in the style of DRF's ``permissions.py``: a check answers
``has_permission(scope, consumer)`` (and, for an object,
``has_object_permission(scope, consumer, obj)``) and, when it fails, says how
to deny with :meth:`BasePermission.denial`. Checks are synchronous and may
query the database; wsreject runs them off the event loop, all in one hop.

The default denial follows Django's ``AccessMixin``: an anonymous user gets
``401`` with ``WWW-Authenticate: Bearer`` ("Not authenticated", or
"Invalid credentials" when a presented token was refused); an authenticated
user gets ``403`` with the check's ``detail``. A composite keeps the denial of
the check that failed: ``A & B`` the first failing one, ``A | B`` the left-most
when all fail.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from django.core.cache import caches

from .auth import auth_state
from .denial import DenyHandshake

NOT_AUTHENTICATED = "Not authenticated"
INVALID_CREDENTIALS = "Invalid credentials"


def unauthenticated(scope: dict[str, Any]) -> DenyHandshake:
    """The 401 for a user who is not logged in."""
    detail = INVALID_CREDENTIALS if auth_state(scope).invalid else NOT_AUTHENTICATED
    return DenyHandshake(401, detail, headers={"WWW-Authenticate": "Bearer"})


def is_authenticated(scope: dict[str, Any]) -> bool:
    user = scope.get("user")
    return bool(user is not None and user.is_authenticated)


class _PermissionMeta(type):
    """Lets classes compose too: ``IsAuthenticated & IsStaff``."""

    def __and__(cls, other):
        return cls() & other

    def __or__(cls, other):
        return cls() | other

    def __rand__(cls, other):
        return other & cls()

    def __ror__(cls, other):
        return other | cls()

    def __invert__(cls):
        return ~cls()


class BasePermission(metaclass=_PermissionMeta):
    """Allow everything; subclasses override the ``has_*`` methods."""

    status_code = 403
    detail = "Forbidden"
    #: True when the check can only pass for an authenticated user. wsreject then
    #: denies a handshake without credentials at once, without a thread hop.
    requires_authentication = False

    def has_permission(self, scope: dict[str, Any], consumer: Any) -> bool:
        return True

    def has_object_permission(self, scope: dict[str, Any], consumer: Any, obj: Any) -> bool:
        return True

    def denial(self, scope: dict[str, Any]) -> DenyHandshake:
        if not is_authenticated(scope):
            return unauthenticated(scope)
        return DenyHandshake(self.status_code, self.detail)

    def check(self, scope, consumer) -> DenyHandshake | None:
        """None when allowed, else the denial to raise."""
        return None if self.has_permission(scope, consumer) else self.denial(scope)

    def check_object(self, scope, consumer, obj) -> DenyHandshake | None:
        return None if self.has_object_permission(scope, consumer, obj) else self.denial(scope)

    def __and__(self, other) -> "AllOf":
        return AllOf(self, other)

    def __or__(self, other) -> "AnyOf":
        return AnyOf(self, other)

    def __rand__(self, other) -> "AllOf":
        return AllOf(other, self)

    def __ror__(self, other) -> "AnyOf":
        return AnyOf(other, self)

    def __invert__(self) -> "Not":
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

    def __init__(self, *operands) -> None:
        self.operands = tuple(as_permission(op) for op in operands)

    @property
    def requires_authentication(self) -> bool:
        return any(op.requires_authentication for op in self.operands)

    def check(self, scope, consumer):
        for op in self.operands:
            if (denial := op.check(scope, consumer)) is not None:
                return denial
        return None

    def check_object(self, scope, consumer, obj):
        for op in self.operands:
            if (denial := op.check_object(scope, consumer, obj)) is not None:
                return denial
        return None

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.operands)) + ")"


class AnyOf(BasePermission):
    """One operand must pass; when none does, the left-most denial is raised."""

    def __init__(self, *operands) -> None:
        self.operands = tuple(as_permission(op) for op in operands)

    @property
    def requires_authentication(self) -> bool:
        return all(op.requires_authentication for op in self.operands)

    def check(self, scope, consumer):
        denials = []
        for op in self.operands:
            denial = op.check(scope, consumer)
            if denial is None:
                return None
            denials.append(denial)
        return denials[0]

    def check_object(self, scope, consumer, obj):
        denials = []
        for op in self.operands:
            denial = op.check_object(scope, consumer, obj)
            if denial is None:
                return None
            denials.append(denial)
        return denials[0]

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.operands)) + ")"


class Not(BasePermission):
    """Passes when its operand fails; denies with its own ``status_code`` and ``detail``."""

    def __init__(self, operand, *, status_code: int = 403, detail: str = "Forbidden") -> None:
        self.operand = as_permission(operand)
        self.status_code = status_code
        self.detail = detail

    def has_permission(self, scope, consumer) -> bool:
        return self.operand.check(scope, consumer) is not None

    def has_object_permission(self, scope, consumer, obj) -> bool:
        return self.operand.check_object(scope, consumer, obj) is not None

    def denial(self, scope):
        return DenyHandshake(self.status_code, self.detail)

    def __repr__(self) -> str:
        return f"~{self.operand!r}"


class AllowAny(BasePermission):
    pass


class IsAuthenticated(BasePermission):
    requires_authentication = True

    def has_permission(self, scope, consumer) -> bool:
        return is_authenticated(scope)


class IsStaff(IsAuthenticated):
    detail = "Staff only"

    def has_permission(self, scope, consumer) -> bool:
        return is_authenticated(scope) and scope["user"].is_staff


class IsSuperuser(IsAuthenticated):
    detail = "Superusers only"

    def has_permission(self, scope, consumer) -> bool:
        return is_authenticated(scope) and scope["user"].is_superuser


def _perm_tuple(perms: str | Iterable[str]) -> tuple[str, ...]:
    perms = (perms,) if isinstance(perms, str) else tuple(perms)
    for perm in perms:
        if not isinstance(perm, str) or "." not in perm:
            raise ValueError(f"permission {perm!r} must be 'app_label.codename'")
    return perms


class HasPermissions(BasePermission):
    """The user holds every Django permission named, through the auth backends (groups count).

    ``has_object_permission`` asks the backends about the object too, which
    needs an object-permission backend such as django-guardian's.
    """

    def __init__(self, perms: str | Iterable[str], *, detail: str | None = None, object_level: bool = False) -> None:
        self.perms = _perm_tuple(perms)
        self.object_level = object_level
        if detail is not None:
            self.detail = detail

    def has_permission(self, scope, consumer) -> bool:
        if self.object_level:
            return True
        user = scope.get("user")
        if user is None:
            return False
        from .perm_cache import has_perms  # late: it imports Django's auth models

        return has_perms(user, self.perms)  # user.has_perms(), with the set cached

    def has_object_permission(self, scope, consumer, obj) -> bool:
        if not self.object_level:
            return True
        user = scope.get("user")
        return bool(user is not None and user.has_perms(self.perms, obj))

    def __repr__(self) -> str:
        return f"HasPermissions{self.perms!r}"


class Throttle(BasePermission):
    """At most ``rate`` handshakes per client address per endpoint: ``"3/60s"``, ``"10/min"``.

    A sliding window kept in Django's cache (``cache`` alias), so processes
    sharing Redis share the budget. Under concurrent handshakes from one client
    the count can be off by the number in flight. Denies ``429`` with
    ``Retry-After`` in whole seconds.
    """

    status_code = 429
    detail = "Too many connection attempts"
    _UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}

    def __init__(self, rate: str, *, cache: str = "default", key_prefix: str = "wsreject:throttle") -> None:
        self.limit, self.period = self.parse_rate(rate)
        self.cache_alias = cache
        self.key_prefix = key_prefix

    @classmethod
    def parse_rate(cls, rate: str) -> tuple[int, float]:
        try:
            count, per = rate.split("/")
            if not per.strip():
                raise ValueError(rate)
            number = "".join(ch for ch in per if ch.isdigit() or ch == ".")
            unit = per[len(number):].strip() or "s"
            limit, period = int(count), float(number or 1) * cls._UNITS[unit]
        except (ValueError, KeyError):
            raise ValueError(f"invalid rate {rate!r}; expected e.g. '3/60s' or '10/min'") from None
        if limit < 1 or period <= 0:
            raise ValueError(f"invalid rate {rate!r}; expected a positive count and period")
        return limit, period

    def cache_key(self, scope) -> str:
        client = (scope.get("client") or ("unknown",))[0]
        route = scope.get("route") or scope.get("path", "")
        return f"{self.key_prefix}:{client}:{route}"

    def check(self, scope, consumer):
        cache = caches[self.cache_alias]
        key = self.cache_key(scope)
        now = time.time()
        recent = [t for t in cache.get(key, ()) if t > now - self.period]
        if len(recent) >= self.limit:
            retry_after = max(1, math.ceil(recent[0] + self.period - now))
            return DenyHandshake(self.status_code, self.detail, headers={"Retry-After": str(retry_after)})
        recent.append(now)
        cache.set(key, recent, timeout=math.ceil(self.period))
        return None

    def __repr__(self) -> str:
        return f"Throttle({self.limit}/{self.period:g}s)"
