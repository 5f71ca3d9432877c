"""Which users pass an endpoint's permissions and groups: queries that scale with the indexes.

The admin's "Who can connect" page asks this per endpoint. ``ModelBackend.with_perm``
answers it with joins over every user for each permission; with 100 000 users a
page of a dozen endpoints took minutes. Here the few permission and group ids are
looked up first (small tables), then the user table is filtered with ``IN`` over
the two many-to-many link tables, whose ``(user, group)`` / ``(user, permission)``
unique indexes answer the membership, so ``count()`` and ``[:n]`` cost an index
scan, not a join per user.

The semantics are the enforcement's, not a lookalike: ``User.has_perm`` (active
superusers hold every permission; inactive users none; a permission comes from
the user or one of their groups, matched on ``app_label.codename`` like
``ModelBackend``) and :meth:`~wsreject.rules.Rule.allows` (a superuser
passes a rule's groups too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Exists, OuterRef, Q, QuerySet

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

    ``correlated``: one ``EXISTS`` probe of the link tables' unique indexes per user
    (the cheapest way to the first users in key order); else ``IN`` over the link
    rows, read once (the cheapest way to count them all).
    """
    group_links, perm_links = _links()
    holders = Q(is_superuser=True)
    links = [(perm_links, "permission_id", perm_ids), (group_links, "group_id", group_ids)]
    for model, column, ids in links:
        if not ids:
            continue
        rows = model.objects.filter(**{f"{column}__in": ids})
        if correlated:
            holders |= Q(Exists(rows.filter(user_id=user_ref)))
        else:
            holders |= Q(pk__in=rows.values("user_id"))
    return holders


def users_passing(
    perms: Iterable[str],
    group_sets: Iterable[Iterable[int]],
    search: str = "",
    correlated: bool = True,
    matching: list[Any] | None = None,
) -> QuerySet[Any]:
    """Active users holding every permission in ``perms`` and in one group of each of ``group_sets``.

    Superusers pass both. Ordered by primary key; slice it for the first users.
    :class:`Holders` counts them with the form suited to counting.
    """
    user_model = get_user_model()
    users = user_model._default_manager.filter(is_active=True)
    ref = OuterRef("pk")
    for perm in sorted(set(perms)):
        ids = permission_ids(perm)
        users = users.filter(_holders(ids, granting_group_ids(ids), ref, correlated))
    for group_ids in group_sets:
        users = users.filter(_holders([], sorted(group_ids), ref, correlated))
    if matching is not None:  # few usernames match the search: probe only those users
        users = users.filter(pk__in=matching)
    elif search:
        users = users.filter(**{f"{user_model.USERNAME_FIELD}__icontains": search})
    return users.order_by("pk")


MAX_SEARCHED_IDS = 1000


def searched_ids(search: str) -> list[Any] | None:
    """The active users whose username contains ``search`` (one scan of the user table), or
    None when more than ``MAX_SEARCHED_IDS`` match: a page computes it once for every query."""
    if not search:
        return None
    user_model = get_user_model()
    lookup = {f"{user_model.USERNAME_FIELD}__icontains": search, "is_active": True}
    ids = list(user_model._default_manager.filter(**lookup).values_list("pk", flat=True)[: MAX_SEARCHED_IDS + 1])
    return ids if len(ids) <= MAX_SEARCHED_IDS else None


class Holders:
    """The users passing, sliceable and countable (what ``Paginator`` needs), each the cheap way."""

    def __init__(
        self, perms: Iterable[str], group_sets: Iterable[Iterable[int]], search: str = "", matching: list[Any] | None = None
    ) -> None:
        self.perms, self.group_sets, self.search = sorted(set(perms)), [sorted(ids) for ids in group_sets], search
        self.matching = matching  # searched_ids(search), when the caller has it
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            self._count = users_passing(self.perms, self.group_sets, self.search, False, self.matching).count()
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[Any]:
        return list(users_passing(self.perms, self.group_sets, self.search, True, self.matching)[index])


def groups_passing(perms: Iterable[str], group_sets: Iterable[Iterable[int]]) -> list[Group]:
    """Groups whose members pass (every permission, and one group of each set)."""
    groups = Group.objects.all()
    for perm in sorted(set(perms)):
        groups = groups.filter(pk__in=granting_group_ids(permission_ids(perm)))
    for group_ids in group_sets:
        groups = groups.filter(pk__in=sorted(group_ids))
    return list(groups.order_by("name"))
