"""Missing pieces fail closed: deleted groups and permissions, invalid rule rows.

A rule restricted to a group or permission that is deleted admits nobody (it never
silently becomes "everybody"); the admin says why, and forgetting the deleted names
restores what is left of the rule. An invalid rule cannot be stored through the model
(``ValidationError``) nor through the database (``IntegrityError`` from the check
constraints, on SQLite and PostgreSQL); a row forced in anyway (constraints ignored
or dropped, or raw values the constraints allow) denies every handshake with 503 and
an ERROR naming the rule.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client

from project.asgi import application
from project.chat.models import Room
from tests.helpers import bearer
from tests.support.demo import DEMO_APP
from tests.support.servers import running_server
from wsreject import DenialResponse, DenyHandshake
from wsreject.authentication.tokens import issue_token
from wsreject.cache.versions import bump_rules
from wsreject.models import AccessRule, AccessRuleGroup, AccessRulePermission
from wsreject.testing import HandshakeCommunicator

from .deployment import POSTGRES_URL, base_env, django_shell, postgres_database

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()
OPS_ONLY = {"detail": "Ops only"}
NOT_AUTHENTICATED = (401, {"detail": "Not authenticated"})


def connect(path: str, token: str | None = None) -> tuple[Any, ...]:
    """One in-process handshake on the demo: ``(101,)``, ``(status, json)`` or ``("close", code, json)``."""

    async def run():
        communicator = HandshakeCommunicator(application, path, headers=bearer(token) if token else [])
        result = await communicator.handshake(close_code=True)
        if result.accepted:
            await communicator.disconnect()
            return (101,)
        await communicator.wait(1)
        if result.denial_mode == "close_code":
            return ("close", result.close_code, result.json())
        return (result.status_code, result.json())

    return async_to_sync(run)()


@pytest.fixture
def people(demo_tokens) -> dict[str, Any]:
    """The demo's users and tokens, carol in a new group ``ops``, and a superuser with a token."""
    ops = Group.objects.create(name="ops")
    User.objects.get(username="carol").groups.add(ops)
    root = User.objects.create_superuser("root", "root@example.com", None)
    return {**demo_tokens, "root": issue_token(root)[1], "ops": ops}


def everyone(people: dict[str, Any], path: str = "/ws/private/") -> dict[str, tuple[Any, ...]]:
    return {who: connect(path, people.get(who)) for who in ("anonymous", "alice", "bob", "carol", "root")}


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_a_deleted_group_admits_nobody(people, how):
    rule = AccessRule.objects.create(endpoint="/ws/private/", deny_status=403, deny_detail="Ops only")
    rule.groups.add(people["ops"])
    assert everyone(people) == {
        "anonymous": NOT_AUTHENTICATED,
        "alice": (403, OPS_ONLY),
        "bob": (403, OPS_ONLY),
        "carol": (101,),
        "root": (101,),  # a superuser passes a rule whose requirements exist
    }
    if how == "instance":
        people["ops"].delete()
    else:
        Group.objects.filter(name="ops").delete()
    assert everyone(people) == {
        "anonymous": NOT_AUTHENTICATED,
        "alice": (403, OPS_ONLY),
        "bob": (403, OPS_ONLY),
        "carol": (403, OPS_ONLY),
        "root": (403, OPS_ONLY),
    }
    assert connect("/ws/echo/") == (101,), "only what the rule covers is closed"
    assert list(AccessRuleGroup.objects.values_list("group_id", "group_name")) == [(None, "ops")]


@pytest.fixture
def watch_ops() -> Permission:
    return Permission.objects.create(
        codename="watch_ops", name="Can watch ops", content_type=ContentType.objects.get_for_model(Room)
    )


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_a_deleted_permission_admits_nobody(people, watch_ops, how):
    rule = AccessRule.objects.create(endpoint="/ws/browser/private/", deny_status=403, deny_detail="Ops only")
    rule.permissions.add(watch_ops)
    User.objects.get(username="carol").user_permissions.add(watch_ops)
    path = "/ws/browser/private/"  # close-code mode: the rule's refusal becomes 4403
    assert everyone(people, path) == {
        "anonymous": ("close", 4401, {"detail": "Not authenticated"}),
        "alice": ("close", 4403, OPS_ONLY),
        "bob": ("close", 4403, OPS_ONLY),
        "carol": (101,),
        "root": (101,),
    }
    if how == "instance":
        watch_ops.delete()
    else:
        Permission.objects.filter(codename="watch_ops").delete()
    refused = ("close", 4403, OPS_ONLY)
    assert everyone(people, path) == {
        "anonymous": ("close", 4401, {"detail": "Not authenticated"}),
        "alice": refused,
        "bob": refused,
        "carol": refused,
        "root": refused,
    }
    assert list(AccessRulePermission.objects.values_list("permission_id", "permission_label")) == [(None, "chat.watch_ops")]


@pytest.fixture
def admin_client(people) -> Client:
    client = Client()
    client.force_login(User.objects.get(username="root"))
    return client


def test_the_admin_says_why_nobody_passes(people, watch_ops, admin_client):
    rule = AccessRule.objects.create(endpoint="/ws/private/", deny_detail="Ops only")
    rule.groups.add(people["ops"])
    rule.permissions.add(watch_ops)
    people["ops"].delete()
    watch_ops.delete()

    listing = admin_client.get("/admin/wsreject/accessrule/").content.decode()
    assert "⚠ deleted: ops" in listing and "⚠ deleted: chat.watch_ops" in listing
    assert "everyone refused: group “ops”, permission “chat.watch_ops” no longer exists" in listing

    page = admin_client.get("/admin/wsreject/accessrule/endpoints/")
    rows = {row.endpoint.route: row for row in page.context["rows"]}
    private = rows["/ws/private/"]
    assert private.nobody == ["/ws/private/: group “ops”", "/ws/private/: permission “chat.watch_ops”"]
    assert not private.users and not private.everyone
    html = page.content.decode()
    assert "Nobody: a rule names what no longer exists" in html
    assert "/ws/private/: group “ops”; /ws/private/: permission “chat.watch_ops”" in html
    assert rows["/ws/echo/"].everyone and not rows["/ws/echo/"].nobody

    form = admin_client.get(f"/admin/wsreject/accessrule/{rule.pk}/change/").content.decode()
    assert "No longer exist: group “ops”, permission “chat.watch_ops”. This rule admits nobody until they are forgotten." in form


def _rule_form(rule: AccessRule, **changes: Any) -> dict[str, Any]:
    data = {
        "endpoint": rule.endpoint,
        "retry_after": str(rule.retry_after),
        "disabled_detail": rule.disabled_detail,
        "deny_status": str(rule.deny_status),
        "deny_detail": rule.deny_detail,
        "allowed_groups": [str(pk) for pk in rule.groups.values_list("pk", flat=True)],
        "required_permissions": [str(pk) for pk in rule.permissions.values_list("pk", flat=True)],
        "_save": "Save",
        **({"enabled": "on"} if rule.enabled else {}),
    }
    return {**data, **changes}


def test_forgetting_deleted_names_restores_what_is_left_of_the_rule(people, watch_ops, admin_client):
    """Groups ops or members may connect; ops is deleted: nobody; forgotten: members again."""
    rule = AccessRule.objects.create(endpoint="/ws/private/", deny_detail="Ops only")
    rule.groups.add(people["ops"], Group.objects.get(name="members"))
    assert {who: answer[0] for who, answer in everyone(people).items()} == {
        "anonymous": 401, "alice": 101, "bob": 403, "carol": 101, "root": 101,
    }  # fmt: skip
    people["ops"].delete()
    assert {who: answer[0] for who, answer in everyone(people).items()} == {
        "anonymous": 401, "alice": 403, "bob": 403, "carol": 403, "root": 403,
    }  # fmt: skip

    # Saving the form without ticking the box keeps the rule closed.
    response = admin_client.post(f"/admin/wsreject/accessrule/{rule.pk}/change/", _rule_form(rule))
    assert response.status_code == 302
    assert connect("/ws/private/", people["alice"]) == (403, OPS_ONLY)

    response = admin_client.post(f"/admin/wsreject/accessrule/{rule.pk}/change/", _rule_form(rule, forget_missing="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert everyone(people) == {
        "anonymous": NOT_AUTHENTICATED,
        "alice": (101,),
        "bob": (403, OPS_ONLY),
        "carol": (403, OPS_ONLY),
        "root": (101,),
    }
    assert list(rule.group_links.values_list("group__name", flat=True)) == ["members"]


# --- invalid rows ---------------------------------------------------------------------------------

INVALID_FIELDS = [
    pytest.param({"endpoint": ""}, id="endpoint-empty"),
    pytest.param({"endpoint": "/ws//rooms/*"}, id="endpoint-empty-segment"),
    pytest.param({"endpoint": "/ws/<nope:x>/"}, id="endpoint-unknown-converter"),
    pytest.param({"endpoint": "/ws/a*b/"}, id="endpoint-inner-star"),
    pytest.param({"endpoint": "rooms lobby"}, id="endpoint-space"),
    pytest.param({"endpoint": "/ws/rooms/?x=1"}, id="endpoint-query"),
    pytest.param({"deny_status": 101}, id="status-101"),
    pytest.param({"deny_status": 200}, id="status-200"),
    pytest.param({"deny_status": 401}, id="status-401"),
    pytest.param({"deny_status": 700}, id="status-700"),
    pytest.param({"deny_status": 599}, id="status-599-unregistered"),
    pytest.param({"deny_status": 420}, id="status-420-unregistered"),
    pytest.param({"retry_after": 86401}, id="retry-after-too-long"),
    pytest.param({"retry_after": -1}, id="retry-after-negative"),
]


@pytest.mark.parametrize("fields", INVALID_FIELDS)
def test_the_model_refuses_invalid_rules(fields):
    with pytest.raises(ValidationError):
        AccessRule.objects.create(**{"endpoint": "/ws/private/", **fields})
    rule = AccessRule.objects.create(endpoint="/ws/private/")
    for name, value in fields.items():
        setattr(rule, name, value)
    with pytest.raises(ValidationError):
        rule.save()
    assert AccessRule.objects.get().endpoint == "/ws/private/"


# What the check constraints refuse (the rest needs Python to validate: see the forced rows below).
CONSTRAINED = {
    "status-101": {"deny_status": 101},
    "status-200": {"deny_status": 200},
    "status-401": {"deny_status": 401},
    "status-700": {"deny_status": 700},
    "retry-after-too-long": {"retry_after": 86401},
    "retry-after-negative": {"retry_after": -1},
    "endpoint-empty": {"endpoint": ""},
}


@pytest.mark.parametrize("fields", CONSTRAINED.values(), ids=CONSTRAINED.keys())
def test_sqlite_constraints_refuse_invalid_rules(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessRule.objects.bulk_create([AccessRule(**{"endpoint": "/ws/private/", **fields})])
    AccessRule.objects.create(endpoint="/ws/private/")
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessRule.objects.update(**fields)
    assert AccessRule.objects.get().deny_status == 403


# Runs in a ``manage.py shell`` on PostgreSQL: each constrained value, by bulk_create and update().
PG_CONSTRAINTS = """
from django.db import IntegrityError, transaction
from wsreject.models import AccessRule
cases = json.loads(CASES)
AccessRule.objects.create(endpoint="/ws/private/")
outcome = {}
for label, fields in cases.items():
    for how in ("bulk_create", "update"):
        try:
            with transaction.atomic():
                if how == "bulk_create":
                    AccessRule.objects.bulk_create([AccessRule(**{"endpoint": "/ws/x/", **fields})])
                else:
                    AccessRule.objects.update(**fields)
            outcome[f"{label} {how}"] = "stored"
        except IntegrityError as exc:
            outcome[f"{label} {how}"] = type(exc.__cause__).__name__
result(outcome)
"""


def test_postgresql_constraints_refuse_invalid_rules(postgres_demo_template):
    with postgres_database(postgres_demo_template.location) as name:
        code = f"CASES = {json.dumps(json.dumps(CONSTRAINED))}\n" + PG_CONSTRAINTS
        outcome = django_shell(base_env(f"{POSTGRES_URL}/{name}"), code)
    assert outcome == {f"{label} {how}": "CheckViolation" for label in CONSTRAINED for how in ("bulk_create", "update")}


@contextlib.contextmanager
def sqlite_checks_ignored() -> Iterator[None]:
    """Let rows past SQLite's CHECK constraints, as an old schema or a hand-edited database would."""
    assert connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA ignore_check_constraints = ON")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA ignore_check_constraints = OFF")


FORCED = [
    *INVALID_FIELDS,
    pytest.param({"endpoint": "*"}, id="endpoint-star"),
    pytest.param({"deny_status": 0}, id="status-0"),
]
UNAVAILABLE = (503, {"detail": "Service Unavailable"})


@pytest.mark.parametrize("fields", FORCED)
def test_a_forced_invalid_row_denies_every_handshake(demo_tokens, fields, caplog, monkeypatch):
    monkeypatch.setattr("wsreject.reporting._warned", {})
    rule = AccessRule.objects.create(endpoint="/ws/private/")
    with sqlite_checks_ignored():
        AccessRule.objects.filter(pk=rule.pk).update(**fields)  # no validation, no signal
    bump_rules()  # what the documentation asks for after update()
    stored = AccessRule.objects.values("endpoint", "deny_status", "retry_after").get()
    assert {key: stored[key] for key in fields} == fields

    with caplog.at_level(logging.INFO, logger="wsreject"):
        for path, token in [("/ws/echo/", None), ("/ws/private/", demo_tokens["alice"]), ("/ws/rooms/lobby/", demo_tokens["alice"])]:
            answer = connect(path, token)
            assert answer == UNAVAILABLE, path
        assert connect("/ws/browser/echo/") == ("close", 4503, {"detail": "Service Unavailable"})
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in caplog.records]
    message = errors[0].getMessage()
    assert f"Access rule {rule.pk} ({stored['endpoint']!r}) is invalid" in message
    assert "Traceback" not in caplog.text


def test_the_admin_says_an_invalid_row_closes_everything(people, admin_client):
    """Who can connect and the rule list must not claim "Everyone" while a forced row refuses all."""
    rule = AccessRule.objects.create(endpoint="/ws/staff/")
    with sqlite_checks_ignored():
        AccessRule.objects.filter(pk=rule.pk).update(deny_status=200)
    bump_rules()
    assert connect("/ws/echo/") == UNAVAILABLE
    page = admin_client.get("/admin/wsreject/accessrule/endpoints/")
    rows = {row.endpoint.route: row for row in page.context["rows"]}
    for route in ("/ws/echo/", "/ws/staff/", "/ws/browser/rooms/<slug:name>/"):
        assert [r.pk for r in rows[route].closed_by] == [rule.pk], route
    html = page.content.decode()
    echo_row = html[html.index("<code>/ws/echo/</code>") :].split("</tr>")[0]
    assert "Nobody: closed (503)" in echo_row
    listing = admin_client.get("/admin/wsreject/accessrule/").content.decode()
    assert "every handshake refused (503): this rule is invalid: a denial&#x27;s status must be" in listing
    assert "(400-599), got 200" in listing


@pytest.mark.server
def test_a_forced_row_in_postgresql_denies_every_handshake_on_a_real_server(postgres_demo_template):
    """Constraints dropped in PostgreSQL, a 200 stored: the server answers 503 and logs the rule."""
    code = """
from django.db import connection
from wsreject.models import AccessRule
with connection.cursor() as cursor:
    cursor.execute("ALTER TABLE wsreject_accessrule DROP CONSTRAINT wsreject_accessrule_deny_status_is_an_error")
rule = AccessRule.objects.create(endpoint="rooms")
AccessRule.objects.filter(pk=rule.pk).update(deny_status=200)
result(rule.pk)
"""
    from .rawhttp import exchange, upgrade_request

    with postgres_database(postgres_demo_template.location) as name:
        env = base_env(f"{POSTGRES_URL}/{name}")
        pk = django_shell(env, code)
        with running_server("uvicorn-websockets", DEMO_APP, env=env) as server:
            for target in ("/ws/echo/", "/ws//private/"):
                reply = exchange(server.address, upgrade_request(target, token=postgres_demo_template.tokens["alice"]))
                assert (reply.status, reply.json(), reply.header("retry-after")) == (503, UNAVAILABLE[1], "5"), target
            line = server.wait_for_line("Access rule", "invalid")
        assert "ERROR" in line and f"Access rule {pk} ('rooms') is invalid" in line


def test_denials_that_would_complete_a_handshake_cannot_be_built():
    for status in (101, 200, 204, 301, 399, 600, 0, -1):
        with pytest.raises(ValueError):
            DenyHandshake(status)
        with pytest.raises(ValueError):
            DenialResponse(status)
    for status in (True, "403", 403.0, None):
        with pytest.raises(TypeError):
            DenyHandshake(status)
    assert DenyHandshake(401).status_code == 401 and DenialResponse(599).status_code == 599


def test_a_rule_naming_no_route_refuses_everything(transactional_db, caplog):
    """A typo in a route name would protect nothing: such a rule refuses every routed handshake
    with 503 and an ERROR naming it, until it is fixed (the admin form refuses it up front)."""
    from asgiref.sync import async_to_sync

    from project.asgi import application
    from wsreject.models import AccessRule
    from wsreject.testing import HandshakeCommunicator

    AccessRule.objects.create(endpoint="room")  # the route is "rooms"

    async def handshake(path):
        return await HandshakeCommunicator(application, path).handshake()

    with caplog.at_level("ERROR", logger="wsreject"):
        for path in ("/ws/echo/", "/ws/rooms/lobby/"):
            result = async_to_sync(handshake)(path)
            assert (result.status_code, result.json()) == (503, {"detail": "Service Unavailable"}), path
    assert "no WebSocket route is named 'room'" in caplog.text
    assert async_to_sync(handshake)("/ws/nowhere/").status_code == 404, "an unknown path is still a 404"
