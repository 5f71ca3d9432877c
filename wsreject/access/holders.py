"""Which users pass an endpoint's permissions and groups: queries that scale with the indexes.

The admin's "Who can connect" page asks this per endpoint. ``ModelBackend.with_perm``
answers it with joins over every user for each permission; with 100 000 users a
page of a dozen endpoints took minutes. Here the few permission and group ids are
looked up first (small tables), then:

* **counting** one requirement (a permission, or one of some groups) reads only the
  link tables' indexes: the group links ``COUNT``-ed (no ``DISTINCT`` for one group:
  ``(user, group)`` is unique) plus the direct permission links of users in none of
  those groups (disjoint, so nothing is counted twice), in one query. The users the
  link tables cannot tell apart — inactive users and superusers, usually few — come
  from one scan of the user table per page (:func:`population`) and are corrected for
  with a probe each. A signed-in-only endpoint is ``COUNT(*)`` less the inactive users.
  Several requirements at once (their intersection), a username search matching many,
  or more than ``MAX_EXCEPTIONS`` inactive users and superusers fall back to one
  filtered scan of the user table with ``IN`` over the link rows;
* **the first users** walk the user table in key order, probing the link tables'
  ``(user, group)`` / ``(user, permission)`` unique indexes per user, and stop at the
  ``LIMIT``; when the holders are few and sparse (a walk would probe many users per
  holder) their ids are read from the link rows instead, and the page's users by id. The probe is a scalar subquery (``(SELECT ... LIMIT 1) IS NOT NULL``), not
  ``EXISTS``: PostgreSQL turns an ``EXISTS`` under ``OR`` into a hash of every link row.

The semantics are the enforcement's, not a lookalike: ``User.has_perm`` (active
superusers hold every permission; inactive users none; a permission comes from
the user or one of their groups, matched on ``app_label.codename`` like
``ModelBackend``) and :meth:`~wsreject.rules.Rule.allows` (a superuser
passes a rule's groups too).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.lookups import IsNull

__all__ = [
    "MAX_EXCEPTIONS",
    "MAX_SEARCHED_IDS",
    "MAX_SPARSE",
    "SPARSE_RATIO",
    "Holders",
    "Population",
    "granting_group_ids",
    "groups_passing",
    "permission_ids",
    "population",
    "searched_ids",
    "users_passing",
]

#: A requirement: (permission ids, group ids) — a user holding one of the permissions or in
#: one of the groups meets it.
Requirement = tuple[list[int], list[int]]

__all__ = [
    "MAX_SEARCHED_IDS",
    "Holders",
    "granting_group_ids",
    "groups_passing",
    "permission_ids",
    "searched_ids",
    "users_passing",
]


def permission_ids(perm: str) -> list[int]:
    """The ids of ``app_label.codename`` (any content type of that app, as ModelBackend matches)."""
    app_label, _dot, codename = perm.partition(".")
    return list(
        Permission.objects.filter(content_type__app_label=app_label, codename=codename).values_list("pk", flat=True)
    )


def granting_group_ids(perm_ids: Iterable[int]) -> list[int]:
    """Groups holding any of ``perm_ids`` (a handful of rows of the group-permission table)."""
    through = Group.permissions.through
    return sorted(set(through.objects.filter(permission_id__in=list(perm_ids)).values_list("group_id", flat=True)))


def _links() -> tuple[Any, Any]:
    """The user model's user-group and user-permission link tables."""
    user_model = get_user_model()
    groups = user_model._meta.get_field("groups").remote_field.through
    perms = user_model._meta.get_field("user_permissions").remote_field.through
    return groups, perms


def _holders(perm_ids: list[int], group_ids: list[int], user_ref: Any, correlated: bool) -> Q:
    """A user is a superuser, or holds a permission directly, or is in one of ``group_ids``.

    ``correlated``: one probe of the link tables' unique indexes per user
    (the cheapest way to the first users in key order); else ``IN`` over the link
    rows, read once (the cheapest way to count them all).
    """
    group_links, perm_links = _links()
    conditions = [Q(is_superuser=True)]
    links = [(perm_links, "permission_id", perm_ids), (group_links, "group_id", group_ids)]
    for model, column, ids in links:
        if not ids:
            continue
        rows = model.objects.filter(**{f"{column}__in": ids})
        if correlated:  # a scalar subquery, not EXISTS: PostgreSQL would hash all the link rows for an EXISTS
            conditions.append(Q(IsNull(Subquery(rows.filter(user_id=user_ref).values("user_id")[:1]), False)))
        else:
            conditions.append(Q(pk__in=rows.values("user_id")))
    return reduce(operator.or_, conditions)


def requirements(perms: Iterable[str], group_sets: Iterable[Iterable[int]]) -> list[Requirement]:
    """Each permission of ``perms`` (its ids and the groups granting it), then each group set."""
    found: list[Requirement] = []
    for perm in sorted(set(perms)):
        ids = permission_ids(perm)
        found.append((ids, granting_group_ids(ids)))
    found += [([], sorted(group_ids)) for group_ids in group_sets]
    return found


def users_passing(
    perms: Iterable[str],
    group_sets: Iterable[Iterable[int]],
    search: str = "",
    correlated: bool = True,
    matching: list[Any] | None = None,
    required: list[Requirement] | None = None,
) -> QuerySet[Any]:
    """Active users holding every permission in ``perms`` and in one group of each of ``group_sets``.

    Superusers pass both. Ordered by primary key; slice it for the first users.
    :class:`Holders` counts them with the form suited to counting. ``required``:
    :func:`requirements` of ``perms`` and ``group_sets``, when the caller has them.
    """
    user_model = get_user_model()
    users = user_model._default_manager.filter(is_active=True)
    ref = OuterRef("pk")
    for perm_ids, group_ids in requirements(perms, group_sets) if required is None else required:
        users = users.filter(_holders(perm_ids, group_ids, ref, correlated))
    if matching is not None:  # few usernames match the search: probe only those users
        users = users.filter(pk__in=matching)
    elif search:
        users = users.filter(**{f"{user_model.USERNAME_FIELD}__icontains": search})
    return users.order_by("pk")


MAX_SEARCHED_IDS = 1000


def searched_ids(search: str) -> list[Any] | None:
    """The users whose username contains ``search``, or None when more than ``MAX_SEARCHED_IDS``
    match: a page computes it once for every query. One scan of the usernames: of the username
    index alone where the database can (SQLite: about a third of reading every user's row);
    the queries using the ids keep the active users."""
    if not search:
        return None
    user_model = get_user_model()
    lookup = {f"{user_model.USERNAME_FIELD}__icontains": search}
    ids = list(user_model._default_manager.filter(**lookup).values_list("pk", flat=True)[: MAX_SEARCHED_IDS + 1])
    return ids if len(ids) <= MAX_SEARCHED_IDS else None


#: At most this many inactive users and superusers are corrected for one by one; beyond, counts scan.
MAX_EXCEPTIONS = 10_000
#: Their ids go into ``IN (...)`` lists of at most this many (and half the database's parameter limit).
EXCEPTIONS_PER_QUERY = 900


@dataclass(frozen=True)
class Population:
    """What the link tables cannot tell: how many users, which are inactive, which are active superusers."""

    users: int
    inactive: frozenset[Any]
    superusers: frozenset[Any]  # active ones: they pass every requirement


def population() -> Population | None:
    """The user table read once (``COUNT(*)`` and one scan for the exceptions); None when more
    than ``MAX_EXCEPTIONS`` users are inactive or superusers (then counts scan the user table)."""
    manager = get_user_model()._default_manager
    exceptional = manager.filter(Q(is_active=False) | Q(is_superuser=True))
    rows = list(exceptional.values_list("pk", "is_active", "is_superuser")[: MAX_EXCEPTIONS + 1])
    if len(rows) > MAX_EXCEPTIONS:
        return None
    return Population(
        users=manager.count(),
        inactive=frozenset(pk for pk, active, _superuser in rows if not active),
        superusers=frozenset(pk for pk, active, superuser in rows if active and superuser),
    )


def _linked(perm_ids: list[int], group_ids: list[int]) -> list[QuerySet[Any]]:
    """Disjoint sets of user ids (as ``values("user_id")`` querysets) whose union holds the
    requirement, active or not, read from the link tables alone."""
    group_links, perm_links = _links()
    parts: list[QuerySet[Any]] = []
    if group_ids:
        rows = group_links.objects.filter(group_id__in=group_ids).values("user_id")
        parts.append(rows.distinct() if len(group_ids) > 1 else rows)
    if perm_ids:
        direct = perm_links.objects.filter(permission_id__in=perm_ids)
        if group_ids:  # counted with the groups already
            member = group_links.objects.filter(user_id=OuterRef("user_id"), group_id__in=group_ids)
            direct = direct.exclude(Exists(member))
        direct = direct.values("user_id")
        parts.append(direct.distinct() if len(perm_ids) > 1 else direct)
    return parts


def _sum_of_counts(alias: str, terms: list[tuple[str, list[Any]]]) -> int:
    """The sum of ``terms`` (each ``"+ (SELECT COUNT(*) ...)"`` or ``"- (...)"`` with its
    parameters), in as few statements as the database's limit on parameters allows."""
    connection = connections[alias]
    budget = connection.features.max_query_params or 1_000_000
    statements: list[tuple[list[str], list[Any]]] = []
    for sql, params in terms:
        if not statements or len(statements[-1][1]) + len(params) > budget:
            statements.append(([], []))
        statements[-1][0].append(sql)
        statements[-1][1].extend(params)
    total = 0
    with connection.cursor() as cursor:
        for parts, params in statements:
            cursor.execute("SELECT 0 " + " ".join(parts), params)
            total += int(cursor.fetchone()[0])
    return total


def count_by_index(required: list[Requirement], people: Population) -> int | None:
    """The active users meeting ``required`` counted from the link tables' indexes, or None
    when there are several requirements (an intersection: left to the scan)."""
    if not required:
        return people.users - len(people.inactive)
    if len(required) > 1:
        return None
    parts = _linked(*required[0])
    if not parts:
        return len(people.superusers)
    alias = parts[0].db
    connection = connections[alias]
    column = "wsreject_rows." + connection.ops.quote_name("user_id")
    compiled = [rows.query.get_compiler(using=alias).as_sql() for rows in parts]
    terms = [(f"+ (SELECT COUNT(*) FROM ({sql}) wsreject_rows)", list(params)) for sql, params in compiled]
    # Less the exceptions the link rows counted: inactive users, and superusers (added below).
    # Their ids go in as parameters, not through the ORM (which prepares each value: slow by the thousand).
    exceptions = list(people.inactive | people.superusers)
    limit = connection.features.max_query_params
    size = min(EXCEPTIONS_PER_QUERY, max(1, limit // 2)) if limit else EXCEPTIONS_PER_QUERY
    for start in range(0, len(exceptions), size):
        chunk = exceptions[start : start + size]
        marks = ", ".join(["%s"] * len(chunk))
        for sql, params in compiled:
            terms.append((f"- (SELECT COUNT(*) FROM ({sql}) wsreject_rows WHERE {column} IN ({marks}))", [*params, *chunk]))
    return _sum_of_counts(alias, terms) + len(people.superusers)


#: The first users come from the link rows (not a walk of the user table) when there are at most
#: ``MAX_SPARSE`` holders, fewer than one in ``SPARSE_RATIO`` users.
MAX_SPARSE = 5000
SPARSE_RATIO = 20

#: The default of :class:`Holders`' ``people``: read the user table when a count needs it.
UNREAD: Any = object()


class Holders:
    """The users passing, sliceable and countable (what ``Paginator`` needs), each the cheap way."""

    def __init__(
        self,
        perms: Iterable[str],
        group_sets: Iterable[Iterable[int]],
        search: str = "",
        matching: list[Any] | None = None,
        people: Population | None = UNREAD,
    ) -> None:
        self.perms, self.group_sets, self.search = sorted(set(perms)), [sorted(ids) for ids in group_sets], search
        self.matching = matching  # searched_ids(search), when the caller has it
        self.people = people  # population(), when the caller has it (one read for a page)
        self._count: int | None = None
        self._required: list[Requirement] | None = None

    @property
    def required(self) -> list[Requirement]:
        if self._required is None:
            self._required = requirements(self.perms, self.group_sets)
        return self._required

    def count(self) -> int:
        if self._count is None:
            self._count = self._counted()
        return self._count

    def _counted(self) -> int:
        if self.matching is not None:  # a few users: probe each
            return self._passing(correlated=True).count()
        if not self.search:
            if self.people is UNREAD:
                self.people = population()
            if self.people is not None and (found := count_by_index(self.required, self.people)) is not None:
                return found
        return self._passing(correlated=False).count()

    def _passing(self, correlated: bool) -> QuerySet[Any]:
        return users_passing(self.perms, self.group_sets, self.search, correlated, self.matching, self.required)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[Any]:
        ids = self._sparse_ids()
        if ids is None:  # holders are dense (or the requirements many): walk the users in key order
            return list(self._passing(correlated=True)[index])
        chosen = ids[index]
        users = get_user_model()._default_manager.in_bulk(chosen)
        return [users[pk] for pk in chosen if pk in users]

    def _sparse_ids(self) -> list[Any] | None:
        """Every passing user's id in key order, from the link rows, when the holders are few
        and sparse among the users (a walk in key order would probe many users per holder);
        else None."""
        if self.search or not isinstance(self.people, Population) or len(self.required) != 1:
            return None
        if self.count() > MAX_SPARSE or self.count() * SPARSE_RATIO >= self.people.users:
            return None
        found = set(self.people.superusers)
        for rows in _linked(*self.required[0]):
            found.update(rows.values_list("user_id", flat=True))
        return sorted(found - self.people.inactive)


def groups_passing(perms: Iterable[str], group_sets: Iterable[Iterable[int]]) -> list[Group]:
    """Groups whose members pass (every permission, and one group of each set)."""
    groups = Group.objects.all()
    for perm in sorted(set(perms)):
        groups = groups.filter(pk__in=granting_group_ids(permission_ids(perm)))
    for group_ids in group_sets:
        groups = groups.filter(pk__in=sorted(group_ids))
    return list(groups.order_by("name"))
