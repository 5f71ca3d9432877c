"""The admin warns (a message, not an error) about a path rule that matches no endpoint, or that
covers only some mounts of a consumer (issue 18, item 10).

The demo mounts every endpoint twice (``/ws/...`` and ``/ws/browser/...``), under one route name
each: a path rule for one mount leaves the other open; the route name covers both.
"""

from __future__ import annotations

import html

import pytest

from wsreject.access.admin import coverage_warnings
from wsreject.endpoints import project_endpoints
from wsreject.models import AccessRule

from .test_access_admin import RULE_DEFAULTS

NO_ENDPOINT = "The rule “{}” matches no WebSocket endpoint, so it changes nothing."
PRIVATE_ONE_MOUNT = (
    "The rule “/ws/private/” covers PrivateConsumer at “/ws/private/” but not at “/ws/browser/private/”. "
    "The route name “private” covers every mount."
)

CASES = {
    "missing-trailing-slash": ("/ws/private", [NO_ENDPOINT.format("/ws/private") + " Did you mean “/ws/private/”?"]),
    "case-slip": ("/ws/PRIVATE/", [NO_ENDPOINT.format("/ws/PRIVATE/") + " Did you mean “/ws/private/”?"]),
    "nothing-near": ("/api/v2/*", [NO_ENDPOINT.format("/api/v2/*")]),
    "one-mount": ("/ws/private/", [PRIVATE_ONE_MOUNT]),
    "one-room-of-one-mount": (
        "/ws/rooms/lobby/",
        [
            "The rule “/ws/rooms/lobby/” covers RoomConsumer at “/ws/rooms/<slug:name>/” but not at "
            "“/ws/browser/rooms/<slug:name>/”. The route name “rooms” covers every mount."
        ],
    ),
    "every-mount-by-prefix": ("/ws/*", []),
    "the-browser-mount-by-prefix-covers-its-own-consumers-only-there": ("/ws/browser/*", "several"),
    "both-mounts-by-parameter": ("/ws/<path:rest>", []),
    "route-name": ("private", []),
    "pattern-for-a-parameterised-route": ("/ws/rooms/<slug:name>/", "rooms-only"),
}


@pytest.mark.parametrize(("pattern", "expected"), CASES.values(), ids=CASES.keys())
def test_coverage_warnings(pattern, expected):
    warnings = coverage_warnings(pattern, project_endpoints())
    if expected == "several":
        assert len(warnings) >= 5 and all("but not at “/ws/" in warning for warning in warnings)
    elif expected == "rooms-only":
        (warning,) = warnings
        assert warning.startswith("The rule “/ws/rooms/<slug:name>/” covers RoomConsumer")
    else:
        assert warnings == expected


def test_mounts_without_one_shared_name_are_listed():
    endpoints = [e for e in project_endpoints() if e.name == "private"]
    renamed = [endpoints[0], type(endpoints[1])(**{**endpoints[1].__dict__, "name": "browser-private"})]
    (warning,) = coverage_warnings(endpoints[0].route, renamed)
    assert warning.endswith("Route names: “browser-private”, “private”.")
    unnamed = [type(e)(**{**e.__dict__, "name": None}) for e in endpoints]
    (warning,) = coverage_warnings(endpoints[0].route, unnamed)
    assert warning.endswith("Add rules for the others, or name the route once in every mount.")


def shown(response) -> str:
    return html.unescape(response.content.decode())


def test_saving_a_rule_that_matches_nothing_warns_and_saves(admin_browser):
    response = admin_browser.post(
        "/admin/wsreject/accessrule/add/", {**RULE_DEFAULTS, "endpoint": "/ws/private", "_save": "Save"}, follow=True
    )
    assert response.status_code == 200
    assert AccessRule.objects.filter(endpoint="/ws/private").exists(), "a warning, not an error"
    page = shown(response)
    assert NO_ENDPOINT.format("/ws/private") + " Did you mean “/ws/private/”?" in page
    assert 'class="warning"' in response.content.decode()


def test_editing_a_rule_to_one_mount_warns(admin_browser):
    rule = AccessRule.objects.create(endpoint="private")
    response = admin_browser.post(
        f"/admin/wsreject/accessrule/{rule.pk}/change/", {**RULE_DEFAULTS, "endpoint": "/ws/private/", "_save": "Save"}, follow=True
    )
    assert PRIVATE_ONE_MOUNT in shown(response)
    rule.refresh_from_db()
    assert rule.endpoint == "/ws/private/"


def test_a_rule_covering_every_mount_gets_no_warning(admin_browser):
    response = admin_browser.post(
        "/admin/wsreject/accessrule/add/", {**RULE_DEFAULTS, "endpoint": "private", "_save": "Save"}, follow=True
    )
    assert AccessRule.objects.filter(endpoint="private").exists()
    assert 'class="warning"' not in response.content.decode()
