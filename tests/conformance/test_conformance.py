"""Every conformance case against both apps — the FastAPI reference and the Django demo —
in process and on every real server, through the runner (``tests/conformance/runner.py``).

For each (target, case) one test asserts that

* the two apps' answers agree, except for the fields ``differences.py`` documents as
  deliberate (``X`` in the runner's table is a failure here);
* the demo's answer is the case's expectation on that target (the case table with the
  quirks of the installed server versions, ``quirks.applied_quirks``), over the wire with
  the raw client and with the ``websockets`` client — this is also issue 3's real-server
  matrix;
* the reference's answer is its expectation there too (so a server that changes is noticed).

Module-wide: no entry of ``differences.py`` and no quirk of ``SERVER_QUIRKS`` (for the
installed versions) is stale,
nothing of case 16's exception reaches any client, and ``docs/conformance.md`` is what the
runner generates now. The whole matrix runs once per module (each server started once per
app, cases played concurrently); the side-by-side table is printed at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conformance.cases import CASES, case_ids
from tests.conformance.compare import compare_transports
from tests.conformance.differences import Difference
from tests.conformance.http2 import H2_TARGETS, H3_TARGETS, server_kind
from tests.conformance.runner import (
    DOCS_COMMAND,
    IN_PROCESS,
    SERVER_TARGETS,
    TARGETS,
    Cell,
    Matrix,
    Observation,
    compare,
    documentation_for,
    render_markdown,
    render_text,
    run_matrix,
)
from tests.support.quirks import (
    EVIDENCE,
    MODIFICATIONS,
    NO,
    REPLACEMENTS,
    YES,
    evidence_state,
    quirk_keys,
    quirks,
    server_version,
    unmeasured_message,
)

pytestmark = [pytest.mark.server]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
SECRETS = (b"hunter2", b"database", b"RuntimeError", b"Traceback", b"secret")
# Tests of this module that need every target (the others need only their own).
NEEDS_ALL = ("test_no_stale_difference_entries", "test_a_wrong_entry_is_reported_stale", "test_docs_are_current")


def _wanted_targets(request) -> list[str]:
    """Only the targets of the selected tests (``-k granian`` starts granian alone)."""
    wanted: set[str] = set()
    for item in request.session.items:
        if getattr(item, "module", None) is None or item.module.__name__ != __name__:
            continue
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "target" in callspec.params:
            wanted.add(callspec.params["target"])
        elif item.originalname in NEEDS_ALL:
            return list(TARGETS)
        elif callspec is not None and "kind" in callspec.params:
            wanted.add(callspec.params["kind"])
        elif callspec is not None and "connect_target" in callspec.params:
            wanted.update((callspec.params["connect_target"], server_kind(callspec.params["connect_target"])))
        else:
            wanted.update(SERVER_TARGETS)
    return [target for target in TARGETS if target in wanted] or list(TARGETS)


@pytest.fixture(scope="module")
def matrix(request, tmp_path_factory) -> Matrix:
    result = run_matrix(_wanted_targets(request), CASES, directory=tmp_path_factory.mktemp("conformance"))
    yield result
    # The side-by-side table in the test log (CI's too), past pytest's output capture.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_sep("=", "conformance: FastAPI reference vs Django demo")
            reporter.write_line(render_text(result))


def _need(matrix: Matrix, target: str) -> None:
    if target not in matrix.targets:  # pragma: no cover - only when selection logic misses a target
        pytest.fail(f"{target} was not run")


@pytest.mark.parametrize("case_id", case_ids())
@pytest.mark.parametrize("target", TARGETS)
def test_case(matrix: Matrix, target: str, case_id: str) -> None:
    _need(matrix, target)
    cell = matrix.cell(target, case_id)
    failures = []
    for diff in cell.undocumented:
        failures.append(
            f"undocumented difference in {diff.field}:\n    reference: {diff.reference}\n    demo:      {diff.demo}"
        )
    for app, obs in (("demo", cell.demo), ("reference", cell.reference)):
        for problem in obs.problems:
            failures.append(f"{app} deviates from the case's expectation on {target}: {problem}")
    if failures:
        raws = "".join(
            f"\n--- {app} ({'quirks applied: ' + ', '.join(obs.quirks) if obs.quirks else 'no quirks applied'}) ---\n{obs.raw or obs.summary(200)}"
            for app, obs in (("reference", cell.reference), ("demo", cell.demo))
        )
        version = "in process" if target == IN_PROCESS else server_version(target)
        unmeasured = None if target == IN_PROCESS else unmeasured_message(target)
        if unmeasured:
            failures.insert(0, unmeasured)
        pytest.fail(f"{case_id} on {target} ({version}):\n  " + "\n  ".join(failures) + raws, pytrace=False)
    for diff, entry in cell.documented:  # documented ones must really be documented for this cell
        assert documentation_for(case_id, target, diff.field) is entry


@pytest.mark.parametrize("target", TARGETS)
def test_case_16_leaks_nothing(matrix: Matrix, target: str) -> None:
    _need(matrix, target)
    cell = matrix.cell(target, "s16-broken")
    for app, obs in (("reference", cell.reference), ("demo", cell.demo)):
        wire = b"\n".join(f"{k}: {v}".encode("latin-1") for k, v in obs.headers) + obs.body
        wire += (obs.reason or "").encode("latin-1")
        for secret in SECRETS:
            assert secret.lower() not in wire.lower(), f"{app} on {target} leaked {secret!r}"


@pytest.mark.parametrize("kind", SERVER_TARGETS)
def test_every_quirk_is_observed(matrix: Matrix, kind: str) -> None:
    """Each quirk of this server (for the installed versions) either shaped some case's
    expectation with one of the two apps (and that case passed, see test_case) or shows in
    the runs' evidence; no evidence quirk shows that the table does not list."""
    _need(matrix, kind)
    runs = [matrix.server_runs[(kind, app)] for app in ("reference", "demo")]
    used = {key for run in runs for obs in run.observations.values() for key in obs.quirks}
    for quirk in quirks(kind):
        if quirk.what in REPLACEMENTS or quirk.what in MODIFICATIONS:
            assert quirk.what in used, f"{kind}: quirk {quirk.what!r} applies to no case"
    evidences = [run.evidence() for run in runs]
    for what in EVIDENCE:
        if what == "close.reason-dropped":  # after accept only: tests/e2e/test_matrix.py
            continue
        state = evidence_state(what, evidences)
        if what in quirk_keys(kind):
            assert state == YES, f"{kind} ({server_version(kind)}): {what} is {state}, the table says {YES}"
        else:
            assert state in (NO, None), f"{kind} ({server_version(kind)}): {what} is {state}, not in the table"


@pytest.mark.parametrize("app", ("reference", "demo"))
@pytest.mark.parametrize("connect_target", (*H2_TARGETS, *H3_TARGETS))
def test_http2_and_http3_answer_as_http1(matrix: Matrix, connect_target: str, app: str) -> None:
    """Over HTTP/2 and HTTP/3 every case gets the same answer as over HTTP/1.1 on the same
    server: same status (200 for 101), same headers but the connection-specific ones, the
    same bytes of body, the same messages after accept and the same attempts; except where a
    quirk of the server over that protocol (``SERVER_QUIRKS[connect_target]``) applied and
    none over HTTP/1.1 did."""
    kind = server_kind(connect_target)
    _need(matrix, connect_target)
    _need(matrix, kind)
    http1_run, http2_run = matrix.server_runs[(kind, app)], matrix.server_runs[(connect_target, app)]
    compared, failures = 0, []
    for case in CASES:
        http1, http2 = http1_run.observations[case.id], http2_run.observations[case.id]
        if set(http2.quirks) - set(http1.quirks):
            continue
        compared += 1
        for diff in compare_transports(http1, http2):
            failures.append(f"{case.id}: {diff.field}: HTTP/1.1 {diff.reference}, HTTP/2 {diff.demo}")
    assert not failures, f"{app} on {kind}, HTTP/1.1 vs {connect_target}:\n  " + "\n  ".join(failures)
    assert compared >= len(CASES) - 2, compared  # the quirks set aside at most the 1xx and the app error


def test_no_stale_difference_entries(matrix: Matrix) -> None:
    assert matrix.stale_differences() == []


def test_a_wrong_entry_is_reported_stale(matrix: Matrix) -> None:
    bogus = Difference("s01-echo", "*", ("body",), "-", "-", "nothing differs here")
    assert matrix.stale_differences([bogus]) == ["s01-echo on *: 'body' does not differ"]


# --- the comparison itself (no servers) --------------------------------------------------------


def _denied(headers, body=b'{"detail":"x"}', reason="Too Many Requests") -> Observation:
    return Observation("denied", status=429, reason=reason, headers=list(headers), body=body, closed=True)


def test_compare_normalises_only_what_must_differ() -> None:
    reference = _denied([("date", "Mon"), ("server", "uvicorn"), ("retry-after", "59"), ("content-length", "14")])
    demo = _denied([("date", "Tue"), ("server", "daphne"), ("retry-after", "60"), ("content-length", "14")])
    assert compare(reference, demo) == ([], False)
    # Anything else is compared exactly: a retry-after that is not whole seconds >= 1 ...
    diffs, _ = compare(reference, _denied([("retry-after", "0"), ("content-length", "14")]))
    assert [d.field for d in diffs] == ["header:retry-after"]
    # ... the reason phrase, the body, whether the connection was closed.
    diffs, _ = compare(reference, _denied(reference.headers, body=b'{"detail": "x"}', reason="Nope"))
    assert [d.field for d in diffs] == ["reason", "body"]
    diffs, _ = compare(reference, Observation(**{**vars(reference), "closed": False}))
    assert [d.field for d in diffs] == ["connection"]


def test_compare_header_order() -> None:
    a = _denied([("x-a", "1"), ("content-type", "application/json"), ("x-a", "2")])
    # Another order across names: reported, not a difference.
    assert compare(a, _denied([("content-type", "application/json"), ("x-a", "1"), ("x-a", "2")])) == ([], True)
    # The order of one header's values is significant.
    diffs, _ = compare(a, _denied([("x-a", "2"), ("content-type", "application/json"), ("x-a", "1")]))
    assert [d.field for d in diffs] == ["header:x-a"]


def test_an_outcome_difference_is_reported_alone() -> None:
    raised = Observation("app-raised", error="RuntimeError")
    cell = Cell.build("s16-broken", IN_PROCESS, raised, _denied([]))
    assert [d.field for d in cell.diffs] == ["outcome"] and cell.verdict == "deliberate"
    cell = Cell.build("s02-private-no-credential", IN_PROCESS, raised, _denied([]))
    assert cell.verdict == "differs" and cell.mark == "X"


def _without_versions(text: str) -> str:
    # Server versions move with patch releases; they are informative, not part of the check.
    return re.sub(r"(?m)^Measured with: .*$", "Measured with: …", text)


def test_docs_are_current(matrix: Matrix) -> None:
    assert matrix.targets == list(TARGETS) and len(matrix.cases) == len(CASES)
    generated = render_markdown(matrix)
    current = DOCS.read_text() if DOCS.exists() else ""
    assert _without_versions(current) == _without_versions(generated), (
        f"docs/conformance.md is out of date: run `{DOCS_COMMAND}` and commit the result"
    )
