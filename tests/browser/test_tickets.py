"""A single-use ticket in a real headless Chromium: log in on the demo's own login page, let
the page ask ``POST /api/ws-ticket/`` (session cookie + CSRF token) for a ticket, and connect
to ``/ws/browser/private/?ticket=...`` twice. The first connection is alice's; the second is
refused in close-code mode (4401), which a page can read.

Fixtures (``chromium``, ``demo``, ``demo_server`` on each server kind) come from
``tests/browser/conftest.py``.
"""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By

from tests.support.demo import DEMO_PASSWORD

from .waits import WAIT, table_rows, wait_for, wait_for_page

pytestmark = pytest.mark.browser

INVALID_TICKET = "Invalid, expired or already used ticket"
PATH = "/ws/browser/private/"

TICKET_TRY = """
const done = arguments[arguments.length - 1];
window.ticketTry(arguments[0]).then(done, (e) => done({exception: String(e)}));
"""


def log_in(driver, server, username: str) -> None:
    """Submit the demo's login form and wait for the page it leads to: the demo's ``/``,
    showing ``#username`` with ``username`` (never for the login page to go away)."""
    driver.get(server.http_url("/accounts/login/?next=/"))
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(DEMO_PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    home = server.http_url("/")
    wait_for_page(driver, lambda url: url == home, (By.ID, "username"), f"the demo page for {username}", text=username)


def wsreject_lines(server) -> list[str]:
    return [line for line in server.log().splitlines() if " wsreject: " in line]


def test_ticket_opens_once_from_the_page(chromium, demo_server):
    log_in(chromium, demo_server, "alice")
    mark = len(demo_server.log())

    result = chromium.execute_async_script(TICKET_TRY, PATH)

    assert "exception" not in result, result
    assert (result["status"], result["expires_in"]) == (200, 30)
    first, second = result["first"], result["second"]
    assert first["opened"] is True and first["error"] is False, first
    assert [json.loads(frame) for frame in first["frames"]] == [{"user": "alice"}]
    assert second == {
        "path": second["path"],
        "opened": True,
        "code": 4401,
        "reason": INVALID_TICKET,
        "frames": [json.dumps({"detail": INVALID_TICKET}, separators=(",", ":"))],
        "error": False,
    }
    ticket = second["path"].split("?ticket=", 1)[1]
    assert first["path"] == second["path"] == f"{PATH}?ticket={ticket}" and ticket.startswith("wst_")

    # wsreject logs a denial after sending it: the page may read it before the line is written.
    line = demo_server.wait_for_line(" wsreject: ", f"path={PATH} status=401 detail={INVALID_TICKET}", timeout=WAIT, since=mark)
    assert line.endswith("mode=close_code")
    assert not any(ticket in logged for logged in wsreject_lines(demo_server)), "wsreject never logs a ticket"


def test_the_ticket_button(chromium, demo_server):
    log_in(chromium, demo_server, "alice")
    chromium.find_element(By.ID, "ticket-button").click()

    def ticket_rows(driver) -> list[list[str]] | None:
        mine = [row for row in table_rows(driver) if row and row[0].startswith(f"{PATH}?ticket=wst_")]
        return mine if len(mine) == 2 else None

    rows = wait_for(chromium, ticket_rows, "two rows for the ticket button's sockets")
    by_code = {row[2]: row for row in rows}
    assert set(by_code) >= {"4401"}, rows
    refused = by_code.pop("4401")
    assert refused[1:] == ["true", "4401", INVALID_TICKET, json.dumps({"detail": INVALID_TICKET}, separators=(",", ":"))]
    (opened,) = by_code.values()
    assert opened[1] == "true" and json.loads(opened[4]) == {"user": "alice"}, opened
    assert opened[0] == refused[0], "the same ticket, twice"


def test_no_ticket_without_a_login(chromium, demo_server):
    chromium.get(demo_server.http_url("/"))
    home = demo_server.http_url("/")
    wait_for_page(chromium, lambda url: url == home, (By.ID, "login"), "the demo page, logged out")
    result = chromium.execute_async_script(TICKET_TRY, PATH)
    assert result["status"] in (401, 403), result
    assert "first" not in result and "ticket" not in result["body"]
