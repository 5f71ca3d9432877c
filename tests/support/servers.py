"""The ASGI server kinds of the test suite, started as real subprocesses on 127.0.0.1.

Primary API::

    with running_server("uvicorn-wsproto", "tests.conformance.reference_fastapi:app",
                        env={"WSREJECT_REF_TOKENS": "{}"}) as server:
        server.url("/ws/echo/")      # "ws://127.0.0.1:PORT/ws/echo/"
        server.log()                 # captured stdout + stderr so far

This module is the public face of the harness: the kinds and their command lines live
here; spawning, readiness and teardown are ``tests/support/processes.py``
(``running_process``, ``Server``, ``free_port`` ...), and what each server does
differently from the scenario is ``tests/support/quirks.py`` (``SERVER_QUIRKS``,
``applied_quirks`` ...). Everything is re-exported, so ``from tests.support.servers
import ...`` keeps working for all of it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tests.support.processes import (  # noqa: F401 - re-exported
    HOST,
    REPO_ROOT,
    Server,
    ServerStartError,
    free_port,
    probe_http,
    probe_tcp,
    running_process,
    stop_process,
)
from tests.support.quirks import (  # noqa: F401 - re-exported
    EVIDENCE,
    KIND_DISTRIBUTIONS,
    MEASURED,
    MODIFICATIONS,
    REPLACEMENTS,
    SERVER_DISTRIBUTIONS,
    SERVER_QUIRKS,
    STOCK_DAPHNE_FALLBACKS,
    Quirk,
    applied_quirks,
    denial_detail,
    expected_on_server,
    has_quirk,
    installed_versions,
    is_measured,
    quirk_keys,
    quirks,
    server_version,
    unmeasured_message,
)

SERVER_KINDS = (
    "daphne-wsreject",
    "daphne-stock",
    "uvicorn-websockets",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
)
# Also startable: uvicorn's default WebSocket implementation in 0.54 (``--ws auto`` picks
# websockets-sansio when ``websockets`` is installed); ``--ws websockets`` is deprecated there.
EXTRA_SERVER_KINDS = ("uvicorn-websockets-sansio",)
ALL_SERVER_KINDS = SERVER_KINDS + EXTRA_SERVER_KINDS
# The kinds that implement the ASGI WebSocket Denial Response extension.
DENIAL_EXTENSION_KINDS = (
    "daphne-wsreject",
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
)

def server_command(kind: str, app: str, port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves ``app`` ("module:attr") on 127.0.0.1:``port``."""
    py = sys.executable
    extra = list(extra_args)
    if kind == "daphne-wsreject":
        return [py, "-m", "wsreject.daphne", "-b", HOST, "-p", str(port), *extra, app]
    if kind == "daphne-stock":
        return [py, "-m", "daphne", "-b", HOST, "-p", str(port), *extra, app]
    if kind.startswith("uvicorn-"):
        ws = {
            "uvicorn-websockets": "websockets",
            "uvicorn-websockets-sansio": "websockets-sansio",
            "uvicorn-wsproto": "wsproto",
        }[kind]
        return [
            py, "-m", "uvicorn",
            "--host", HOST, "--port", str(port),
            "--ws", ws,
            "--lifespan", "off",
            "--no-access-log",
            "--log-level", "info",
            *extra, app,
        ]  # fmt: skip
    if kind == "hypercorn":
        return [
            py, "-m", "hypercorn",
            "--bind", f"{HOST}:{port}",
            "--workers", "1",
            # hypercorn logs nothing unless told where to.
            "--error-logfile", "-",
            *extra, app,
        ]  # fmt: skip
    if kind == "granian":
        return [
            py, "-m", "granian",
            "--interface", "asgi",
            "--host", HOST, "--port", str(port),
            "--workers", "1",
            # HTTP/1.1 only: a WebSocket handshake is HTTP/1.1, no protocol sniffing needed.
            "--http", "1",
            "--no-respawn-failed-workers",
            *extra, app,
        ]  # fmt: skip
    raise ValueError(f"unknown server kind {kind!r}; expected one of {ALL_SERVER_KINDS}")


@contextlib.contextmanager
def running_server(
    kind: str,
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 20.0,
    ready: str = "http",
    attempts: int = 3,
) -> Iterator[Server]:
    """Serve ``app`` ("module:attr") with server ``kind`` on 127.0.0.1 for the duration of
    the block (``extra_args`` go before the app); the rest is :func:`running_process`."""
    if kind not in ALL_SERVER_KINDS:
        raise ValueError(f"unknown server kind {kind!r}; expected one of {ALL_SERVER_KINDS}")
    if ":" not in app:
        raise ValueError(f"app must be an import string 'module:attr', got {app!r}")
    with running_process(
        lambda port: server_command(kind, app, port, extra_args),
        label=kind, env=env, cwd=cwd, startup_timeout=startup_timeout, ready=ready, attempts=attempts,
        version=server_version(kind),
    ) as server:
        yield server


# --- pytest glue --------------------------------------------------------------------------


def server_fixture(
    kind: str | None,
    app: str,
    *,
    scope: str = "module",
    env: dict[str, str] | Callable[..., dict[str, str]] | None = None,
    params: Sequence[str] | None = None,
    **kwargs,
):
    """Build a pytest fixture that runs ``app`` on ``kind`` (or on each of ``params``).

    ``env`` may be a callable taking the pytest ``request``, for values from other
    fixtures: ``env=lambda request: {"X": request.getfixturevalue("tokens")}``.
    """
    import pytest

    @pytest.fixture(scope=scope, params=list(params) if params else None, ids=list(params) if params else None)
    def _fixture(request):
        server_kind = request.param if params else kind
        resolved = env(request) if callable(env) else env
        with running_server(server_kind, app, env=resolved, **kwargs) as server:
            yield server

    return _fixture
