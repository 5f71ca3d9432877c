""""Who can connect" lists exactly who the enforcement admits: compared with ``user.has_perm``
and the rule's group check for a mixed population, through every page and the search."""

from __future__ import annotations

import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from wsreject.access import holders
from wsreject.access.admin import USERS_PER_PAGE, USERS_PER_ROW
from wsreject.endpoints import project_endpoints

from .test_access_admin import add_rule

ROOMS = "/ws/rooms/<slug:name>/"
PERM = "chat.join_room"


@pytest.fixture
def population(demo_tokens):
    """~250 users: active or not, superusers, the permission directly, through a group or not at all."""
    rng = random.Random(21)
    join_room = Permission.objects.get(content_type__app_label="chat", codename="join_room")
    members = Group.objects.get(name="members")
    granters = Group.objects.create(name="granters")
    granters.permissions.add(join_room)
    bystanders = Group.objects.create(name="bystanders")
    vip = Group.objects.create(name="vip")
    user_model = get_user_model()
    for number in range(250):
        user = user_model.objects.create_user(
            f"pop{number:03d}",
            is_active=rng.random() < 0.8,
            is_superuser=rng.random() < 0.05,
        )
        groups = [group for group in (members, granters, bystanders, vip) if rng.random() < 0.3]
        user.groups.set(groups)
        if rng.random() < 0.15:
            user.user_permissions.add(join_room)
    return {"vip": vip}


def rooms_index() -> int:
    return [endpoint.route for endpoint in project_endpoints()].index(ROOMS)


def listed(client, search: str = "") -> tuple[list[str], int]:
    """Every username on the endpoint's pages (following "next"), and the count the page states."""
    names: list[str] = []
    url = f"/admin/wsreject/accessrule/endpoints/{rooms_index()}/" + (f"?q={search}" if search else "")
    count = None
    while url:
        page = client.get(url)
        assert page.status_code == 200
        count = page.context["page"].paginator.count
        names += [user.get_username() for user in page.context["page"].object_list]
        next_link = re.search(r'class="wsreject-next" href="([^"]+)"', page.content.decode())
        url = page.request["PATH_INFO"] + next_link[1].replace("&amp;", "&") if next_link else ""
    assert count is not None
    return names, count


def expected(check) -> list[str]:
    user_model = get_user_model()
    return [user.get_username() for user in user_model.objects.order_by("pk") if check(user)]


def test_the_endpoint_pages_list_exactly_who_has_the_permission(admin_browser, population):
    names, count = listed(admin_browser)
    truth = expected(lambda user: user.has_perm(PERM))
    assert len(truth) > USERS_PER_PAGE  # the pages are followed, not only the first
    assert names == truth and count == len(truth)

    overview = admin_browser.get("/admin/wsreject/accessrule/endpoints/")
    rooms = {row.endpoint.route: row for row in overview.context["rows"]}[ROOMS]
    assert rooms.user_count == len(truth)
    assert [user.get_username() for user in rooms.users] == truth[:USERS_PER_ROW]


@pytest.mark.parametrize("max_ids", [1000, 5], ids=["few-matches", "many-matches"])
def test_search_narrows_the_same_answer(admin_browser, population, monkeypatch, max_ids):
    monkeypatch.setattr(holders, "MAX_SEARCHED_IDS", max_ids)  # over it: the username filter in SQL
    names, count = listed(admin_browser, "pop1")
    truth = expected(lambda user: user.has_perm(PERM) and "pop1" in user.get_username())
    assert names == truth and count == len(truth) > 0
    overview = admin_browser.get("/admin/wsreject/accessrule/endpoints/?q=pop1")
    rooms = {row.endpoint.route: row for row in overview.context["rows"]}[ROOMS]
    assert rooms.user_count == len(truth)
    assert "matching “pop1”" in overview.content.decode()


def test_a_rule_restricting_to_a_group_is_reflected(admin_browser, population):
    vip = population["vip"]
    add_rule(admin_browser, endpoint="rooms", allowed_groups=[vip.pk], deny_detail="VIP only")
    names, count = listed(admin_browser)

    def admitted(user):  # what Rule.allows and the consumer's permission_required enforce
        in_vip = user.is_active and (user.is_superuser or user.groups.filter(pk=vip.pk).exists())
        return in_vip and user.has_perm(PERM)

    truth = expected(admitted)
    assert 0 < len(truth) < len(expected(lambda user: user.has_perm(PERM)))
    assert names == truth and count == len(truth)


def test_an_unknown_endpoint_is_404(admin_browser):
    assert admin_browser.get("/admin/wsreject/accessrule/endpoints/999/").status_code == 404


@pytest.mark.parametrize("ratio", [0, 10**9], ids=["from-the-link-rows", "walking-the-users"])
def test_both_ways_to_the_first_users_list_the_same(admin_browser, population, monkeypatch, ratio):
    monkeypatch.setattr(holders, "SPARSE_RATIO", ratio)  # 0: every holder set counts as sparse
    names, count = listed(admin_browser)
    truth = expected(lambda user: user.has_perm(PERM))
    assert names == truth and count == len(truth)
    overview = admin_browser.get("/admin/wsreject/accessrule/endpoints/")
    rooms = {row.endpoint.route: row for row in overview.context["rows"]}[ROOMS]
    assert [user.get_username() for user in rooms.users] == truth[:USERS_PER_ROW]
