"""The admin's "Explain a decision" page: the same answer as ``wsreject_explain``, with the
checks written as code evaluated, linked from "Who can connect", behind the view permission."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from wsreject.models import AccessRule

from .conftest import connect

pytestmark = pytest.mark.django_db(transaction=True)

EXPLAIN = "/admin/wsreject/accessrule/explain/"


def checks(html: str) -> dict[str, str]:
    """{check: its row's class ("passed"/"refused") and text} from the checks table."""
    table = html.split('id="wsreject-explain-checks"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="(\w+)"><td><code>(.*?)</code></td><td>(.*?)</td>', table, re.DOTALL)
    return {check: f"{kind} {re.sub('<[^>]+>', '', result)}" for kind, check, result in rows}


def outcome(html: str) -> str:
    found = re.search(r'<p id="wsreject-explain-outcome">(.*?)</p>', html, re.DOTALL)
    assert found, "no outcome on the page"
    return re.sub("<[^>]+>", "", found[1]).strip()


def test_who_can_connect_links_to_the_page(admin_browser, demo_tokens):
    page = admin_browser.get("/admin/wsreject/accessrule/endpoints/").content.decode()
    assert f'href="{EXPLAIN}"' in page
    form = admin_browser.get(EXPLAIN)
    assert form.status_code == 200
    assert "/ws/rooms/&lt;slug:name&gt;/" in form.content.decode()  # the endpoints to pick from
    assert "explanation" not in form.context  # nothing decided before the form is sent


def test_bob_is_refused_a_room_by_the_permission_and_alice_admitted(admin_browser, demo_tokens):
    page = admin_browser.get(EXPLAIN, {"username": "bob", "path": "/ws/rooms/lobby/"})
    assert page.status_code == 200
    html = page.content.decode()
    assert checks(html)["HasPermissions(&#x27;chat.join_room&#x27;,)"] == "refused refused 403 Not allowed to join this room"
    assert outcome(html).startswith("Outcome: denied 403 &#x27;Not allowed to join this room&#x27;, refused by HasPermissions")
    assert "project.chat.consumers.RoomConsumer" in html
    assert connect("/ws/rooms/lobby/", demo_tokens["bob"]).status_code == 403  # what the server does

    html = admin_browser.get(EXPLAIN, {"username": "alice", "path": "/ws/rooms/lobby/"}).content.decode()
    assert checks(html)["object checks on &lt;Room: lobby&gt;"] == "passed passed"  # code checks evaluated
    assert outcome(html) == "Outcome: admitted (101)"


def test_an_access_rule_and_a_throttle_are_evaluated(admin_browser, demo_tokens):
    AccessRule.objects.create(endpoint="/ws/staff/", enabled=False, retry_after=30)
    html = admin_browser.get(EXPLAIN, {"username": "carol", "path": "/ws/staff/"}).content.decode()
    assert checks(html)["access rules"].startswith("refused refused 503")
    assert "refused by access rules" in outcome(html)
    for _ in range(4):  # a peek spends nothing: the limit (3) is never reached
        html = admin_browser.get(EXPLAIN, {"username": "carol", "path": "/ws/limited/"}).content.decode()
    assert checks(html)["Throttle(3/60s)"] == "passed passed"
    assert outcome(html) == "Outcome: admitted (101)"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"username": "nobody", "path": "/ws/echo/"}, "No such user."),
        ({"username": "bob", "path": "ws/echo/"}, "A path starts with"),
        ({"username": "bob", "path": "/ws/echo/", "headers": "no colon"}, "expected &#x27;Name: value&#x27;"),
        ({"username": "bob", "path": "/ws/echo/", "headers": "X-Note: \u20ac"}, "must be Latin-1"),
        ({"username": "bob", "path": "/ws/echo/", "origin": "https://a\x01"}, "control character"),
    ],
)
def test_bad_input_is_a_form_error_not_a_decision(admin_browser, demo_tokens, query, error):
    page = admin_browser.get(EXPLAIN, query)
    assert page.status_code == 200
    assert error in page.content.decode()
    assert "explanation" not in page.context


def test_headers_and_origin_reach_the_checks(admin_browser, demo_tokens):
    html = admin_browser.get(
        EXPLAIN, {"username": "alice", "path": "/ws/echo/", "origin": "https://evil.example"}
    ).content.decode()
    assert checks(html)["Origin"] == "refused refused 403 Origin not allowed"


def test_the_page_needs_the_view_permission(demo_tokens, fast_hasher):
    get_user_model().objects.create_user("editor", password="pw-editor-123", is_staff=True)
    client = Client()
    client.login(username="editor", password="pw-editor-123")
    assert client.get(EXPLAIN, {"username": "bob", "path": "/ws/rooms/lobby/"}).status_code == 403
    assert Client().get(EXPLAIN).status_code == 302  # anonymous: to the login page
