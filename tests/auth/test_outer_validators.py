"""Channels' ``AllowedHostsOriginValidator`` around the wsreject stack (``tests.auth.outer_asgi``):
check ``wsreject.W012`` says why it should go, and everything that reads the routing —
endpoint discovery, ``migrate``'s declared permissions, the admin's "Who can connect" page,
access rules — still sees through it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from channels.security.websocket import OriginValidator
from django.contrib.auth.models import Permission
from django.core.management import call_command

from tests.support.servers import REPO_ROOT
from wsreject.access.declared_perms import declared_permissions
from wsreject.checks import check_asgi_stack
from wsreject.endpoints import Router, iter_endpoints, project_endpoints
from wsreject.models import AccessRule

from . import outer_asgi
from .support import assert_401, authorization, connect, denial, greeting

OUTER = "tests.auth.outer_asgi.application"


@pytest.fixture
def outer(settings):
    settings.ASGI_APPLICATION = OUTER


def demo_routes() -> list[str]:
    from project.asgi import application

    return [endpoint.route for endpoint in iter_endpoints(application)]


def test_the_stack_really_is_inside_a_validator():
    websocket = outer_asgi.application.application_mapping["websocket"]
    assert isinstance(websocket, OriginValidator)


def test_w012_is_reported(outer):
    warnings = [message for message in check_asgi_stack() if message.id == "wsreject.W012"]
    assert len(warnings) == 1
    assert "AllowedHostsOriginValidator" in warnings[0].msg and OUTER in warnings[0].msg
    assert "OriginMiddleware" in warnings[0].hint
    assert [m.id for m in check_asgi_stack() if m.id != "wsreject.W012"] == []


def test_w012_is_not_reported_for_the_demo():
    assert [message.id for message in check_asgi_stack()] == []


def test_manage_py_check_reports_w012():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.auth.outer_settings", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # a warning, not an error
    assert "(wsreject.W012) Channels' OriginValidator (or AllowedHostsOriginValidator) wraps the wsreject stack" in output
    assert "System check identified 1 issue" in output, output


def test_endpoint_discovery_looks_through_the_validator(outer):
    routes = [endpoint.route for endpoint in project_endpoints()]
    assert routes == ["/ws/moderate/", *demo_routes()]
    assert {"/ws/private/", "/ws/rooms/<slug:name>/", "/ws/browser/rooms/<slug:name>/"} <= set(routes)
    by_route = {endpoint.route: endpoint for endpoint in project_endpoints()}
    assert by_route["/ws/moderate/"].consumer_class is outer_asgi.ModeratorConsumer
    assert by_route["/ws/browser/private/"].denial_mode == "close_code"

    routed = Router(outer_asgi.application).resolve({"type": "websocket", "path": "/ws//rooms/lobby/"})
    assert routed is not None
    assert (routed.endpoint.route, routed.path) == ("/ws/rooms/<slug:name>/", "/ws/rooms/lobby/")


def test_declared_permissions_are_found_through_the_validator(outer):
    declared = declared_permissions()
    assert declared[outer_asgi.MODERATE] == "Can moderate rooms over a WebSocket"
    assert "chat.join_room" in declared


@pytest.mark.django_db(transaction=True)
def test_migrate_creates_the_declared_permission(outer):
    codename = outer_asgi.MODERATE.split(".")[1]
    Permission.objects.filter(content_type__app_label="chat", codename=codename).delete()
    call_command("migrate", verbosity=0, interactive=False)
    permission = Permission.objects.get(content_type__app_label="chat", codename=codename)
    assert permission.name == "Can moderate rooms over a WebSocket"


@pytest.mark.django_db(transaction=True)
def test_who_can_connect_lists_the_endpoints(outer, admin_client):
    response = admin_client.get("/admin/wsreject/accessrule/endpoints/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "No WebSocket endpoints found" not in page
    assert "<code>/ws/moderate/</code>" in page and "ModeratorConsumer" in page
    for route in demo_routes():
        assert f"<code>{route.replace('<', '&lt;').replace('>', '&gt;')}</code>" in page, route


ALLOWED = [(b"origin", b"http://localhost:8000")]


async def test_at_runtime_the_validator_answers_for_wsreject(outer, demo_tokens):
    """What W012 warns about: a foreign origin, and a client that sends no Origin at all
    (every non-browser client; wsreject's ALLOW_MISSING_ORIGIN lets those through), get the
    server's bare 403 (a close before accept), never wsreject's JSON."""
    app = outer_asgi.application
    alice = authorization("Bearer", demo_tokens["alice"])
    for headers in ([(b"origin", b"http://evil.example")], [], alice):
        _, result = await connect("/ws/private/", headers, app=app)
        assert (result.status_code, result.denial_mode, result.body) == (403, "close", b""), headers

    # An allowed origin reaches wsreject's stack.
    assert_401(await denial("/ws/private/", ALLOWED, app=app), "Not authenticated", "Bearer")
    assert await greeting("/ws/private/", alice + ALLOWED, app=app) == {"user": "alice"}
    result = await denial("/ws/moderate/", alice + ALLOWED, app=app)
    assert (result.status_code, result.json()) == (403, {"detail": "Forbidden"})


async def test_access_rules_apply_through_the_validator(outer, demo_tokens):
    await sync_to_async(AccessRule.objects.create)(endpoint="rooms", enabled=False, retry_after=30)
    alice = authorization("Bearer", demo_tokens["alice"])
    for path in ("/ws/rooms/lobby/", "/ws//rooms/lobby/"):
        result = await denial(path, alice + ALLOWED, app=outer_asgi.application)
        assert (result.status_code, result.json(), result.header("retry-after")) == (503, {"detail": "Down for maintenance"}, "30")
