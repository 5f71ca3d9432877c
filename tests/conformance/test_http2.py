"""The denial modes other than an HTTP response, over HTTP/2 (RFC 8441) on hypercorn, and
close-code mode over HTTP/3 (RFC 9220) too.

``test_conformance.py`` plays every case over HTTP/2 in the default mode (``hypercorn-h2``).
Here, with the probe's ``h2`` client on a real hypercorn:

* **close-code mode** (the demo's ``/ws/browser/`` endpoints): the CONNECT gets its 200,
  then one ``{"detail": ...}`` frame and a close with ``4000 + status`` whose reason is the
  detail cut to 123 bytes on a character boundary — as over HTTP/1.1
  (``tests/e2e/test_matrix.py``);
* **close-code mode over HTTP/3** (hypercorn with ``--quic-bind``, ``http3.py``): the same;
* **the fallback setting** (``tests/e2e/settings_close_code.py``: ``FALLBACK =
  "close_code"``) changes nothing over HTTP/2: hypercorn advertises the denial extension on
  HTTP/2 streams too, so a denial stays the HTTP response, identical to the default settings'.
  No server here offers WebSockets over HTTP/2 without the extension, so the fallback
  itself has nothing to run on (docs/servers.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conformance.cases import CASES_BY_ID, LONG_DETAIL, compact_json, deny_path
from tests.conformance.http3 import prepare, read_until_closed
from tests.support.demo import DEMO_APP, DemoData, prepare_demo
from tests.support.servers import Server, running_server
from wsreject.probe import CloseCodeDenied, Denied, UpgradeRequest, parse_url
from wsreject.probe.h2 import probe_h2

pytestmark = [pytest.mark.server]

CLOSE_CODE_SETTINGS = "tests.e2e.settings_close_code"
LONG_UNICODE_DETAIL = "ü" * 100  # 200 bytes of UTF-8: the 123-byte cut falls inside a character
CLOSE_CODE_CASES = {
    "case-2": ("/ws/browser/private/", 401, "Not authenticated"),
    "case-12": ("/ws/browser/maintenance/", 503, "Down for maintenance"),
    "case-16": ("/ws/browser/broken/", 500, "Internal Server Error"),
    "long-ascii-detail": ("/ws/browser/" + deny_path(413, detail=LONG_DETAIL)[len("/ws/"):], 413, LONG_DETAIL),
    "long-utf8-detail": ("/ws/browser/" + deny_path(400, detail=LONG_UNICODE_DETAIL)[len("/ws/"):], 400, LONG_UNICODE_DETAIL),
}
# Denials in the default mode, played with both settings.
HTTP_CASES = ("s02-private-no-credential", "s12-maintenance", "s15-origin-evil", "deny-422-unicode-detail", "s17-teapot")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return prepare_demo(tmp_path_factory.mktemp("h2-modes"))


@pytest.fixture(scope="module")
def hypercorn(demo: DemoData) -> Iterator[Server]:
    with running_server("hypercorn", DEMO_APP, env=demo.env) as server:
        yield server


@pytest.fixture(scope="module")
def hypercorn_fallback_close_code(demo: DemoData) -> Iterator[Server]:
    with running_server("hypercorn", DEMO_APP, env={**demo.env, "DJANGO_SETTINGS_MODULE": CLOSE_CODE_SETTINGS}) as server:
        yield server


def _request(server: Server, path: str, headers=(), origin: str | None = None) -> UpgradeRequest:
    return UpgradeRequest(parse_url(server.url(path)), headers=list(headers), origin=origin)


def _truncated(text: str, limit: int = 123) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


@pytest.fixture(scope="module")
def close_code_outcomes(hypercorn: Server):
    with ThreadPoolExecutor(len(CLOSE_CODE_CASES)) as pool:
        futures = {
            name: pool.submit(probe_h2, _request(hypercorn, path), timeout=5.0, wait=5.0)
            for name, (path, _, _) in CLOSE_CODE_CASES.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", CLOSE_CODE_CASES)
def test_close_code_mode_over_http2(close_code_outcomes, name: str) -> None:
    _, status, detail = CLOSE_CODE_CASES[name]
    outcome = close_code_outcomes[name]
    assert isinstance(outcome, CloseCodeDenied), outcome
    assert (outcome.head.http_version, outcome.head.status) == ("HTTP/2", 200)
    assert outcome.detail == detail
    assert outcome.close.code == 4000 + status
    assert outcome.close.reason == _truncated(detail)


def _play_http(server: Server, case_id: str, tokens: dict[str, str]) -> Denied:
    resolved = CASES_BY_ID[case_id].resolve(tokens)
    outcome = probe_h2(_request(server, resolved.path, resolved.headers, resolved.origin), timeout=5.0)
    assert isinstance(outcome, Denied), (case_id, outcome)
    return outcome


@pytest.mark.parametrize("case_id", HTTP_CASES)
def test_the_fallback_setting_changes_nothing_over_http2(
    hypercorn: Server, hypercorn_fallback_close_code: Server, demo: DemoData, case_id: str
) -> None:
    """The same denial with FALLBACK = "close_code" as with the default settings, and the
    case's expected status, headers and body."""
    default = _play_http(hypercorn, case_id, demo.tokens)
    with_fallback = _play_http(hypercorn_fallback_close_code, case_id, demo.tokens)
    expect = CASES_BY_ID[case_id].expect
    for outcome in (default, with_fallback):
        assert outcome.head.status == expect.status
        assert outcome.body == expect.body
        for name, _ in expect.headers:
            assert outcome.head.values(name) == expect.values(name), name
    drop = ("date", "server")
    assert [h for h in default.head.headers if h[0] not in drop] == [h for h in with_fallback.head.headers if h[0] not in drop]


@pytest.fixture(scope="module")
def hypercorn_h3(demo: DemoData, tmp_path_factory):
    setup = prepare(tmp_path_factory.mktemp("h3"))
    with running_server("hypercorn", DEMO_APP, env=demo.env, extra_args=setup.server_args(), ready="tcp"):
        yield setup


async def test_close_code_mode_over_http3(hypercorn_h3) -> None:
    tunnels = await asyncio.gather(*(read_until_closed(hypercorn_h3, path) for path, _, _ in CLOSE_CODE_CASES.values()))
    for (name, (_, status, detail)), tunnel in zip(CLOSE_CODE_CASES.items(), tunnels):
        assert tunnel is not None, name
        assert (tunnel.status, tunnel.messages) == (200, [compact_json({"detail": detail})]), name
        assert (tunnel.close_code, tunnel.close_reason) == (4000 + status, _truncated(detail)), name

