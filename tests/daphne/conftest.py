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
