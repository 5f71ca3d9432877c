"""The routing constructs of issue 16, each through the real stack in process, with rules in the database.

Every one of them was a bypass (101 behind a disabled rule), an outage (503 for the
whole site) or a wrong 404 when the access side walked its own copy of the routing.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.urls import path

from tests.core.asgi_apps import accept_app
from wsreject.checks import check_asgi_stack
from wsreject.decision import decide
from wsreject.models import AccessRule
from wsreject.testing import Accepted, HandshakeCommunicator

from . import apps

pytestmark = pytest.mark.django_db(transaction=True)


def status(path: str) -> int:
    async def run() -> int:
        communicator = HandshakeCommunicator(apps.application, "/")
        communicator.scope.update(path=path, raw_path=path.encode())
        result = await communicator.handshake()
        if isinstance(result, Accepted):
            await communicator.disconnect()
            return 101
        return result.status_code

    return async_to_sync(run)()


def decided(path: str) -> int:
    return async_to_sync(decide)({"path": path}, application=apps.application).status


def disable(endpoint: str) -> None:
    AccessRule.objects.create(endpoint=endpoint, enabled=False, retry_after=10)


@pytest.mark.parametrize(
    ("rule", "refused", "admitted"),
    [
        # A nested URLRouter behind Channels' own middleware.
        ("/t/x/", ["/t/x/", "/t//x/", "//t/x/", "/api/t/x/"], ["/t/y/", "/plain/"]),
        ("t-x", ["/t/x/", "/api//t/x/"], ["/t/y/"]),
        # Behind a project wrapper keeping its router under another attribute name.
        ("/o/room/7/", ["/o/room/7/", "/o/room/007/", "/o//room/07/"], ["/o/room/8/", "/plain/"]),
        ("o-room", ["/o/room/1/"], ["/t/x/"]),
        # wsreject's own stack nested under path().
        ("/s/n/", ["/s/n/", "/s//n/"], ["/plain/"]),
        # A case-insensitive re_path with an optional group: every spelling with the same arguments.
        ("/chat/lobby/", ["/chat/lobby/", "/CHAT/lobby/", "/chat/v1/lobby/", "/Chat/V1/lobby/"], ["/chat/other/"]),
        # An alternation: both branches reach one endpoint with the same arguments.
        ("/feed/3/", ["/feed/3/", "/news/3/"], ["/feed/4/"]),
        # A prefix rule covers the mount, whatever the spelling.
        ("/t/*", ["/t/x/", "/t/y/", "//t//y/"], ["/o/room/1/"]),
    ],
)
def test_a_disabled_rule_refuses_what_channels_routes_there_and_nothing_else(rule, refused, admitted):
    for path_ in refused + admitted:
        assert status(path_) == 101, f"{path_} before the rule"
    disable(rule)
    for path_ in refused:
        assert (status(path_), decided(path_)) == (503, 503), f"{rule} must refuse {path_}"
    for path_ in admitted:
        assert (status(path_), decided(path_)) == (101, 101), f"{rule} must not refuse {path_}"


def test_a_path_rewriting_middleware_inside_the_stack_routes_as_channels_does():
    assert status("/api/plain/") == 101
    assert status("/api/nowhere/") == 404


def test_a_part_that_hides_its_routes_refuses_only_itself_and_the_check_names_it(settings):
    assert (status("/h/z/"), decided("/h/z/")) == (503, 503)
    assert status("/plain/") == 101
    disable("hidden-z")  # a name nobody can see: the hidden part refuses anyway, the rest is unaffected
    assert status("/plain/") == 101
    settings.ASGI_APPLICATION = "tests.routing.apps.application"
    errors = [message for message in check_asgi_stack() if message.id == "wsreject.E031"]
    assert len(errors) == 1 and "'/h/'" in errors[0].msg, errors
    assert errors[0].level >= 40  # an ERROR


def test_routes_added_after_the_first_handshake_are_covered():
    assert status("/plain/") == 101
    apps.behind_channels_auth.routes.append(path("late/", accept_app, name="late"))
    try:
        assert status("/t/late/") == 101
        disable("/t/late/")
        assert status("/t/late/") == 503
        assert status("/t/x/") == 101
    finally:
        apps.behind_channels_auth.routes.pop()


def test_no_route_is_channels_own_404():
    assert (status("/nowhere/"), decided("/nowhere/")) == (404, 404)
    assert (status("/t/nowhere/"), decided("/t/nowhere/")) == (404, 404)
