"""Access rules edited in the admin: loading, caching and deciding.

**Precedence.** Rules only take access away: the consumer's own checks still
run, and every rule covering the endpoint applies. They are checked most
specific first (route names and exact paths, then prefixes, longest first), and
the first refusal is the answer:

1. a disabled rule: ``503`` with ``Retry-After`` and its message, for everyone;
2. a rule stored invalid anyway (raw SQL, an old row): ``503`` for everyone,
   and an ERROR in the log — never skipped;
3. a rule with groups or permissions, and no signed-in user: ``401``
   ("Not authenticated" / "Invalid credentials");
4. a user outside the rule's groups (when it names any), without all of its
   permissions, or any user when a group or permission it names was deleted:
   the rule's status and message. Superusers pass 4 unless something is
   missing; inactive users never pass.

**Cost.** The whole rule set is cached under one key stamped with the rules'
version (see :mod:`wsreject.cache.versions`), and each process keeps the
compiled rules of the version it last saw: with a process-local cache, a
handshake reads the version on the event loop; with a shared one, in a worker
thread. A user's groups and permissions come from the cached per-user sets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from .authentication import is_authenticated, unauthenticated
from .cache.permsets import group_ids, has_perms
from .cache.reader import local_stamp, read_versioned
from .cache.versions import RULES_VERSION_KEY
from .denial import UNAVAILABLE_RETRY_AFTER, DenyHandshake, prebuilt_denial, validate_status
from .models import MAX_RETRY_AFTER, AccessRule, validate_deny_status
from .offload import require_io, run_off_loop_if_needed
from .patterns import EndpointPattern, parse_endpoint
from .reporting import warn_rate_limited
from .types import Scope

if TYPE_CHECKING:
    from .routes import RouteHit

__all__ = [
    "BROKEN_DETAIL",
    "RULES_KEY",
    "RULE_FIELDS",
    "CompiledRule",
    "Rule",
    "RuleSet",
    "acurrent_rules",
    "broken_denial",
    "check_user",
    "compile_rules",
    "current_rules",
    "decide",
    "forget_compiled",
    "load_rules",
]

logger = logging.getLogger("wsreject")

RULES_KEY = "wsreject:rules:2"  # the number changes with the fields of Rule
RULE_FIELDS = ("pk", "endpoint", "enabled", "retry_after", "disabled_detail", "deny_status", "deny_detail")
BROKEN_DETAIL = "Service Unavailable"


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
    missing: tuple[str, ...] = ()  # deleted groups and permissions it still names

    @property
    def restricts_users(self) -> bool:
        return bool(self.group_ids or self.perms or self.missing)

    def problem(self) -> str | None:
        """Why this row cannot be enforced as written, or None: whatever the model's
        validation refuses (a status the check constraint lets through, such as 599, too)."""
        try:
            parse_endpoint(self.endpoint)
            validate_status(self.deny_status)
            validate_deny_status(self.deny_status)
        except (TypeError, ValueError) as exc:
            return str(exc)
        except ValidationError as exc:
            return "; ".join(exc.messages)
        if not 0 <= self.retry_after <= MAX_RETRY_AFTER:
            return f"retry_after {self.retry_after} is out of range"
        return None

    def disabled_denial(self) -> DenyHandshake:
        return DenyHandshake(503, self.disabled_detail, headers={"Retry-After": str(self.retry_after)})

    def admits(self, user: Any) -> bool:
        """Whether a signed-in ``user`` passes this rule's groups and permissions."""
        if self.missing or not user.is_active:
            return False
        if user.is_superuser:
            return True
        if self.group_ids and not self.group_ids & group_ids(user):
            return False
        return not self.perms or has_perms(user, self.perms)


@dataclass(frozen=True)
class CompiledRule:
    pattern: EndpointPattern | None  # None: the row is broken and covers every endpoint
    rule: Rule
    problem: str | None = None

    def covers(self, routed_path: str, route_name: str | None) -> bool:
        return self.pattern is None or self.pattern.matches(routed_path, route_name)

    def covers_hit(self, hit: RouteHit, targets: Mapping[str, RouteHit | None]) -> bool:
        """Whether this rule covers the route Channels matched (``targets``: where each exact
        path rule's own path is routed)."""
        return self.pattern is None or self.pattern.covers(hit, targets.get(self.pattern.text))


@dataclass(frozen=True)
class RuleSet:
    """The compiled rules of one version, most specific first."""

    version: str
    rules: tuple[CompiledRule, ...] = ()

    def matching(self, routed_path: str, route_name: str | None) -> list[CompiledRule]:
        return [compiled for compiled in self.rules if compiled.covers(routed_path, route_name)]

    def covering(self, hit: RouteHit, targets: Mapping[str, RouteHit | None]) -> list[CompiledRule]:
        """The rules covering the route Channels matched, most specific first."""
        return [compiled for compiled in self.rules if compiled.covers_hit(hit, targets)]

    @property
    def exact_paths(self) -> tuple[str, ...]:
        """The exact paths the rules name: each is routed once to learn its endpoint."""
        return tuple(
            compiled.pattern.text for compiled in self.rules if compiled.pattern is not None and compiled.pattern.exact_path
        )


def load_rules() -> tuple[Rule, ...]:
    """Every rule from the database, in one query (rules, their groups and permissions joined)."""
    require_io()
    fields = ("pk", *RULE_FIELDS[1:])
    links = (
        "group_links__id",
        "group_links__group_id",
        "group_links__group_name",
        "permission_links__id",
        "permission_links__permission_id",
        "permission_links__permission__content_type__app_label",
        "permission_links__permission__codename",
        "permission_links__permission_label",
    )
    rules: dict[int, tuple[tuple[Any, ...], set[int], set[str], set[str]]] = {}
    for row in AccessRule.objects.order_by("pk").values_list(*fields, *links):
        _, groups, perms, missing = rules.setdefault(row[0], (row[: len(fields)], set(), set(), set()))
        group_link, group_id, group_name, perm_link, perm_id, app_label, codename, label = row[len(fields) :]
        if group_link is not None:
            if group_id is None:
                missing.add(f"group “{group_name or '?'}”")
            else:
                groups.add(group_id)
        if perm_link is not None:
            if perm_id is None:
                missing.add(f"permission “{label or '?'}”")
            else:
                perms.add(f"{app_label}.{codename}")
    return tuple(
        Rule(
            **dict(zip(RULE_FIELDS, base, strict=True)),
            group_ids=frozenset(groups),
            perms=frozenset(perms),
            missing=tuple(sorted(missing)),
        )
        for base, groups, perms, missing in rules.values()
    )


def compile_rules(version: str, rules: tuple[Rule, ...]) -> RuleSet:
    compiled = []
    for rule in rules:
        problem = rule.problem()
        if problem is not None:  # stored without validation: it covers everything, and denies
            compiled.append(CompiledRule(None, rule, problem))
        else:
            compiled.append(CompiledRule(parse_endpoint(rule.endpoint), rule))
    compiled.sort(key=lambda item: (item.pattern is not None, *(item.pattern.specificity if item.pattern else ()), item.rule.pk))
    return RuleSet(version, tuple(compiled))


_compiled = RuleSet("")  # this process's rules, for the version it last saw


def current_rules() -> RuleSet:
    """The rules for the current version: from memory, the cache, or the database.

    On the event loop (see :mod:`wsreject.offload`) only a process-local cache
    is read, and anything else raises :class:`~wsreject.offload.NeedsIO`.
    """
    global _compiled
    if local_stamp([RULES_VERSION_KEY]) == (_compiled.version,):
        return _compiled  # this process's copy of the version says nothing changed
    stamp, rules = read_versioned(RULES_KEY, [RULES_VERSION_KEY], load_rules)
    if stamp is None:  # no cache: the database answers, every time
        return compile_rules("", rules)
    if _compiled.version != stamp[0]:
        _compiled = compile_rules(stamp[0], rules)
    return _compiled


def forget_compiled() -> None:
    """Compile the rules again at the next handshake (see :mod:`wsreject.isolation`)."""
    global _compiled
    _compiled = RuleSet("")


async def acurrent_rules() -> RuleSet:
    """:func:`current_rules` from async code: no thread hop while a local cache is warm."""
    return await run_off_loop_if_needed(current_rules)


def broken_denial(compiled: CompiledRule) -> DenyHandshake:
    warn_rate_limited(
        f"rule:{compiled.rule.pk}",
        "Access rule %s (%r) is invalid and denies every handshake with 503 until fixed: %s",
        compiled.rule.pk,
        compiled.rule.endpoint,
        compiled.problem,
        level=logging.ERROR,
    )
    return DenyHandshake(503, BROKEN_DETAIL, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})


def check_user(scope: Scope, rules: list[Rule]) -> DenyHandshake | None:
    """The refusal for ``scope["user"]`` under ``rules``, or None (see :mod:`wsreject.offload`)."""
    if not is_authenticated(scope):
        return unauthenticated(scope)
    user = scope["user"]
    for rule in rules:
        if not rule.admits(user):
            return prebuilt_denial(rule.deny_status, rule.deny_detail)
    return None


async def decide(scope: Scope, covering: list[CompiledRule]) -> DenyHandshake | None:
    """The refusal for a handshake covered by ``covering`` (most specific first), or None."""
    for compiled in covering:
        if compiled.problem is not None:
            return broken_denial(compiled)
        if not compiled.rule.enabled:
            return compiled.rule.disabled_denial()
    restricting = [compiled.rule for compiled in covering if compiled.rule.restricts_users]
    if not restricting:
        return None
    return await run_off_loop_if_needed(check_user, scope, restricting)
