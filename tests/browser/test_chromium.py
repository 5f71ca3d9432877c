"""A real headless Chromium against the demo, served by real servers on 127.0.0.1.

What a browser page can learn about a refused handshake is fixed by the WHATWG WebSockets
standard, not by us: an HTTP denial reaches script as an ``error`` event and close code 1006
with an empty reason, whatever the status and body. Close-code mode (``/ws/browser/...``) is
the only channel script can read: the handshake succeeds, one ``{"detail": ...}`` text frame
arrives, then a close with ``4000 + status`` and the detail as reason (≤ 123 UTF-8 bytes).

Pages are loaded from the demo itself (``http://127.0.0.1:PORT/``), whose
``window.wsTry(path, timeoutMs)`` reports ``{path, opened, code, reason, frames, error}``;
``PROBE`` below does the same for an absolute URL from any page, and can send a message
and close politely once a frame arrived.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By

from tests.support.demo import DEMO_PASSWORD, manage

from .conftest import write_screenshot
from .waits import WAIT, Locator, table_rows, wait_for_page

pytestmark = pytest.mark.browser

WS_TRY = """
const done = arguments[arguments.length - 1];
window.wsTry(arguments[0], arguments[1]).then(done, (e) => done({exception: String(e)}));
"""

PROBE = """
const [url, message, closeOnFrame, timeoutMs] = arguments;
const done = arguments[arguments.length - 1];
const r = {url: url, opened: false, code: null, reason: null, wasClean: null,
           frames: [], error: false, timedOut: false};
let ws;
try { ws = new WebSocket(url); } catch (e) { r.exception = String(e); done(r); return; }
const timer = setTimeout(() => { r.timedOut = true; done(r); ws.close(); }, timeoutMs);
ws.onopen = () => { r.opened = true; if (message !== null) ws.send(message); };
ws.onerror = () => { r.error = true; };
ws.onmessage = (e) => { r.frames.push(e.data); if (closeOnFrame) ws.close(1000, "seen"); };
ws.onclose = (e) => {
  clearTimeout(timer); r.code = e.code; r.reason = e.reason; r.wasClean = e.wasClean; done(r);
};
"""

DEMO_PATHS = (
    "/ws/private/",
    "/ws/browser/private/",
    "/ws/rooms/lobby/",
    "/ws/browser/rooms/lobby/",
    "/ws/maintenance/",
    "/ws/browser/maintenance/",
    "/ws/browser/does-not-exist/",
)  # what the demo page itself opens, in order (project/chat/templates/chat/index.html)

# 300 characters, 519 UTF-8 bytes; byte 123 falls inside "—" (3 bytes, 121..123).
LONG_DETAIL = ("Zutritt verboten 🚪🚫🔒 入場禁止 — доступ запрещён; " * 10)[:300]


def compact(obj) -> str:
    """Denial frames are byte-exact compact JSON (as FastAPI writes bodies); the consumers'
    own messages come from Channels' ``send_json`` (``json.dumps`` defaults, with spaces)
    and are compared parsed, as the conformance suite does."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of whole characters that fits in ``limit`` UTF-8 bytes."""
    out, size = [], 0
    for ch in text:
        size += len(ch.encode("utf-8"))
        if size > limit:
            break
        out.append(ch)
    return "".join(out)


# How long a page waits for a socket to close: every socket here closes by itself (a denial,
# a close-code close, or the page's own close after the first frame), so this only bounds a
# broken run. Generous, since the machine may be loaded; below the driver's 20 s script timeout.
SOCKET_TIMEOUT_MS = 12_000


def ws_try(driver, path: str, timeout_ms: int = SOCKET_TIMEOUT_MS) -> dict:
    """The demo page's own ``wsTry`` (the page must be the demo's ``/``)."""
    return driver.execute_async_script(WS_TRY, path, timeout_ms)


def probe(driver, url: str, *, message: str | None = None, close_on_frame: bool = False, timeout_ms: int = SOCKET_TIMEOUT_MS) -> dict:
    return driver.execute_async_script(PROBE, url, message, close_on_frame, timeout_ms)


def open_demo_page(driver, server, *, wait_demo: bool = True) -> None:
    """Load the demo page from its own origin; by default let its own sockets finish first,
    and their denials reach the server's log, so the log holds only what the test opens next."""
    mark = len(server.log())
    driver.get(server.http_url("/"))
    assert driver.execute_script("return typeof window.wsTry") == "function"
    if wait_demo:
        assert driver.execute_async_script("window.demoDone.then(arguments[arguments.length - 1])") is True
        # wsreject logs a denial after sending it: the page can be done before the line is written.
        for path, opened, code, *_ in table_rows(driver):
            if opened == "false" or code.startswith("4"):
                server.wait_for_line(f"WebSocket denied: path={path} ", timeout=WAIT, since=mark)


def wait_for_denial_line(server, path: str, status: int, detail: str, transport: str, *, since: int) -> None:
    """Wait for the line of this denial, after ``since`` (``len(server.log())`` before it was asked)."""
    line = server.wait_for_line(f"WebSocket denied: path={path} status={status} detail={detail} ", timeout=WAIT, since=since)
    assert re.search(rf"user=\S+ client=\S+ mode={transport}$", line), line


def page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


# --- 1. HTTP denial mode: the browser hides the status -------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/ws/private/", 401, "Not authenticated"),
        ("/ws/maintenance/", 503, "Down for maintenance"),
        ("/ws/does-not-exist/", 404, "Not Found"),
    ],
)
def test_http_denial_is_1006_for_script(chromium, demo_server, path, status, detail):
    open_demo_page(chromium, demo_server)
    mark = len(demo_server.log())

    result = ws_try(chromium, path)

    # All script may know: it failed. No status, no body, no reason, no frame.
    assert result == {"path": path, "opened": False, "code": 1006, "reason": "", "frames": [], "error": True}
    # ... while the server did answer with the real HTTP status (the denial extension).
    wait_for_denial_line(demo_server, path, status, detail, "http", since=mark)


def test_echo_opens_and_closes_cleanly(chromium, demo_server):
    open_demo_page(chromium, demo_server)
    result = probe(chromium, demo_server.url("/ws/echo/"), message="ping", close_on_frame=True)
    assert result["opened"] is True
    assert result["frames"] == ["ping"]
    # The page closed it with 1000 and the server answered the close: not 1006.
    assert (result["code"], result["wasClean"], result["error"]) == (1000, True, False)


# --- 2. close-code mode: what a page can read ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "detail"),
    [
        ("/ws/browser/private/", 4401, "Not authenticated"),
        ("/ws/browser/maintenance/", 4503, "Down for maintenance"),
        ("/ws/browser/does-not-exist/", 4404, "Not Found"),
    ],
)
def test_close_code_mode_is_readable(chromium, demo_server, path, code, detail):
    open_demo_page(chromium, demo_server)
    result = ws_try(chromium, path)
    assert result == {
        "path": path,
        "opened": True,
        "code": code,
        "reason": detail,
        "frames": [compact({"detail": detail})],
        "error": False,
    }


def test_close_code_reason_is_cut_at_123_bytes_on_a_character_boundary(chromium, demo_server):
    encoded = LONG_DETAIL.encode("utf-8")
    assert len(LONG_DETAIL) == 300 and len(encoded) > 123
    with pytest.raises(UnicodeDecodeError):  # the test is only meaningful if byte 123 splits a character
        encoded[:123].decode("utf-8")
    expected_reason = utf8_prefix(LONG_DETAIL, 123)

    open_demo_page(chromium, demo_server)
    path = "/ws/browser/deny/400/?detail=" + quote(LONG_DETAIL, safe="")
    result = ws_try(chromium, path)

    assert result["opened"] is True and result["error"] is False
    assert result["code"] == 4400
    # A broken character would have made Chromium fail the connection (invalid UTF-8 in
    # a close reason) and report 1006 instead; we get the exact whole-character prefix.
    assert result["reason"] == expected_reason
    assert len(result["reason"].encode("utf-8")) == 121
    assert LONG_DETAIL.startswith(result["reason"])
    # The frame carries the whole detail.
    assert result["frames"] == [compact({"detail": LONG_DETAIL})]


# --- 3. the session cookie authenticates a real browser handshake ----------------------------


def log_in_via_admin(driver, server, username: str, *, lands_on: Callable[[str], bool], then: Locator) -> None:
    """Submit the admin's login form and wait for the answer page: its URL (``lands_on``) and
    an element only the answer has (``then``). Never the form's page going away, nor
    ``document.readyState`` (the login page itself is "complete" when the click returns)."""
    driver.get(server.http_url("/admin/login/?next=/"))
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(DEMO_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for_page(driver, lands_on, then, f"the admin's answer to {username}'s login")


def test_session_cookie_from_admin_login_authenticates_the_handshake(chromium, demo_server):
    # carol is staff, so the admin's login form (CSRF and all) gives the browser a session.
    home = demo_server.http_url("/")
    log_in_via_admin(chromium, demo_server, "carol", lands_on=lambda url: url == home, then=(By.ID, "username"))  # the demo page
    assert chromium.current_url == demo_server.http_url("/")
    assert "You are logged in as carol" in page_text(chromium)
    assert chromium.get_cookie("sessionid") is not None

    # The cookie travels with the handshake: authenticated, but not allowed in the room.
    result = ws_try(chromium, "/ws/browser/rooms/lobby/")
    assert (result["opened"], result["code"], result["reason"]) == (True, 4403, "Not allowed to join this room")
    assert result["frames"] == ['{"detail":"Not allowed to join this room"}']

    # The same cookie on the HTTP-mode stack: private and staff-only endpoints open.
    for path in ("/ws/private/", "/ws/staff/", "/ws/browser/private/"):
        result = probe(chromium, demo_server.url(path), close_on_frame=True)
        assert result["opened"] is True, (path, result)
        assert [json.loads(frame) for frame in result["frames"]] == [{"user": "carol"}], path
        assert result["code"] == 1000, path

    # Without the cookie the same page is anonymous again.
    chromium.delete_all_cookies()
    result = ws_try(chromium, "/ws/browser/private/")
    assert (result["code"], result["reason"]) == (4401, "Not authenticated")


@pytest.fixture(scope="module")
def alice_session_key(demo) -> str:
    """A session for alice made by Django itself (the admin refuses non-staff logins)."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "client.force_login(get_user_model().objects.get(username='alice'))\n"
        "print(client.cookies['sessionid'].value)\n"
    )
    return manage("shell", "-c", code, env=demo.env).strip().splitlines()[-1]


def test_session_cookie_of_a_member(chromium, demo_server, alice_session_key):
    # The admin's login form refuses alice (not staff): no session from there.
    refused = (By.CSS_SELECTOR, ".errornote")  # only the answer has it: the form's URL stays
    log_in_via_admin(chromium, demo_server, "alice", lands_on=lambda url: "/admin/login/" in url, then=refused)
    assert "/admin/login/" in chromium.current_url
    assert "staff account" in chromium.find_element(By.CSS_SELECTOR, ".errornote").text
    assert chromium.get_cookie("sessionid") is None

    # So the browser gets a session cookie created by Django for her (same DB as the server).
    chromium.add_cookie({"name": "sessionid", "value": alice_session_key, "path": "/", "httpOnly": True})
    open_demo_page(chromium, demo_server, wait_demo=False)  # her demo sockets stay open 3 s each
    assert "You are logged in as alice" in page_text(chromium)

    for path in ("/ws/browser/rooms/lobby/", "/ws/rooms/dev/"):
        room = path.rstrip("/").rsplit("/", 1)[1]
        result = probe(chromium, demo_server.url(path), close_on_frame=True)
        assert result["opened"] is True, (path, result)
        assert [json.loads(frame) for frame in result["frames"]] == [{"room": room, "user": "alice"}]
        assert result["code"] == 1000

    result = ws_try(chromium, "/ws/browser/staff/")
    assert (result["opened"], result["code"], result["reason"]) == (True, 4403, "Staff only")
    result = ws_try(chromium, "/ws/browser/rooms/nowhere/")
    assert (result["opened"], result["code"], result["reason"]) == (True, 4404, "Room not found")


# --- 3b. a page of another origin -------------------------------------------------------------


def test_foreign_origin(chromium, demo_server, foreign_site):
    """The demo runs with ``DJANGO_ALLOWED_HOSTS=127.0.0.1`` and no ``ALLOWED_ORIGINS``, so an
    Origin is allowed when its *host* is in ALLOWED_HOSTS; the port is not compared.

    * a page at ``http://localhost:OTHER/`` (host not allowed) is refused: the
      OriginMiddleware of the *outer* stack raises 403 "Origin not allowed" before routing,
      so even ``/ws/browser/...`` is denied in HTTP mode, and the page sees only 1006;
    * a page at ``http://127.0.0.1:OTHER/`` is another origin for the browser, but its
      host is allowed, so it connects: ALLOWED_HOSTS-derived origins trust every port of an
      allowed host (set ``WSREJECT["ALLOWED_ORIGINS"]`` to pin exact origins).
    """
    chromium.get(f"http://localhost:{foreign_site}/")
    assert chromium.execute_script("return location.origin") == f"http://localhost:{foreign_site}"
    for path in ("/ws/browser/echo/", "/ws/echo/"):
        mark = len(demo_server.log())
        result = probe(chromium, demo_server.url(path), message="ping")
        assert (result["opened"], result["code"], result["reason"], result["frames"]) == (False, 1006, "", []), path
        assert result["error"] is True
        wait_for_denial_line(demo_server, path, 403, "Origin not allowed", "http", since=mark)

    chromium.get(f"http://127.0.0.1:{foreign_site}/")
    assert chromium.execute_script("return location.origin") == f"http://127.0.0.1:{foreign_site}"
    result = probe(chromium, demo_server.url("/ws/browser/echo/"), message="ping", close_on_frame=True)
    assert (result["opened"], result["frames"], result["code"]) == (True, ["ping"], 1000)


# --- 4. the demo page, as a person sees it ------------------------------------------------


def test_demo_page_screenshot(chromium, demo_server, tmp_path):
    open_demo_page(chromium, demo_server)  # waits for window.demoDone
    table = table_rows(chromium)
    assert [row[0] for row in table] == list(DEMO_PATHS)
    by_path = {row[0]: row[1:] for row in table}
    assert by_path["/ws/private/"] == ["false", "1006", "", ""]
    assert by_path["/ws/browser/private/"] == ["true", "4401", "Not authenticated", '{"detail":"Not authenticated"}']
    assert by_path["/ws/browser/maintenance/"][:3] == ["true", "4503", "Down for maintenance"]

    shot = tmp_path / f"wsreject-demo-{demo_server.kind}.png"
    write_screenshot(chromium, shot, Path("/tmp/wsreject-demo.png"))
    assert shot.read_bytes().startswith(b"\x89PNG")
