"""Access rules edited in the admin, enforced before routing by :class:`AccessRuleMiddleware`.

**Matching.** ``AccessRule.endpoint`` is either a *path pattern*, starting with
``/``, in the syntax of ``path()`` (``/ws/rooms/<slug:name>/``) and matched
against the request path (after ``root_path``) — a trailing ``*`` matches every
path below (``/ws/rooms/*``, ``/*``) — or a *route name*: the ``name=`` of a
``path()`` in the WebSocket routing.

**Precedence.** Rules only take access away: the consumer's own checks still
run, and every matching rule applies. They are checked most specific first
(route names and exact paths, then prefixes, longest first), and the first
refusal is the answer:

1. a disabled rule: ``503`` with ``Retry-After`` and its message, for everyone;
2. a rule with groups or permissions, and no signed-in user: ``401`` with
   ``WWW-Authenticate: Bearer`` ("Not authenticated" / "Invalid credentials");
3. a user outside the rule's groups (when it names any) or without all of its
   permissions: the rule's status and message. Superusers pass 2 and 3,
   inactive users never do.

**Cost.** The rule table is small: the whole set is cached under one key,
``wsreject:rules:1``, stamped with the version ``wsreject:v:rules`` (see
:mod:`wsreject.perm_cache`), and each process keeps the compiled rules of the
version it last saw. A handshake reads that one version from the cache: on the
event loop when the cache is process-local, else in a worker thread, so a slow
cache server cannot stall the loop. No database query while the cache is warm;
a user's groups and permissions come from the cached per-user sets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.urls.converters import get_converters
from django.urls.resolvers import RoutePattern

from .auth import loaded_user
from .conf import wsreject_settings
from .denial import DenyHandshake
from .middleware import STACK_MODE_KEY, DenialMiddleware
from .perm_cache import RULES_VERSION_KEY, cache_failed, current_version, get_cache, group_ids, has_perms
from .permissions import is_authenticated, unauthenticated
from .transport import send_denial

logger = logging.getLogger("wsreject")

RULES_KEY = "wsreject:rules:1"  # the number changes with the fields of Rule
_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")
_ROUTE_NAME = re.compile(r"^[\w.:-]+$")


# --- endpoint patterns -------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointPattern:
    """A parsed ``AccessRule.endpoint``: a route name, or a path pattern (maybe a prefix)."""

    text: str
    route_name: str | None = None
    prefix: bool = False
    pattern: RoutePattern | None = field(default=None, compare=False)

    def matches(self, path: str, route_name: str | None) -> bool:
        """Whether a handshake for ``path`` (routed to ``route_name``) is covered."""
        if self.route_name is not None:
            return self.route_name == route_name
        return self.pattern.match(path.lstrip("/")) is not None

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: names and exact paths first, then prefixes, longest first."""
        return (1 if self.prefix else 0, -len(self.text))


def parse_endpoint(text: str) -> EndpointPattern:
    """Parse an ``AccessRule.endpoint``; ``ValueError`` with a message for the admin."""
    if not text:
        raise ValueError("Enter a path pattern such as “/ws/rooms/*” or a route name.")
    if not text.startswith("/"):
        if not _ROUTE_NAME.match(text):
            raise ValueError(
                f"“{text}” is neither a path pattern (those start with “/”, e.g. “/ws/rooms/*”) "
                "nor a route name (letters, digits, “_”, “-”, “.” and “:”)."
            )
        return EndpointPattern(text, route_name=text)
    prefix = text.endswith("*")
    route = text[:-1] if prefix else text
    if "*" in route:
        raise ValueError("“*” may only end a path pattern, as in “/ws/rooms/*”.")
    if any(ch.isspace() or ch in "?#" for ch in route):
        raise ValueError("A path pattern cannot contain spaces, “?” or “#”; query strings are not matched.")
    converters = get_converters()
    for match in _PARAMETER.finditer(route):
        converter, parameter = match.group("converter") or "str", match.group("parameter")
        if converter not in converters:
            known = ", ".join(sorted(converters))
            raise ValueError(f"Unknown converter “{converter}” in “{match[0]}”; use one of: {known}.")
        if not parameter.isidentifier():
            raise ValueError(f"“{parameter}” in “{match[0]}” is not a valid parameter name.")
    literal = _PARAMETER.sub("", route)
    if "<" in literal or ">" in literal:
        raise ValueError("Unmatched “<” or “>”: parameters look like <slug:name>.")
    return EndpointPattern(text, prefix=prefix, pattern=RoutePattern(route.lstrip("/"), is_endpoint=not prefix))


# --- endpoints of the routing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A WebSocket route as Channels' ``URLRouter`` resolves it."""

    route: str  # "/ws/rooms/<slug:name>/"
    name: str | None
    application: Any  # what the route calls (as_asgi() app or middleware)
    consumer_class: type | None
    patterns: tuple  # Django patterns from the outermost router inwards
    denial_mode: str | None  # of an enclosing DenialMiddleware or the consumer

    @property
    def consumer_name(self) -> str:
        return self.consumer_class.__name__ if self.consumer_class else ""

    def matches(self, path: str) -> bool:
        """Whether the routing sends ``path`` (as a ``URLRouter`` sees it) here."""
        for pattern in self.patterns:
            match = pattern.match(path.lstrip("/"))
            if not match:
                return False
            path = match[0]
        return True


def _unwrap(app: Any) -> tuple[Any, str | None]:
    """Follow ``.inner`` down to what has routes or a consumer class; the innermost stack mode."""
    mode = None
    for _ in range(50):
        if isinstance(app, DenialMiddleware) and app.denial_mode:
            mode = app.denial_mode
        if hasattr(app, "routes") or hasattr(app, "consumer_class") or not hasattr(app, "inner"):
            break
        app = app.inner
    return app, mode


def iter_endpoints(
    app: Any, route: str = "/", patterns: tuple = (), mode: str | None = None, depth: int = 0
) -> Iterator[Endpoint]:
    """Every WebSocket endpoint reachable from ``app``, in routing order."""
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        if "websocket" in mapping:
            yield from iter_endpoints(mapping["websocket"], route, patterns, mode, depth + 1)
        return
    app, inner_mode = _unwrap(app)
    mode = inner_mode or mode
    routes = getattr(app, "routes", None)
    if not isinstance(routes, (list, tuple)) or depth > 20:
        return
    for entry in routes:
        pattern, callback = getattr(entry, "pattern", None), getattr(entry, "callback", None)
        if pattern is None or callback is None:
            continue
        text = route + str(pattern).removeprefix("^").removesuffix("$").removesuffix(r"\Z")
        if getattr(callback, "_path_routing", False):
            yield from iter_endpoints(callback, text, patterns + (pattern,), mode, depth + 1)
            continue
        leaf, leaf_mode = _unwrap(callback)
        consumer_class = getattr(leaf, "consumer_class", None)
        consumer_mode = getattr(consumer_class, "denial_mode", None)
        yield Endpoint(
            route=text,
            name=getattr(entry, "name", None),
            application=callback,
            consumer_class=consumer_class,
            patterns=patterns + (pattern,),
            denial_mode=consumer_mode if isinstance(consumer_mode, str) else (leaf_mode or mode),
        )


def resolve_endpoint(endpoints, path: str) -> Endpoint | None:
    return next((endpoint for endpoint in endpoints if endpoint.matches(path)), None)


def project_endpoints() -> tuple[Endpoint, ...]:
    """The endpoints of ``settings.ASGI_APPLICATION`` (for the admin and ``migrate``)."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "ASGI_APPLICATION", None)
    return tuple(iter_endpoints(import_string(path))) if path else ()


# --- the rule set --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One ``AccessRule`` as plain data (cached, shared between processes)."""

    pk: int
    endpoint: str
    enabled: bool
    retry_after: int
    disabled_detail: str
    deny_status: int
    deny_detail: str
    group_ids: frozenset[int] = frozenset()
    perms: frozenset[str] = frozenset()

    @property
    def restricts_users(self) -> bool:
        return bool(self.group_ids or self.perms)

    def disabled_denial(self) -> DenyHandshake:
        return DenyHandshake(503, self.disabled_detail, headers={"Retry-After": str(self.retry_after)})

    def admits(self, user) -> bool:
        """Whether a signed-in ``user`` passes this rule's groups and permissions."""
        if not user.is_active:
            return False
        if user.is_superuser:
            return True
        if self.group_ids and not self.group_ids & group_ids(user):
            return False
        return not self.perms or has_perms(user, self.perms)


@dataclass(frozen=True)
class RuleSet:
    """The compiled rules of one version, most specific first."""

    version: str
    rules: tuple[tuple[EndpointPattern, Rule], ...] = ()

    @property
    def uses_route_names(self) -> bool:
        return any(pattern.route_name is not None for pattern, _ in self.rules)

    def matching(self, path: str, route_name: str | None) -> list[Rule]:
        return [rule for pattern, rule in self.rules if pattern.matches(path, route_name)]


def load_rules() -> tuple[Rule, ...]:
    """Every rule from the database, in one query."""
    from .models import AccessRule

    fields = ("pk", "endpoint", "enabled", "retry_after", "disabled_detail", "deny_status", "deny_detail")
    rows = AccessRule.objects.order_by("pk").values_list(
        *fields, "groups__pk", "permissions__content_type__app_label", "permissions__codename"
    )
    rules: dict[int, tuple[tuple, set, set]] = {}
    for row in rows:
        base, groups, perms = rules.setdefault(row[0], (row[: len(fields)], set(), set()))
        group_pk, app_label, codename = row[len(fields):]
        if group_pk is not None:
            groups.add(group_pk)
        if codename is not None:
            perms.add(f"{app_label}.{codename}")
    return tuple(Rule(*base, frozenset(groups), frozenset(perms)) for base, groups, perms in rules.values())


def compile_rules(version: str, rules: tuple[Rule, ...]) -> RuleSet:
    compiled = []
    for rule in rules:
        try:
            compiled.append((parse_endpoint(rule.endpoint), rule))
        except ValueError as exc:  # saved without validation (e.g. a raw update)
            logger.error("Access rule %s ignored: %s", rule.pk, exc)
    compiled.sort(key=lambda item: (*item[0].specificity, item[1].pk))
    return RuleSet(version, tuple(compiled))


_compiled = RuleSet("")  # this process's rules, for the version it last saw


def current_rules() -> RuleSet:
    """The rules for the current version: from memory, the cache, or the database."""
    global _compiled
    cache = get_cache()
    try:
        found = cache.get_many([RULES_VERSION_KEY, RULES_KEY])
        version = current_version(RULES_VERSION_KEY, found)
    except Exception as exc:  # no cache: the database answers, every time
        cache_failed(exc)
        return compile_rules("", load_rules())
    if _compiled.version == version:
        return _compiled
    entry = found.get(RULES_KEY)
    if entry is not None and entry[0] == version:
        rules = entry[1]
    else:
        rules = load_rules()
        try:
            cache.set(RULES_KEY, (version, rules), timeout=wsreject_settings.PERMISSION_CACHE_TIMEOUT)
        except Exception as exc:
            cache_failed(exc)
    _compiled = compile_rules(version, rules)
    return _compiled


def _process_local(cache) -> bool:
    return isinstance(cache, (LocMemCache, DummyCache))


async def acurrent_rules() -> RuleSet:
    """:func:`current_rules` from async code: no thread hop while a local cache is warm."""
    cache = get_cache()
    if _process_local(cache) and _compiled.version and cache.get(RULES_VERSION_KEY) == _compiled.version:
        return _compiled
    return await database_sync_to_async(current_rules)()


# --- enforcement -----------------------------------------------------------------------------------


def check_user(scope: dict[str, Any], rules: list[Rule]) -> DenyHandshake | None:
    """The refusal for ``scope["user"]`` under ``rules``, or None. May query the database."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return unauthenticated(scope)
    for rule in rules:
        if not rule.admits(user):
            return DenyHandshake(rule.deny_status, rule.deny_detail)
    return None


async def decide(scope: dict[str, Any], rules: list[Rule]) -> DenyHandshake | None:
    """The refusal for a handshake covered by ``rules`` (most specific first), or None."""
    for rule in rules:
        if not rule.enabled:
            return rule.disabled_denial()
    restricting = [rule for rule in rules if rule.restricts_users]
    if not restricting:
        return None
    if loaded_user(scope) is not None and not is_authenticated(scope):
        return unauthenticated(scope)  # no credential: decided on the event loop
    return await database_sync_to_async(check_user)(scope, restricting)


class AccessRuleMiddleware:
    """Enforce :class:`~wsreject.models.AccessRule` rows before the routing.

    Place it inside ``CredentialsMiddleware`` (it needs ``scope["user"]``) and
    inside ``DenialMiddleware``; :func:`~wsreject.middleware.DenialMiddlewareStack`
    does. A refusal follows the denial mode of the endpoint it protects (a
    nested ``DenialMiddleware(..., denial_mode="close_code")`` or the
    consumer's ``denial_mode``).
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self._endpoints: tuple[Endpoint, ...] | None = None
        self._enabled: bool | None = None

    @property
    def enabled(self) -> bool:
        """Rules live in wsreject's models: without the app installed there are none."""
        if self._enabled is None:
            from django.apps import apps

            self._enabled = apps.is_installed("wsreject")
        return self._enabled

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        if self._endpoints is None:
            self._endpoints = tuple(iter_endpoints(self.inner))
        return self._endpoints

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and self.enabled:
            ruleset = await acurrent_rules()
            if ruleset.rules and (denial := await self.check(scope, ruleset)) is not None:
                return await self.deny(scope, receive, send, denial)
        return await self.inner(scope, receive, send)

    async def check(self, scope, ruleset: RuleSet) -> DenyHandshake | None:
        path = request_path(scope)
        name = None
        if ruleset.uses_route_names:
            endpoint = resolve_endpoint(self.endpoints, routing_path(scope))
            name = endpoint.name if endpoint else None
        rules = ruleset.matching(path, name)
        return await decide(scope, rules) if rules else None

    async def deny(self, scope, receive, send, denial: DenyHandshake) -> None:
        """Answer here rather than raise: the denial mode is the endpoint's, and the log
        line and ``connection_denied`` see this scope (with its user)."""
        endpoint = resolve_endpoint(self.endpoints, routing_path(scope))
        mode = (endpoint.denial_mode if endpoint else None) or scope.get(STACK_MODE_KEY)
        message = await receive()  # an answer follows websocket.connect
        if message["type"] == "websocket.connect":
            await send_denial(scope, send, denial.response(), mode)


def request_path(scope) -> str:
    """The path rules match: ``path`` without ``root_path``."""
    path, root_path = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root_path):] if root_path and path.startswith(root_path) else path


def routing_path(scope) -> str:
    """The path as this middleware's ``URLRouter`` will see it."""
    return scope.get("path_remaining", request_path(scope))
