"""The admin decides who may connect: changes made through its forms hold at the next handshake.

Every change goes through Django's real admin (login, change forms, actions,
via the test client); the effect is then seen by a WebSocket handshake against
the demo's ASGI application, in process. Caches are warmed before each change,
so what is tested is the invalidation, not a cold load.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from project.asgi import application
from tests.helpers import bearer
from wsreject.access.denial_log import denial_log
from wsreject.models import AccessRule
from wsreject.testing import HandshakeCommunicator

from .conftest import connect
from .html_forms import as_data, form_fields, replace, values

pytestmark = pytest.mark.django_db(transaction=True)

JOIN_ROOM = "Not allowed to join this room"
RULE_DEFAULTS = {
    "enabled": "on",
    "retry_after": "120",
    "disabled_detail": "Down for maintenance",
    "deny_status": "403",
    "deny_detail": "Forbidden",
}


def user_pk(username: str) -> int:
    return get_user_model().objects.get(username=username).pk


def join_room_pk() -> str:
    return str(Permission.objects.get(content_type__app_label="chat", codename="join_room").pk)


def edit(client, url: str, form_id: str, **changes) -> None:
    """Open an admin form, change some fields as a user would, save; fail on form errors."""
    page = client.get(url)
    assert page.status_code == 200, url
    fields = form_fields(page.content.decode(), form_id)
    for name, value in changes.items():
        fields = replace(fields, name, value)
    response = client.post(url, as_data(fields + [("_save", "Save")]))
    assert response.status_code == 302, _errors(response)


def _errors(response) -> str:
    text = response.content.decode()
    start = text.find("errornote")
    return text[start - 200 : start + 2000] if start >= 0 else text[:2000]


def edit_user(client, username: str, **changes) -> None:
    edit(client, f"/admin/auth/user/{user_pk(username)}/change/", "user_form", **changes)


def add_rule(client, **fields) -> AccessRule:
    data = {**RULE_DEFAULTS, **fields}
    if data.get("enabled") is None:
        data.pop("enabled")
    response = client.post("/admin/wsreject/accessrule/add/", {**data, "_save": "Save"})
    assert response.status_code == 302, _errors(response)
    return AccessRule.objects.get(endpoint=fields["endpoint"])


def rule_form(client, rule: AccessRule) -> list[tuple[str, str]]:
    page = client.get(f"/admin/wsreject/accessrule/{rule.pk}/change/")
    return form_fields(page.content.decode(), "accessrule_form")


# --- grant and revoke in the user and group pages ------------------------------------------------


def test_removing_alice_from_her_group_denies_her_next_handshake(admin_browser, demo_tokens):
    alice = demo_tokens["alice"]
    assert connect("/ws/rooms/lobby/", alice).accepted  # warm: her permission set is cached
    assert connect("/ws/rooms/lobby/", alice).accepted

    edit_user(admin_browser, "alice", groups=[])
    denied = connect("/ws/rooms/lobby/", alice)
    assert (denied.status_code, denied.json()) == (403, {"detail": JOIN_ROOM})

    members = str(Group.objects.get(name="members").pk)
    edit_user(admin_browser, "alice", groups=[members])
    assert connect("/ws/rooms/lobby/", alice).accepted


def test_granting_bob_the_permission_lets_him_in_and_revoking_it_shuts_him_out(admin_browser, demo_tokens):
    bob = demo_tokens["bob"]
    assert connect("/ws/rooms/lobby/", bob).status_code == 403  # cached: "no permission"

    edit_user(admin_browser, "bob", user_permissions=[join_room_pk()])
    assert connect("/ws/rooms/lobby/", bob).accepted

    edit_user(admin_browser, "bob", user_permissions=[])
    assert connect("/ws/rooms/lobby/", bob).status_code == 403


def test_taking_the_permission_from_the_group_denies_every_member(admin_browser, demo_tokens):
    alice = demo_tokens["alice"]
    assert connect("/ws/rooms/dev/", alice).accepted
    members = Group.objects.get(name="members")
    edit(admin_browser, f"/admin/auth/group/{members.pk}/change/", "group_form", permissions=[])
    assert connect("/ws/rooms/dev/", alice).status_code == 403

    edit(admin_browser, f"/admin/auth/group/{members.pk}/change/", "group_form", permissions=[join_room_pk()])
    assert connect("/ws/rooms/dev/", alice).accepted


def test_deactivating_a_user_refuses_her_token_at_once(admin_browser, demo_tokens):
    alice = demo_tokens["alice"]
    assert connect("/ws/private/", alice).accepted
    page = admin_browser.get(f"/admin/auth/user/{user_pk('alice')}/change/")
    fields = [(k, v) for k, v in form_fields(page.content.decode(), "user_form") if k != "is_active"]
    assert admin_browser.post(f"/admin/auth/user/{user_pk('alice')}/change/", as_data(fields)).status_code == 302
    denied = connect("/ws/private/", alice)
    assert (denied.status_code, denied.json()) == (401, {"detail": "Invalid credentials"})


def test_making_bob_a_superuser_lets_him_in(admin_browser, demo_tokens):
    bob = demo_tokens["bob"]
    assert connect("/ws/rooms/lobby/", bob).status_code == 403
    edit_user(admin_browser, "bob", is_superuser="on")
    assert connect("/ws/rooms/lobby/", bob).accepted


# --- access rules --------------------------------------------------------------------------------


def test_disable_and_re_enable_an_endpoint(admin_browser, demo_tokens):
    alice = demo_tokens["alice"]
    assert connect("/ws/rooms/lobby/", alice).accepted  # warm: the (empty) rule set is cached

    rule = add_rule(
        admin_browser, endpoint="/ws/rooms/*", enabled=None, retry_after="300", disabled_detail="Rooms are being moved"
    )
    for who in (alice, demo_tokens["bob"], None):
        denied = connect("/ws/rooms/lobby/", who)
        assert denied.status_code == 503
        assert denied.header("retry-after") == "300"
        assert denied.json() == {"detail": "Rooms are being moved"}
    assert connect("/ws/private/", alice).accepted  # other endpoints are untouched
    assert connect("/ws/browser/rooms/lobby/", alice).accepted  # another path: another rule

    fields = replace(rule_form(admin_browser, rule), "enabled", "on")
    response = admin_browser.post(f"/admin/wsreject/accessrule/{rule.pk}/change/", as_data(fields))
    assert response.status_code == 302, _errors(response)
    assert connect("/ws/rooms/lobby/", alice).accepted


def test_a_rule_on_the_browser_mount_answers_in_its_close_code_mode(admin_browser, demo_tokens):
    add_rule(admin_browser, endpoint="/ws/browser/*", enabled=None, disabled_detail="Back soon")

    async def browser():
        headers = bearer(demo_tokens["alice"])
        return await HandshakeCommunicator(application, "/ws/browser/rooms/lobby/", headers=headers).handshake(close_code=True)

    closed = async_to_sync(browser)()
    assert (closed.denial_mode, closed.close_code, closed.reason) == ("close_code", 4503, "Back soon")
    assert closed.json() == {"detail": "Back soon"}


def test_changelist_actions_disable_and_enable(admin_browser, demo_tokens):
    alice = demo_tokens["alice"]
    rule = add_rule(admin_browser, endpoint="/ws/private/")
    assert connect("/ws/private/", alice).accepted

    def act(action):
        response = admin_browser.post(
            "/admin/wsreject/accessrule/", {"action": action, "_selected_action": [rule.pk], "index": 0}
        )
        assert response.status_code == 302

    act("disable_endpoints")
    assert connect("/ws/private/", alice).status_code == 503
    act("enable_endpoints")
    assert connect("/ws/private/", alice).accepted


def test_rule_restricts_an_endpoint_to_a_group_with_its_own_status(admin_browser, demo_tokens):
    members = str(Group.objects.get(name="members").pk)
    add_rule(admin_browser, endpoint="/ws/private/", allowed_groups=[members], deny_status="404", deny_detail="Not Found")
    assert connect("/ws/private/", demo_tokens["alice"]).accepted
    denied = connect("/ws/private/", demo_tokens["bob"])
    assert (denied.status_code, denied.json()) == (404, {"detail": "Not Found"})
    anonymous = connect("/ws/private/")
    assert (anonymous.status_code, anonymous.header("www-authenticate")) == (401, "Bearer")

    # Group membership given in the admin counts at the next handshake.
    edit_user(admin_browser, "bob", groups=[members])
    assert connect("/ws/private/", demo_tokens["bob"]).accepted


def test_rule_requires_an_extra_permission(admin_browser, demo_tokens):
    staff_perm = Permission.objects.get(content_type__app_label="auth", codename="view_user")
    add_rule(admin_browser, endpoint="/ws/staff/", required_permissions=[str(staff_perm.pk)], deny_detail="Needs view_user")
    carol = demo_tokens["carol"]
    denied = connect("/ws/staff/", carol)
    assert (denied.status_code, denied.json()) == (403, {"detail": "Needs view_user"})
    edit_user(admin_browser, "carol", user_permissions=[str(staff_perm.pk)])
    assert connect("/ws/staff/", carol).accepted


def test_most_specific_rule_answers_first(admin_browser, demo_tokens):
    members = str(Group.objects.get(name="members").pk)
    add_rule(admin_browser, endpoint="/ws/*", allowed_groups=[members], deny_detail="Members only")
    add_rule(
        admin_browser, endpoint="/ws/rooms/<slug:name>/", deny_status="404", deny_detail="No rooms for you", allowed_groups=[members]
    )
    assert connect("/ws/rooms/lobby/", demo_tokens["bob"]).json() == {"detail": "No rooms for you"}
    assert connect("/ws/private/", demo_tokens["bob"]).json() == {"detail": "Members only"}
    assert connect("/ws/rooms/lobby/", demo_tokens["alice"]).accepted


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("endpoint", "/ws/<foo:name>/", "Unknown converter “foo”"),
        ("endpoint", "/ws/*/x/", "“*” may only end a path pattern"),
        ("endpoint", "ws rooms", "is neither a path pattern"),
        ("endpoint", "lounges", "No WebSocket route is named “lounges”"),
        ("endpoint", "/ws/<slug:name/", "Unmatched “&lt;” or “&gt;”"),
        ("deny_status", "200", "200 is not an error status"),
        ("deny_status", "401", "401 is sent automatically"),
        ("deny_status", "499", "499 is not a standard HTTP status"),
    ],
)
def test_admin_form_refuses_invalid_patterns_and_statuses(admin_browser, field, value, message):
    response = admin_browser.post("/admin/wsreject/accessrule/add/", {**RULE_DEFAULTS, "endpoint": "/ws/echo/", field: value})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AccessRule.objects.exists()


# --- admin views ---------------------------------------------------------------------------------


def test_who_can_connect_lists_users_and_groups_per_endpoint(admin_browser, demo_tokens):
    page = admin_browser.get("/admin/wsreject/accessrule/endpoints/")
    assert page.status_code == 200
    rows = {row.endpoint.route: row for row in page.context["rows"]}
    rooms = rows["/ws/rooms/<slug:name>/"]
    assert rooms.requirements[-1] == "chat.join_room"
    assert {u.username for u in rooms.users} == {"alice", "root"}  # dave is inactive, root superuser
    assert [g.name for g in rooms.groups] == ["members"]
    assert rows["/ws/echo/"].everyone
    assert rows["/ws/staff/"].in_code == ["IsStaff"]

    edit_user(admin_browser, "alice", groups=[])
    rooms = {r.endpoint.route: r for r in admin_browser.get("/admin/wsreject/accessrule/endpoints/").context["rows"]}[
        "/ws/rooms/<slug:name>/"
    ]
    assert {u.username for u in rooms.users} == {"root"}


def test_recent_denials_view_is_bounded_and_costs_no_query(admin_browser, demo_tokens, settings, query_counter):
    settings.WSREJECT = {**settings.WSREJECT, "DENIAL_LOG_SIZE": 5}
    denial_log.clear()
    connect("/ws/private/")  # warm the rule set
    before = query_counter.count
    for _ in range(20):
        assert connect("/ws/private/").status_code == 401
    assert query_counter.count == before  # no credential: no query at all, nothing written
    page = admin_browser.get("/admin/wsreject/accessrule/denials/")
    assert page.status_code == 200
    log = page.context["log"]
    assert len(log["entries"]) == 5
    assert log["counts"][401] == 21 and log["total"] == 21
    assert "Not authenticated" in page.content.decode()


def test_admin_pages_need_the_view_permission(demo_tokens, fast_hasher):
    from django.test import Client

    get_user_model().objects.create_user("editor", password="pw-editor-123", is_staff=True)
    client = Client()
    client.login(username="editor", password="pw-editor-123")
    assert client.get("/admin/wsreject/accessrule/endpoints/").status_code == 403
    assert client.get("/admin/wsreject/accessrule/denials/").status_code == 403


def test_changelist_shows_rules_and_links_to_the_views(admin_browser):
    add_rule(admin_browser, endpoint="/ws/staff/", enabled=None)
    page = admin_browser.get("/admin/wsreject/accessrule/").content.decode()
    assert "/admin/wsreject/accessrule/endpoints/" in page and "/admin/wsreject/accessrule/denials/" in page
    assert "503 Down for maintenance (Retry-After: 120)" in page
    assert values(rule_form(admin_browser, AccessRule.objects.get()), "endpoint") == ["/ws/staff/"]


def test_a_rule_on_a_route_name_covers_both_mounts(admin_browser, demo_tokens):
    """The demo names its routes, so "rooms" closes /ws/rooms/… and /ws/browser/rooms/… alike."""
    response = admin_browser.post(
        "/admin/wsreject/accessrule/add/",
        {"endpoint": "rooms", "retry_after": "30", "disabled_detail": "Rooms are closed", "deny_status": "403", "deny_detail": "Forbidden"},
    )
    assert response.status_code == 302, response.content[:2000]
    http = connect("/ws/rooms/lobby/", demo_tokens["alice"])
    assert (http.status_code, http.json()) == (503, {"detail": "Rooms are closed"})
    assert http.header("retry-after") == "30"
    assert connect("/ws/echo/").accepted
