"""The targets of the conformance runner and the two apps played on each.

A *target* is ``in-process`` (the ASGI application called directly, with the
``websocket.http.response`` extension advertised) or a real server kind of
``tests/support/servers.py`` (over HTTP/1.1), or such a kind over HTTP/2 (``<kind>-h2``,
``http2.py``); the *apps* are the FastAPI reference and the Django demo.
"""

from __future__ import annotations

from tests.conformance.http2 import H2_TARGETS, H3_TARGETS
from tests.support.servers import DENIAL_EXTENSION_KINDS, server_version

IN_PROCESS = "in-process"
# The servers with the denial extension. Stock Daphne has none, so the two apps cannot agree
# there: tests/e2e/test_matrix.py plays it, and so does the upgrade replay (upgrade.py).
# The same cases over HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) on the servers that offer them:
# tests/conformance/http2.py and http3.py.
SERVER_TARGETS = (*DENIAL_EXTENSION_KINDS, *H2_TARGETS, *H3_TARGETS)
TARGETS = (IN_PROCESS, *SERVER_TARGETS)
APPS = ("reference", "demo")
APP_IMPORTS = {
    "reference": "tests.conformance.reference_fastapi:app",
    "demo": "project.asgi:application",
}
SHORT_TARGET = {
    IN_PROCESS: "in-proc",
    "daphne-wsreject": "daphne+wsr",
    "uvicorn-websockets": "uv-ws",
    "uvicorn-websockets-sansio": "uv-sansio",
    "uvicorn-wsproto": "uv-wsproto",
    "hypercorn": "hypercorn",
    "granian": "granian",
    "hypercorn-h2": "hc-h2",
    "hypercorn-h3": "hc-h3",
}


def target_version(target: str) -> str:
    if target == IN_PROCESS:
        from importlib import metadata

        return f"ASGI, fastapi {metadata.version('fastapi')}, channels {metadata.version('channels')}"
    return server_version(target)
