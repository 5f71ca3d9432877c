"""The quirk table keyed to versions (``tests/support/quirks.py``), without any server.

The test that matters on a fresh machine is the first: an installed server version that
was never measured fails here with what to do, instead of failing dozens of conformance
cases with symptoms.
"""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from tests.conformance.cases import CASES, CASES_BY_ID
from tests.support.quirks import (
    EVIDENCE,
    EVIDENCE_SHOWS,
    KIND_DISTRIBUTIONS,
    MEASURED,
    MODIFICATIONS,
    NO,
    PARTLY,
    REPLACEMENTS,
    SERVER_QUIRKS,
    YES,
    Evidence,
    applied_quirks,
    evidence_state,
    installed_versions,
    is_measured,
    quirk_keys,
    quirks,
    server_version,
    unmeasured_message,
)
from tests.support.servers import ALL_SERVER_KINDS
from tests.support.wsclient import RawResponse

G287, G289, G290 = {"granian": "2.8.7"}, {"granian": "2.8.9"}, {"granian": "2.9.0"}


@pytest.mark.parametrize("kind", ALL_SERVER_KINDS)
def test_installed_versions_were_measured(kind: str) -> None:
    message = unmeasured_message(kind)
    if message:
        pytest.fail(message, pytrace=False)


def test_an_unmeasured_version_says_what_to_do() -> None:
    assert unmeasured_message("granian", G290) == (
        "granian 2.9.0 has not been measured: run ./dev upgrade, then record which quirks it has in "
        "tests/support/quirks.py (measured so far: granian==2.8.7; granian==2.8.9)"
    )
    assert unmeasured_message("granian", G289) is None and unmeasured_message("granian", G287) is None
    # A kind decided by two distributions is unmeasured when either moves.
    message = unmeasured_message("uvicorn-websockets", {"uvicorn": "0.54.0", "websockets": "18.0"})
    assert message is not None
    assert message.startswith("uvicorn 0.54.0, websockets 18.0 (uvicorn-websockets) has not been measured: run ./dev upgrade")
    assert not is_measured("hypercorn", {"hypercorn": "0.18.0", "h11": None, "wsproto": "1.3.2"})


def test_the_table_is_well_formed() -> None:
    for kind, entries in SERVER_QUIRKS.items():
        assert kind in KIND_DISTRIBUTIONS and kind in MEASURED, kind
        keys = [quirk.what for quirk in entries]
        assert len(keys) == len(set(keys)), f"{kind}: a quirk listed twice"
        for quirk in entries:
            assert quirk.what in REPLACEMENTS or quirk.what in MODIFICATIONS or quirk.what in EVIDENCE, quirk.what
            assert quirk.versions and set(quirk.versions) <= set(KIND_DISTRIBUTIONS[kind]), (kind, quirk.what)
            for spec in quirk.versions.values():
                SpecifierSet(spec)  # parses
            # Every quirk was seen on some measured version: no entry rests on a guess.
            measured = [{dist: spec.lstrip("=") for dist, spec in combo.items()} for combo in MEASURED[kind]]
            assert any(quirk.applies_to(versions) for versions in measured), (kind, quirk.what)
            assert quirk.why.strip(), (kind, quirk.what)
    assert set(EVIDENCE_SHOWS) == set(EVIDENCE)
    for kind, combinations in MEASURED.items():
        for combination in combinations:
            assert set(combination) == set(KIND_DISTRIBUTIONS[kind]), kind
            assert all(spec.startswith("==") for spec in combination.values()), kind


def test_quirks_follow_the_installed_versions() -> None:
    assert "denial.repeated-header-kills-server" in quirk_keys("granian", G287)
    assert "denial.header-lines-grouped-by-name" not in quirk_keys("granian", G287)
    assert "denial.repeated-header-kills-server" not in quirk_keys("granian", G289)
    assert "denial.header-lines-grouped-by-name" in quirk_keys("granian", G289)
    # Before the first measured version nothing is known; after the last, the quirks seen
    # last are predicted (and ./dev upgrade says which no longer hold).
    assert quirk_keys("granian", {"granian": "2.8.6"}) == set()
    assert quirk_keys("granian", G290) == quirk_keys("granian", G289)
    assert quirk_keys("granian", {"granian": None}) == set()


def test_the_expectation_follows_the_version() -> None:
    case = CASES_BY_ID["deny-401-repeated-header"]
    expect, used = applied_quirks("granian", case, active=quirks("granian", G287))
    assert (expect.status, expect.server_dies, used) == (None, True, ["denial.repeated-header-kills-server"])

    expect, used = applied_quirks("granian", case, active=quirks("granian", G289))
    assert used == ["denial.upgrade-headers-added", "denial.connection-kept-alive"]
    assert expect.status == 401 and expect.closed is False and not expect.server_dies
    assert expect.values("www-authenticate") == ["Bearer", 'Basic realm="rooms"']
    assert expect.values("upgrade") == ["websocket"]


def test_replacements_take_precedence_in_a_fixed_order() -> None:
    """Table order does not matter: the handshake first, then the app's error, then the denial."""
    case = CASES_BY_ID["origin-two-headers"]
    for fallback in (None, "close"):
        expect, used = applied_quirks("daphne-stock", case, fallback=fallback)
        assert used == ["handshake.repeated-origin-400-bare"] and expect.status == 400
    expect, used = applied_quirks("daphne-stock", CASES_BY_ID["s16-broken"], app_raises=True)
    assert used == ["app-error.500-bare"] and expect.status == 500
    expect, used = applied_quirks("daphne-stock", CASES_BY_ID["s02-private-no-credential"], fallback="close_code")
    assert used == [] and expect.accepted and expect.first_message == '{"detail":"Not authenticated"}'


def test_an_app_error_needs_a_quirk() -> None:
    with pytest.raises(ValueError, match="no quirk says what the server answers"):
        applied_quirks("granian", CASES_BY_ID["s16-broken"], app_raises=True, active=[])


def test_server_version_names_every_deciding_distribution() -> None:
    assert server_version("granian", G289) == "granian 2.8.9"
    assert server_version("uvicorn-wsproto", {"uvicorn": "0.54.0", "wsproto": "1.3.2"}) == (
        "uvicorn 0.54.0, wsproto 1.3.2, h11 (not installed)"
    )
    assert set(installed_versions("hypercorn")) == {"hypercorn", "h11", "wsproto"}


# --- evidence ---------------------------------------------------------------------------------


def _response(status: int, headers, reason: str = "Forbidden") -> RawResponse:
    return RawResponse(status=status, reason=reason, http_version="HTTP/1.1", headers=list(headers))


THREE = CASES_BY_ID["deny-403-repeated-header-three"]  # x-reason a, x-other b, x-reason c, x-reason d


def _three(order: list[str]) -> Evidence:
    values = {"x-reason": iter("acd"), "x-other": iter("b")}
    headers = [(name, next(values[name])) for name in order] + [("content-length", "22")]
    return Evidence(cases=[THREE], responses={THREE.id: _response(403, headers)})


def test_header_order_evidence() -> None:
    judge = EVIDENCE["denial.header-lines-grouped-by-name"]
    assert judge(_three(["x-reason", "x-other", "x-reason", "x-reason"])) == NO  # the app's order
    assert judge(_three(["x-reason", "x-reason", "x-reason", "x-other"])) == YES  # granian 2.8.9
    assert judge(_three(["x-other", "x-reason", "x-reason", "x-reason"])) == PARTLY  # anything else
    # No response, or the server's own answer without the app's headers: cannot tell.
    assert judge(Evidence(cases=[THREE], responses={THREE.id: None})) is None
    assert judge(Evidence(cases=[THREE], responses={THREE.id: _response(403, [])})) is None
    # A repeated header without another name in between tells nothing either.
    two = CASES_BY_ID["deny-401-repeated-header"]
    assert judge(Evidence(cases=[two], responses={two.id: _response(401, two.expect.headers)})) is None


def test_reason_phrase_and_log_evidence() -> None:
    judge = EVIDENCE["status-line.no-reason-phrase"]
    responses = {"a": _response(403, [], reason=""), "b": _response(599, [], reason="")}
    assert judge(Evidence(responses=responses)) == YES
    responses["c"] = _response(401, [], reason="Unauthorized")
    assert judge(Evidence(responses=responses)) == PARTLY
    assert judge(Evidence(responses={"b": _response(599, [], reason="")})) is None  # unregistered only
    log_judge = EVIDENCE["log.denial-logged-as-error"]
    line = "ERROR: ASGI callable returned without completing handshake."
    assert log_judge(Evidence(log=line, app="reference")) == YES
    assert log_judge(Evidence(log="INFO: started", app="reference")) == NO
    assert log_judge(Evidence(log="", app="reference")) is None
    assert log_judge(Evidence(log=line, app="demo")) is None, "wsreject yields a loop turn: only the reference can tell"


def test_evidence_over_both_apps() -> None:
    yes, no = _three(["x-reason"] * 3 + ["x-other"]), _three(["x-reason", "x-other", "x-reason", "x-reason"])
    what = "denial.header-lines-grouped-by-name"
    assert evidence_state(what, [yes, yes]) == YES
    assert evidence_state(what, [yes, Evidence(cases=CASES)]) == YES  # a run that cannot tell is left out
    assert evidence_state(what, [yes, no]) == PARTLY
    assert evidence_state(what, []) is None
