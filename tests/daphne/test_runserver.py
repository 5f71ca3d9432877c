"""``manage.py runserver`` and check ``wsreject.W010``: the app order decides whose
runserver Django runs."""

import sys

import pytest

from tests.security.rawhttp import exchange
from tests.support.demo import prepare_demo
from tests.support.servers import running_process
from tests.support.wsclient import raw_handshake, raw_handshake_bytes
from wsreject.daphne.checks import check_daphne_order, daphne_order_warnings


@pytest.mark.parametrize(
    ("apps", "warned"),
    [
        pytest.param(["wsreject", "daphne", "django.contrib.staticfiles"], False, id="wsreject-first"),
        pytest.param(["daphne", "wsreject"], True, id="daphne-first"),
        pytest.param(["wsreject"], False, id="no-daphne"),
        pytest.param(["daphne"], False, id="no-wsreject"),
    ],
)
def test_daphne_order_warnings(apps, warned):
    warnings = daphne_order_warnings(apps)
    assert [w.id for w in warnings] == (["wsreject.W010"] if warned else [])
    if warned:
        assert "Move 'wsreject' above 'daphne'" in warnings[0].hint


def test_demo_settings_pass_the_order_check():
    assert check_daphne_order(None) == []


@pytest.fixture
def runserver(request):
    """``python -m django runserver`` on the test apps, wsreject first unless
    parametrized ``daphne_first``."""
    daphne_first = getattr(request, "param", False)
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.daphne.runserver_settings",
        "WSREJECT_TEST_DAPHNE_FIRST": "1" if daphne_first else "0",
    }
    with running_process(
        lambda port: [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"],
        label="runserver",
        env=env,
        ready="tcp",
    ) as server:
        yield server


@pytest.mark.server
async def test_runserver_serves_denials_with_wsreject_first(runserver):
    response = await raw_handshake_bytes(*runserver.address, "/deny")
    assert response.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert response.endswith(b'connection: close\r\n\r\n{"detail":"Not authenticated"}')
    assert "wsreject.W010" not in runserver.log()


@pytest.mark.server
@pytest.mark.parametrize("runserver", [pytest.param(True, id="daphne-first")], indirect=True)
async def test_runserver_is_stock_daphne_with_daphne_first(runserver):
    assert await raw_handshake_bytes(*runserver.address, "/close-before-accept") == b"HTTP/1.1 403 Access denied\r\n\r\n"
    assert "wsreject.W010" in runserver.wait_for_log("wsreject.W010")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo project, migrated and seeded in a fresh SQLite file."""
    return prepare_demo(tmp_path_factory.mktemp("runserver-demo"))


@pytest.fixture(scope="module")
def readme_runserver(demo):
    """runserver on the demo, with the README's LOGGING (a console handler on "wsreject")."""
    env = {**demo.env, "DJANGO_SETTINGS_MODULE": "tests.daphne.runserver_readme_settings", "WSREJECT_LOG_RATE": "none"}
    with running_process(
        lambda port: [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"],
        label="runserver",
        env=env,
        ready="tcp",
    ) as server:
        yield server


@pytest.mark.server
async def test_runserver_prints_one_line_per_denial_with_the_readme_logging(readme_runserver):
    """Issue 18 item 6: the ``wsreject`` logger's line and runserver's own line were two."""
    response = await raw_handshake(*readme_runserver.address, "/ws/private/?denial=once")
    assert response.status == 401
    line = readme_runserver.wait_for_line("/ws/private/", "401")
    log = readme_runserver.log()
    denial_lines = [entry for entry in log.splitlines() if "/ws/private/" in entry and "401" in entry]
    assert denial_lines == [line], log


@pytest.mark.server
def test_runserver_banner_names_wsreject(readme_runserver):
    banner = readme_runserver.wait_for_line("Starting ASGI/Daphne")
    assert "development server (wsreject " in banner


@pytest.mark.server
@pytest.mark.parametrize("value", [b"\xff\xfe", b"/caf\xc3\xa9"], ids=["latin-1", "utf-8"])
def test_runserver_ignores_an_undecodable_root_path(runserver, value):
    """Issue 18 item 9: Daphne decodes ``Daphne-Root-Path`` as ASCII unguarded (a 500)."""
    reply = exchange(runserver.address, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nDaphne-Root-Path: " + value + b"\r\n\r\n")
    assert reply.status == 200
    assert b"ok" in reply.body  # chunked
    assert "Traceback" not in runserver.log()
