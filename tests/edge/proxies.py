"""nginx and Caddy started by the tests, with the configuration ``wsreject_edge_config`` prints.

``running_edge("nginx", deployment_env, app=server, backend=(host, port))`` writes the
generated file into a directory of its own and runs the proxy in the foreground on a free
port of 127.0.0.1, through the harness's :func:`~tests.support.processes.running_process`.
A proxy that is not installed skips the test locally (``./dev test`` installs both) and
fails it on CI (:func:`tests.support.services.require`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.demo import manage
from tests.support.processes import HOST, Server, running_process
from tests.support.services import require

PROXIES = ("nginx", "caddy")


def proxy_missing(proxy: str) -> str | None:
    if shutil.which(proxy) is None and not Path(f"/usr/sbin/{proxy}").exists():
        return f"{proxy} is not installed (./dev test installs Debian's {proxy})"
    return None


def _binary(proxy: str) -> str:
    return shutil.which(proxy) or f"/usr/sbin/{proxy}"


@contextlib.contextmanager
def running_edge(
    proxy: str, env: dict[str, str], *, app: tuple[str, int], backend: tuple[str, int] | None = None
) -> Iterator[Server]:
    """``proxy`` in front of ``app`` (the Django app's address), proxying WebSockets to ``backend``."""
    require(proxy_missing(proxy))
    directory = Path(tempfile.mkdtemp(prefix=f"wsreject-edge-{proxy}-"))

    def command(port: int) -> list[str]:
        args = ["wsreject_edge_config", proxy, "--listen", f"{HOST}:{port}", "--app", f"{app[0]}:{app[1]}"]
        if backend is not None:
            args += ["--backend", f"{backend[0]}:{backend[1]}"]
        config = directory / f"{proxy}-{port}.conf"
        config.write_text(manage(*args, env=env))
        if proxy == "nginx":
            return [_binary("nginx"), "-p", str(directory), "-c", str(config)]
        return [_binary("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"]

    try:
        with running_process(
            command, label=proxy, env={"HOME": str(directory), "XDG_DATA_HOME": str(directory), "XDG_CONFIG_HOME": str(directory)}
        ) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)
