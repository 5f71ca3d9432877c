"""How ``python -m tests.conformance.upgrade`` judges a replay, fed with recorded answers
(no server): the quirks that disappeared, the deviations that appeared, and when the
table matches exactly. The real replay is ``./dev upgrade``."""

from __future__ import annotations

from tests.conformance.cases import CASES_BY_ID, Expect
from tests.conformance.observe import ServerRun, expectation
from tests.conformance.upgrade import classify, render
from tests.support.quirks import quirks
from tests.support.wsclient import Played, RawResponse, check_played

G287, G289, G290 = {"granian": "2.8.7"}, {"granian": "2.8.9"}, {"granian": "2.9.0"}
CASE_IDS = ("s02-private-no-credential", "deny-100-informational", "deny-401-repeated-header", "deny-403-repeated-header-three")
GRANIAN_LOG = "[INFO] Starting granian (main PID: 1)\n"


def answer(expect: Expect, *, grouped: bool = False) -> RawResponse | None:
    """The raw response a server gives when it does exactly what ``expect`` says
    (``grouped``: header lines regrouped by name, as granian 2.8.9 sends them)."""
    if expect.status is None:
        return None
    headers = list(expect.headers) + [(name, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") for name, _ in expect.header_patterns]
    if grouped:
        names = [name for name, _ in headers]
        headers.sort(key=lambda pair: names.index(pair[0]))
    return RawResponse(
        status=expect.status,
        reason="Reason",
        http_version="HTTP/1.1",
        headers=headers,
        body=expect.body or b"",
        closed_by_server=expect.closed,
    )


def granian_runs(versions_seen, *, grouped: bool, override=None) -> list[ServerRun]:
    """Both apps on granian answering every case as the table says for ``versions_seen``;
    ``override``: {case id: raw response} for answers that differ from that."""
    override = override or {}
    runs = []
    for app in ("reference", "demo"):
        cases = [CASES_BY_ID[case_id] for case_id in CASE_IDS]
        run = ServerRun("granian", app, cases=cases, log=GRANIAN_LOG)
        for case in cases:
            expect, _, _ = expectation("granian", case, app, quirks("granian", versions_seen))
            raw = override[case.id] if case.id in override else answer(expect, grouped=grouped)
            run.played[case.id] = Played(raw=[raw])
            if expect.server_dies:
                run.dead_after[case.id] = True
        runs.append(run)
    return runs


def test_recorded_answers_pass_the_recheck() -> None:
    # The fake answers are what the table says: the re-check finds nothing in them.
    for run in granian_runs(G289, grouped=True):
        for case in run.cases:
            expect, _, _ = expectation("granian", case, run.app, quirks("granian", G289))
            assert check_played(case, run.played[case.id], expect) == []


def test_a_table_that_matches_is_ok() -> None:
    report = classify("granian", granian_runs(G289, grouped=True), G289)
    assert report.ok, render([report])
    assert report.disappeared == {} and report.appeared == []
    assert set(report.confirmed) >= {
        "denial.upgrade-headers-added",
        "denial.connection-kept-alive",
        "denial.informational-becomes-500",
        "denial.header-lines-grouped-by-name",
    }
    # Only the reference sends a 1xx denial: the demo refuses to build one (a JSON 500).
    assert report.confirmed["denial.informational-becomes-500"] == ["deny-100-informational (reference)"]
    assert "matches the table" in render([report]) and "OK: the quirk table matches" in render([report])


def test_granian_2_8_9_against_the_2_8_7_table() -> None:
    """What ./dev upgrade said when granian went from 2.8.7 to 2.8.9: the panic is gone,
    the header lines are regrouped."""
    report = classify("granian", granian_runs(G289, grouped=True), G287)
    assert not report.ok
    assert report.disappeared == {
        "denial.repeated-header-kills-server": [
            "deny-401-repeated-header (reference)",
            "deny-403-repeated-header-three (reference)",
            "deny-401-repeated-header (demo)",
            "deny-403-repeated-header-three (demo)",
        ]
    }
    [deviation] = report.appeared
    assert (deviation.case_id, deviation.description) == (
        "(evidence)",
        "denial.header-lines-grouped-by-name: the lines of a repeated header name are sent together, not in the app's order",
    )
    assert deviation.would_explain == ("denial.header-lines-grouped-by-name (recorded for granian (granian>=2.8.9))",)
    text = render([report])
    assert "quirks that DISAPPEARED" in text and "denial.repeated-header-kills-server: deny-401-repeated-header (reference)" in text
    assert "MISMATCH on granian" in text


def test_a_new_deviation_is_reported_with_the_quirks_that_would_explain_it() -> None:
    # As if granian dropped 1xx denials the way uvicorn's wsproto does.
    runs = granian_runs(G289, grouped=True, override={"deny-100-informational": None})
    report = classify("granian", runs, G289)
    assert not report.ok and report.disappeared == {}
    deviations = [deviation for deviation in report.appeared if deviation.apps == ("reference",)]
    assert len(deviations) == 1, report.appeared
    [deviation] = deviations
    assert deviation.case_id == "deny-100-informational"
    assert deviation.description == "raw: expected 500, got no HTTP response (connection closed)"
    assert any(hint.startswith("denial.informational-dropped (recorded for uvicorn-wsproto") for hint in deviation.would_explain)


def test_an_answer_no_quirk_knows() -> None:
    teapot = RawResponse(status=418, reason="I'm a Teapot", http_version="HTTP/1.1", headers=[], body=b"", closed_by_server=True)
    report = classify("granian", granian_runs(G289, grouped=True, override={"s02-private-no-credential": teapot}), G289)
    [deviation] = report.appeared
    assert deviation.case_id == "s02-private-no-credential"
    assert deviation.description.startswith("raw: status: expected 401, got 418")
    assert deviation.would_explain == ()


def test_a_quirk_that_holds_only_sometimes_is_reported() -> None:
    # The demo's connection is closed after the denial, the reference's is kept open.
    closed = answer(expectation("granian", CASES_BY_ID["s02-private-no-credential"], "demo")[0])
    assert closed is not None
    closed.closed_by_server = True
    runs = granian_runs(G289, grouped=True)
    runs[1].played["s02-private-no-credential"] = Played(raw=[closed])
    report = classify("granian", runs, G289)
    assert report.disappeared["denial.connection-kept-alive"][0] == "s02-private-no-credential (demo)"
    assert report.disappeared["denial.connection-kept-alive"][1].startswith("(still seen on ")


def test_an_unmeasured_version_is_a_mismatch_even_when_everything_holds() -> None:
    report = classify("granian", granian_runs(G289, grouped=True), G290)
    assert report.disappeared == {} and report.appeared == [] and not report.measured and not report.ok
    assert "granian 2.9.0 has not been measured: run ./dev upgrade" in render([report])


def test_a_server_that_died_is_a_deviation() -> None:
    runs = granian_runs(G289, grouped=True)
    runs[0].alive_after = False
    report = classify("granian", runs, G289)
    assert [(d.case_id, d.apps) for d in report.appeared] == [("(server)", ("reference",))]
