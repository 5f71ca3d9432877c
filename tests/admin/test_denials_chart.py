"""The recent-denials chart in a real headless Chromium: denials made on two uvicorn worker
processes sharing Redis show up per status in the inline SVG (no script), drawn and visible.

Set ``WSREJECT_DOCS_SCREENSHOTS=1`` to refresh ``docs/images/admin-denials-chart.png``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from websockets.exceptions import ConnectionClosed

from tests.browser.conftest import chromium  # noqa: F401  (the module's headless Chromium)
from tests.support.demo import DEMO_APP, manage, prepare_demo
from tests.support.servers import REPO_ROOT, running_server
from tests.support.services import REDIS_URL, redis_unreachable, require
from tests.support.wsclient import Denied, ws_connect

from .admin_client import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = [pytest.mark.browser, pytest.mark.server]

DOCS_SHOT = REPO_ROOT / "docs" / "images" / "admin-denials-chart.png"
WAIT = 30  # seconds; only bounds a failure (a login hashes a password on a loaded machine)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The demo on uvicorn with two worker processes, Django's cache on Redis (flushed)."""
    require(redis_unreachable())
    import redis

    redis.Redis.from_url(REDIS_URL, socket_timeout=2).flushdb()
    data = prepare_demo(tmp_path_factory.mktemp("denials-chart"), {"REDIS_URL": REDIS_URL, "WSREJECT_LOG_LEVEL": "WARNING"})
    manage(
        "createsuperuser", "--noinput", "--username", ADMIN_USERNAME, "--email", "root@example.com",
        env={**data.env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
    )  # fmt: skip
    with running_server("uvicorn-websockets", DEMO_APP, env=data.env, extra_args=["--workers", "2"], startup_timeout=90) as server:
        yield server, data.tokens
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).flushdb()


def make_denials(server, tokens) -> dict[str, int]:
    """Denials of three statuses (HTTP and close-code mode); returns how many of each."""

    async def deny(path: str, token: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        result = await ws_connect(server.url(path), headers=headers)
        if isinstance(result, Denied):
            return result.status
        await result.recv()  # close-code mode: the detail frame, then the close 4000 + status
        with pytest.raises(ConnectionClosed):
            await result.recv()
        assert result.close_code is not None
        return result.close_code - 4000

    async def run() -> list[int]:
        paths = [("/ws/private/", None)] * 12 + [("/ws/browser/private/", None)] * 3
        paths += [("/ws/rooms/lobby/", tokens["bob"])] * 7
        paths += [(f"/ws/{secrets.token_hex(4)}/", None) for _ in range(5)]
        return list(await asyncio.gather(*(deny(path, token) for path, token in paths)))

    statuses = asyncio.run(run())
    return {str(status): statuses.count(status) for status in set(statuses)}


def chart_totals(driver) -> dict[str, int]:
    lines = driver.find_elements(By.CSS_SELECTOR, "svg#wsreject-denials-chart polyline.wsreject-series")
    return {line.get_attribute("data-status"): int(line.get_attribute("data-total")) for line in lines}


def test_the_chart_counts_every_process_per_status(chromium, deployment, tmp_path):  # noqa: F811
    server, tokens = deployment
    made = make_denials(server, tokens)
    assert made == {"401": 15, "403": 7, "404": 5}

    chromium.get(server.http_url("/admin/login/?next=/admin/wsreject/accessrule/denials/"))
    chromium.find_element(By.ID, "id_username").send_keys(ADMIN_USERNAME)
    chromium.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
    chromium.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(chromium, WAIT).until(EC.presence_of_element_located((By.ID, "wsreject-denials-chart")))

    def counted(driver) -> bool:  # each worker adds its counts to the cache within a second or so
        if chart_totals(driver) == made:
            return True
        driver.refresh()
        return False

    WebDriverWait(chromium, WAIT, poll_frequency=0.5).until(counted)
    assert chart_totals(chromium) == made

    chart = chromium.find_element(By.ID, "wsreject-denials-chart")
    assert chart.tag_name == "svg" and chart.is_displayed()
    assert chart.size["width"] > 600 and chart.size["height"] > 200
    # Drawn by the browser: every series has a real extent, and nothing on the page is script-made.
    extents = chromium.execute_script(
        "return [...document.querySelectorAll('#wsreject-denials-chart polyline')]"
        ".map(p => { const b = p.getBBox(); return [b.width, b.height]; });"
    )
    assert extents and all(width > 500 for width, _height in extents)  # the whole hour wide
    assert any(height > 0 for _width, height in extents)
    assert chromium.find_elements(By.CSS_SELECTOR, "#content-main script") == []
    legend = chart.find_elements(By.TAG_NAME, "text")
    assert {"401: 15", "403: 7", "404: 5"} <= {text.text for text in legend}

    figure = chromium.find_element(By.ID, "wsreject-denials-per-minute")
    shot = tmp_path / "admin-denials-chart.png"
    shot.write_bytes(figure.screenshot_as_png)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("WSREJECT_DOCS_SCREENSHOTS") == "1":
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        Path(DOCS_SHOT).write_bytes(shot.read_bytes())
