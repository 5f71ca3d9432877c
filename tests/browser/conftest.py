"""Fixtures for driving a real headless Chromium against the demo on real servers.

* ``chromium``: one Chromium (Debian's ``chromium`` + ``chromium-driver``) per module,
  started through Selenium with explicit paths, so Selenium Manager never runs and
  nothing is downloaded (a guard makes any attempt fail the fixture);
* ``demo``: a migrated, seeded SQLite demo database (once per module);
* ``demo_server``: the demo served on 127.0.0.1 by each server kind in ``BROWSER_SERVER_KINDS``;
* ``foreign_site``: a second, static HTTP server on another port: a page of another origin.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.demo import DEMO_APP, DemoData, prepare_demo
from tests.support.servers import HOST, Server, running_server
from tests.support.services import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without the background-networking switches Chromium keeps dialling Google services;
# on a closed network those refusals pile up and Chromium starts refusing connections
# in batches. QUIC off, no proxy: every connection is plain TCP to 127.0.0.1. Even so,
# Chromium 156 still looks up start.duckduckgo.com, clients2.google.com,
# update.googleapis.com and accounts.google.com (seen with strace): the resolver rule
# answers every name but localhost "not found" without asking the network's DNS.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--window-size=1200,900",
)

# Servers with the denial extension, where ``/ws/...`` denials are real HTTP responses.
BROWSER_SERVER_KINDS = ("uvicorn-websockets", "daphne-wsreject")

# The demo accepts requests for 127.0.0.1 only: the origin test needs a host that is
# *not* in ALLOWED_HOSTS (see test_foreign_origin). The page is always loaded from
# 127.0.0.1, so nothing else changes.
DEMO_ALLOWED_HOSTS = "127.0.0.1"


def _browser_missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not installed: the browser test needs Debian's packages "
        "'chromium' and 'chromium-driver' (apt-get install -y chromium chromium-driver; "
        "./dev test installs them when run as root)"
    )


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> Iterator:
    """One headless Chromium for the module (cookies are cleared before every test)."""
    require(_browser_missing())
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    calls: list[tuple] = []

    def no_selenium_manager(*args, **kwargs):
        calls.append(args)
        raise AssertionError("Selenium Manager was asked for a driver/browser: it would try to download one")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path_factory.mktemp("chromedriver") / "log"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_AVOID_STATS", "true")  # no usage statistics, should anything reach it
        mp.setenv("SE_OFFLINE", "true")  # and no network use at all
        for name in ("NO_PROXY", "no_proxy"):  # Selenium -> chromedriver: never via a proxy
            mp.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))
        mp.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
        driver = webdriver.Chrome(service=service, options=options)
    assert not calls, "Selenium Manager must not run"
    try:
        # Selenium waits for chromedriver without any limit by default: a wedged browser
        # would hang the suite instead of failing it.
        driver.command_executor.client_config.timeout = 60
        driver.set_script_timeout(20)
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def _fresh_cookies(request):
    """Cookies are per host, not per port: a session from one server's test would
    follow the browser to the next server on 127.0.0.1. Start every test logged out."""
    if "chromium" in request.fixturenames:
        # All cookies of the browser, whatever page is showing (WebDriver's own command
        # only reaches the current document's host).
        request.getfixturevalue("chromium").execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("browser-demo"))


@pytest.fixture(scope="module", params=BROWSER_SERVER_KINDS)
def demo_server(request, demo) -> Iterator[Server]:
    # Every denial logged one by one (no LOG_RATE summaries): the tests read each line.
    env = {**demo.env, "DJANGO_ALLOWED_HOSTS": DEMO_ALLOWED_HOSTS, "WSREJECT_LOG_LEVEL": "INFO", "WSREJECT_LOG_RATE": "none"}
    with running_server(request.param, DEMO_APP, env=env) as server:
        yield server


FOREIGN_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head>
<body><p>A page of another origin.</p></body></html>
"""


class _ForeignHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(FOREIGN_PAGE)))
        self.end_headers()
        self.wfile.write(FOREIGN_PAGE)

    def log_message(self, format, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def foreign_site() -> Iterator[int]:
    """A static page on 127.0.0.1 at another port; yields the port."""
    server = http.server.ThreadingHTTPServer((HOST, 0), _ForeignHandler)
    thread = threading.Thread(target=server.serve_forever, name="foreign-site", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def write_screenshot(driver, *paths: Path) -> None:
    """Write the page's screenshot to every path, each replaced whole: a path outside the test's
    own directory (the one people look at) may be written by another run at the same time."""
    png = driver.get_screenshot_as_png()
    for path in paths:
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(png)
        os.replace(partial, path)
