"""``manage.py runserver`` and check ``wsreject.W010``: the app order decides whose
runserver Django runs."""

import sys

import pytest

from tests.support.servers import running_process
from tests.support.wsclient import raw_handshake_bytes
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
