"""The index-only count of "Who can connect" equals the enforcement's answer in the cases it
corrects for: group and direct permission overlapping, several granting groups, inactive users
and superusers (in groups or not), and when it falls back to the scan."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from wsreject.access import holders
from wsreject.access.holders import Holders, population

PERM = "chat.join_room"


@pytest.fixture
def people(transactional_db):
    """Named users, each one case the count must get right."""
    perm = Permission.objects.get(content_type__app_label="chat", codename="join_room")
    first, second, other = (Group.objects.create(name=name) for name in ("first", "second", "other"))
    first.permissions.add(perm)
    second.permissions.add(perm)
    user_model = get_user_model()

    def make(name, groups=(), direct=False, **flags):
        user = user_model.objects.create_user(name, **flags)
        user.groups.set(groups)
        if direct:
            user.user_permissions.add(perm)
        return user

    make("group-only", [first])
    make("both-groups", [first, second])
    make("group-and-direct", [first], direct=True)
    make("both-groups-and-direct", [first, second], direct=True)
    make("direct-only", direct=True)
    make("direct-and-other-group", [other], direct=True)
    make("other-group-only", [other])
    make("nothing")
    make("inactive-in-group", [first], is_active=False)
    make("inactive-direct", direct=True, is_active=False)
    make("inactive-superuser-in-group", [first], is_active=False, is_superuser=True)
    make("superuser", is_superuser=True)
    make("superuser-in-groups", [first, second], direct=True, is_superuser=True)
    return {"first": first, "second": second, "other": other}


def truth(check) -> list[str]:
    return sorted(user.get_username() for user in get_user_model().objects.all() if check(user))


def names(found) -> list[str]:
    return sorted(user.get_username() for user in found)


@pytest.mark.parametrize("ratio", [0, 10**9], ids=["from-the-link-rows", "walking-the-users"])
def test_counted_once_whatever_the_overlap(people, monkeypatch, ratio):
    monkeypatch.setattr(holders, "SPARSE_RATIO", ratio)
    expected = truth(lambda user: user.has_perm(PERM))
    assert expected == sorted(
        ["group-only", "both-groups", "group-and-direct", "both-groups-and-direct", "direct-only",
         "direct-and-other-group", "superuser", "superuser-in-groups"]
    )  # fmt: skip
    found = Holders([PERM], [])
    assert found.count() == len(expected)
    assert names(found[:100]) == expected
    assert [user.get_username() for user in found[2:5]] == [user.get_username() for user in found[:100]][2:5]


def test_a_group_set_and_signed_in_only(people):
    groups = sorted([people["first"].pk, people["other"].pk])
    in_groups = truth(lambda u: u.is_active and (u.is_superuser or u.groups.filter(pk__in=groups).exists()))
    assert Holders([], [groups]).count() == len(in_groups)
    assert Holders([], []).count() == len(truth(lambda user: user.is_active))


def test_the_count_reads_no_user_row_beyond_the_exceptions(people, django_assert_num_queries):
    """One scan for the exceptions and COUNT(*), then one statement for the requirement."""
    people_read = population()
    assert people_read is not None
    assert len(people_read.inactive) == 3 and len(people_read.superusers) == 2
    holders_of = Holders([PERM], [], people=people_read)
    with django_assert_num_queries(3):  # the permission's ids, the groups granting it, the count
        assert holders_of.count() == 8


def test_exceptions_in_several_lists_and_statements(people, monkeypatch):
    monkeypatch.setattr(holders, "EXCEPTIONS_PER_QUERY", 1)
    assert Holders([PERM], []).count() == 8


def test_too_many_exceptions_fall_back_to_the_scan(people, monkeypatch):
    monkeypatch.setattr(holders, "MAX_EXCEPTIONS", 2)
    assert population() is None
    assert Holders([PERM], []).count() == 8
    assert Holders([], []).count() == len(truth(lambda user: user.is_active))


def test_two_requirements_intersect(people):
    groups = [people["other"].pk]

    def passes(user):
        return user.has_perm(PERM) and (user.is_superuser or user.groups.filter(pk__in=groups).exists())

    expected = truth(passes)
    assert expected == ["direct-and-other-group", "superuser", "superuser-in-groups"]
    found = Holders([PERM], [groups])
    assert found.count() == 3 and names(found[:10]) == expected
