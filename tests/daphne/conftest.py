"""Fixtures starting real Daphne processes (ours and stock) for the integration tests."""

import pytest

from tests.support.servers import running_server

APP = "tests.daphne.apps:application"
#: Short so the slow-application test stays fast; Daphne's CLI uses it for both the
#: connect timeout and autobahn's opening-handshake timeout.
CONNECT_TIMEOUT = 1


def _daphne(kind):
    """``kind`` serving :mod:`tests.daphne.apps` with the short connect timeout, ready when
    its port accepts (a TCP connect: no HTTP request reaches the app or its log)."""
    extra_args = ["--websocket_connect_timeout", str(CONNECT_TIMEOUT)]
    return running_server(kind, APP, extra_args=extra_args, ready="tcp")


@pytest.fixture(scope="module")
def denial_server():
    """``python -m wsreject.daphne`` serving :mod:`tests.daphne.apps`."""
    with _daphne("daphne-wsreject") as server:
        yield server


@pytest.fixture(scope="module")
def stock_daphne():
    """Unmodified ``python -m daphne`` serving the same application, same options."""
    with _daphne("daphne-stock") as server:
        yield server


@pytest.fixture(scope="module")
def peer_server():
    """``python -m wsreject.daphne`` serving the peers' test applications
    (:mod:`tests.daphne.peer_apps`)."""
    with running_server("daphne-wsreject", "tests.daphne.peer_apps:application", ready="tcp") as server:
        yield server


@pytest.fixture(scope="module")
def stock_daphne_peer():
    """Unmodified ``python -m daphne`` serving the same peer applications."""
    with running_server("daphne-stock", "tests.daphne.peer_apps:application", ready="tcp") as server:
        yield server


class Reports:
    """What the applications of :mod:`tests.daphne.peer_apps` reported, by id."""

    def __init__(self, server):
        self.server = server
        self.count = 0

    def path(self, path: str, **options: str) -> tuple[str, str]:
        """``path`` with a fresh report id (and ``options``) in its query, and the id."""
        self.count += 1
        report_id = f"r{self.count}"
        query = "&".join(f"{name}={value}" for name, value in {"id": report_id, **options}.items())
        return f"{path}?{query}", report_id

    def wait(self, report_id: str, timeout: float = 5.0):
        """The value reported under ``report_id`` (waited for, bounded)."""
        import json

        line = self.server.wait_for_line(f"PEER-REPORT {report_id} ", timeout=timeout)
        return json.loads(line.split(f"PEER-REPORT {report_id} ", 1)[1])


@pytest.fixture(scope="module")
def reports(peer_server):
    return Reports(peer_server)
