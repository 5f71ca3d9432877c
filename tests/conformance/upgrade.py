"""Does the quirk table still describe the installed servers? ``python -m tests.conformance.upgrade``

``./dev upgrade`` re-resolves the locks to the newest versions, syncs the venv and runs this.
It replays every conformance case with both apps (the FastAPI reference and the Django
demo) on every server kind, stock Daphne included, with whatever versions are installed
(``observe.run_server``), and judges each answer against the expectation the table gives for
those versions (``quirks.applied_quirks``). Per server kind and version it prints

* whether the installed versions are in the kind's measured set (``quirks.MEASURED``);
* the quirks that **disappeared**: the table predicts them, the server no longer does it
  (the answer matches the expectation once that quirk is left out, or the evidence — log,
  status lines, header order — no longer shows it);
* the **deviations that appeared**: answers no quirk of the table explains, with the case ids,
  what differs, and any recorded quirk (of other versions or other servers) that would;
* the quirks this run cannot judge.

Exit status 0 when the table matches the installed servers exactly (measured, nothing
disappeared, nothing appeared), 1 otherwise. Then edit ``tests/support/quirks.py``: key the
quirks to the versions that have them, add the new version to ``MEASURED``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.conformance.cases import Case
from tests.conformance.http2 import H2_TARGETS, H3_TARGETS, check_played_connect, is_extended_connect
from tests.conformance.observe import ServerRun, expectation, provision, run_server
from tests.conformance.runner import select_cases
from tests.conformance.targets import APPS
from tests.support.quirks import (
    EVIDENCE,
    EVIDENCE_SHOWS,
    MODIFICATIONS,
    PARTLY,
    REPLACEMENTS,
    SERVER_QUIRKS,
    YES,
    Quirk,
    evidence_state,
    installed_versions,
    is_measured,
    quirks,
    server_version,
    unmeasured_message,
)
from tests.support.servers import ALL_SERVER_KINDS
from tests.support.wsclient import check_played

# Every kind, and hypercorn over HTTP/2 and HTTP/3 (their quirks are keyed to h2 and aioquic).
REPLAYED_KINDS = (*ALL_SERVER_KINDS, *H2_TARGETS, *H3_TARGETS)

# Quirks no replay of the case table can show (their own tests assert them).
NOT_REPLAYED = {"close.reason-dropped": "after accept in close-code mode: tests/e2e/test_matrix.py"}


@dataclass(frozen=True)
class Deviation:
    """An answer no quirk of the table explains."""

    case_id: str  # "(evidence)" for something seen in the log, status lines or header order
    apps: tuple[str, ...]
    description: str
    would_explain: tuple[str, ...] = ()  # recorded quirks (other versions or kinds) that would


@dataclass
class KindReport:
    kind: str
    versions: Mapping[str, str | None]
    measured: bool
    confirmed: dict[str, list[str]] = field(default_factory=dict)  # quirk -> "case (app)" seen
    disappeared: dict[str, list[str]] = field(default_factory=dict)  # quirk -> "case (app)" not seen
    appeared: list[Deviation] = field(default_factory=list)
    unjudged: dict[str, str] = field(default_factory=dict)  # quirk -> why

    @property
    def ok(self) -> bool:
        return self.measured and not self.disappeared and not self.appeared


def _where_recorded() -> dict[str, list[str]]:
    """quirk key -> ["granian (granian>=2.8.7,<2.8.9)", ...]: every entry of the table."""
    found: dict[str, list[str]] = {}
    for kind, entries in SERVER_QUIRKS.items():
        for quirk in entries:
            found.setdefault(quirk.what, []).append(f"{kind} ({quirk.version_text})")
    return found


def _problems(run: ServerRun, case: Case, active: Sequence[Quirk]) -> list[str]:
    """What differs between the answer to ``case`` and its expectation with ``active``."""
    expect, _used, problem = expectation(run.kind, case, run.app, active)
    if problem:
        return [problem]
    check = check_played_connect if is_extended_connect(run.kind) else check_played
    problems = check(case, run.played[case.id], expect)
    if expect.server_dies and run.dead_after.get(case.id) is False:
        problems.append(f"{run.kind} was expected to die after this case, it is still up")
    return problems


def _group_deviations(found: Iterable[tuple[str, str, str, tuple[str, ...]]]) -> list[Deviation]:
    grouped: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for case_id, app, description, hints in found:
        grouped.setdefault((case_id, description, hints), []).append(app)
    return [Deviation(case_id, tuple(apps), description, hints) for (case_id, description, hints), apps in grouped.items()]


def classify(kind: str, runs: Sequence[ServerRun], versions: Mapping[str, str | None] | None = None) -> KindReport:
    """Judge ``runs`` (both apps on ``kind``) against the table for ``versions`` (default:
    the installed ones). Pure: it only re-checks what the runs recorded."""
    versions = installed_versions(kind) if versions is None else versions
    active = quirks(kind, versions)
    report = KindReport(kind, dict(versions), is_measured(kind, versions))
    recorded = _where_recorded()
    active_keys = {quirk.what for quirk in active}
    candidates = [key for key in (*REPLACEMENTS, *MODIFICATIONS) if key not in active_keys]
    found: list[tuple[str, str, str, tuple[str, ...]]] = []

    for run in runs:
        if not run.alive_after:
            found.append(("(server)", run.app, f"{kind} died during the cases", ()))
        for case in run.cases:
            where = f"{case.id} ({run.app})"
            _expect, used, _ = expectation(kind, case, run.app, active)
            problems = _problems(run, case, active)
            if not problems:
                for what in used:
                    report.confirmed.setdefault(what, []).append(where)
                continue
            gone = [what for what in used if not _problems(run, case, [q for q in active if q.what != what])]
            if gone:
                for what in gone:
                    report.disappeared.setdefault(what, []).append(where)
                continue
            hints = tuple(
                f"{key} (recorded for {', '.join(recorded.get(key, ['no server']))})"
                for key in candidates
                if not _problems(run, case, [*active, Quirk(key, {}, "")])
            )
            found.append((case.id, run.app, "; ".join(problems[:3]) + (" …" if len(problems) > 3 else ""), hints))

    evidences = [run.evidence() for run in runs]
    for what in EVIDENCE:
        if what in NOT_REPLAYED:
            if what in active_keys:
                report.unjudged[what] = NOT_REPLAYED[what]
            continue
        state = evidence_state(what, evidences)
        if what in active_keys:
            if state == YES:
                report.confirmed.setdefault(what, []).append("(evidence)")
            elif state is None:
                report.unjudged[what] = "nothing in these runs can show it"
            else:
                report.disappeared.setdefault(what, []).append(f"(evidence: {state})")
        elif state in (YES, PARTLY):
            hints = (f"{what} (recorded for {', '.join(recorded[what])})",) if what in recorded else ()
            shows = EVIDENCE_SHOWS[what] if state == YES else f"partly: {EVIDENCE_SHOWS[what]}"
            found.append(("(evidence)", "both apps", f"{what}: {shows}", hints))

    for quirk in active:
        if quirk.what not in report.confirmed and quirk.what not in report.disappeared and quirk.what not in report.unjudged:
            report.unjudged[quirk.what] = "applies to no case that was played"
    for what, where in report.disappeared.items():
        if what in report.confirmed:  # seen on some cases, not on others: say so
            where.append(f"(still seen on {', '.join(report.confirmed[what])})")
    report.appeared = _group_deviations(found)
    return report


def render(reports: Sequence[KindReport]) -> str:
    lines: list[str] = []
    for report in reports:
        status = "measured" if report.measured else "NOT MEASURED"
        version = server_version(report.kind, report.versions)
        lines.append(f"{report.kind} ({version}): {status}, {'matches the table' if report.ok else 'MISMATCH'}")
        if not report.measured:
            lines.append(f"  {unmeasured_message(report.kind, report.versions)}")
        if report.confirmed:
            lines.append(f"  quirks still there: {', '.join(sorted(report.confirmed))}")
        if report.disappeared:
            lines.append("  quirks that DISAPPEARED (the table predicts them, the server no longer does it):")
            for what, where in sorted(report.disappeared.items()):
                lines.append(f"    {what}: {', '.join(where)}")
        if report.appeared:
            lines.append("  deviations that APPEARED (no quirk of the table explains them):")
            for deviation in report.appeared:
                lines.append(f"    {deviation.case_id} ({', '.join(deviation.apps)}): {deviation.description}")
                for hint in deviation.would_explain:
                    lines.append(f"      would be explained by {hint}")
        for what, why in sorted(report.unjudged.items()):
            lines.append(f"  not judged here: {what} ({why})")
        lines.append("")
    bad = [report.kind for report in reports if not report.ok]
    if bad:
        lines.append(
            f"MISMATCH on {', '.join(bad)}: key the quirks in tests/support/quirks.py to the versions that "
            "have them, add the new versions to MEASURED, then regenerate docs/conformance.md "
            "(python -m tests.conformance.runner --markdown docs/conformance.md) and the README's server table."
        )
    else:
        lines.append("OK: the quirk table matches the installed servers exactly.")
    return "\n".join(lines)


def replay(kinds: Sequence[str], cases: Sequence[Case], *, jobs: int = 3, progress=None) -> list[KindReport]:
    """Play ``cases`` with both apps on each of ``kinds``; one report per kind."""
    say = progress or (lambda message: None)
    work = Path(tempfile.mkdtemp(prefix="wsreject-upgrade-"))
    try:
        say("preparing the demo database (migrate + seed_demo)")
        prov = provision(work)
        runs: dict[tuple[str, str], ServerRun] = {}

        def one(kind: str, app: str) -> None:
            runs[(kind, app)] = run_server(kind, app, cases, prov)
            say(f"{kind} / {app}: done in {runs[(kind, app)].seconds:.1f} s")

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, kind, app) for kind in kinds for app in APPS]
            for future in futures:
                future.result()
        return [classify(kind, [runs[(kind, app)] for app in APPS]) for kind in kinds]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.conformance.upgrade",
        description="Replay the conformance cases on every server with the installed versions and report "
        "which quirks of tests/support/quirks.py disappeared and which deviations appeared.",
    )
    parser.add_argument("--servers", metavar="KIND[,KIND]", help=f"server kinds (default: all): {', '.join(REPLAYED_KINDS)}")
    parser.add_argument("--cases", metavar="ID[,ID]", help="case ids, prefixes or globs (default: all)")
    parser.add_argument("--jobs", type=int, default=3, help="(app, server) runs at once (default: 3)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    kinds = [kind for kind in (args.servers.split(",") if args.servers else REPLAYED_KINDS) if kind]
    unknown = [kind for kind in kinds if kind not in REPLAYED_KINDS]
    if unknown:
        parser.error(f"unknown server kind(s) {unknown}; choose from {list(REPLAYED_KINDS)}")
    cases = select_cases(args.cases.split(",") if args.cases else None)
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.monotonic()
    reports = replay(kinds, cases, jobs=args.jobs, progress=progress)
    print(render(reports))
    if progress:
        progress(f"total {time.monotonic() - started:.1f} s")
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
