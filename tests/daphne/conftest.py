"""Fixtures starting real Daphne processes (ours and stock) for the integration tests."""

import pytest

from .servers import free_port, start_server

APP = "tests.daphne.apps:application"
#: Short so the slow-application test stays fast; Daphne's CLI uses it for both the
#: connect timeout and autobahn's opening-handshake timeout.
CONNECT_TIMEOUT = 1


@pytest.fixture(scope="module")
def denial_server(tmp_path_factory):
    """``python -m wsreject.daphne`` serving :mod:`tests.daphne.apps`."""
    port = free_port()
    args = ["-m", "wsreject.daphne", "-b", "127.0.0.1", "-p", str(port)]
    args += ["--websocket_connect_timeout", str(CONNECT_TIMEOUT), APP]
    server = start_server(args, tmp_path_factory.mktemp("wsreject-daphne") / "server.log", port)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stock_daphne(tmp_path_factory):
    """Unmodified ``python -m daphne`` serving the same application, same options."""
    port = free_port()
    args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    args += ["--websocket_connect_timeout", str(CONNECT_TIMEOUT), APP]
    server = start_server(args, tmp_path_factory.mktemp("daphne") / "server.log", port)
    yield server
    server.stop()
