"""The conformance runner: every case against both apps, in process and on every real server.

One command prints the side-by-side table::

    python -m tests.conformance.runner                       # everything (in process + 6 servers)
    python -m tests.conformance.runner --servers in-process,granian --cases s02,s16
    python -m tests.conformance.runner --markdown docs/conformance.md   # also write the docs table

For every *target* (``targets.py``: in process, or a real server kind) and every case of
``cases.py`` it plays the same request against the FastAPI reference
(``reference_fastapi.py``) and the Django demo (``project.asgi``), records what a client
sees (``observe.py`` on servers, ``inprocess.py`` in process), compares the two answers
field by field (``compare.py``) and prints the result (``render.py``).

Every difference is either listed in ``differences.py`` (a deliberate difference, with
its reason) or a failure. Independently, each app's answer is checked against the case's
expectation on that target (``quirks.applied_quirks``: the case table plus the server's
measured quirks). The exit status is 1 when anything is undocumented or unexpected.

The demo needs a migrated, seeded database: the runner makes a fresh SQLite one
(``tests.support.demo.prepare_demo``) and gives both apps the same bearer tokens.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conformance.cases import CASES, Case
from tests.conformance.compare import (  # noqa: F401 - re-exported
    DROPPED_HEADERS,
    Cell,
    Diff,
    Matrix,
    compare,
    documentation_for,
    normalise_headers,
)
from tests.conformance.inprocess import (  # noqa: F401
    check_inprocess,
    play_case_inprocess,
    run_inprocess,
    worker_main,
)
from tests.conformance.observe import (  # noqa: F401 - re-exported
    CLOSE_TIMEOUT,
    CONCURRENCY,
    IO_TIMEOUT,
    Observation,
    Provision,
    ServerRun,
    expectation,
    observe_played,
    observed_headers,
    provision,
    run_server,
)
from tests.conformance.render import DOCS_COMMAND, LEGEND, render_markdown, render_text  # noqa: F401 - re-exported
from tests.conformance.targets import (  # noqa: F401 - re-exported
    APP_IMPORTS,
    APPS,
    IN_PROCESS,
    SERVER_TARGETS,
    SHORT_TARGET,
    TARGETS,
    target_version,
)


def select_cases(patterns: Sequence[str] | None) -> list[Case]:
    """Cases whose id matches one of ``patterns`` (fnmatch; a bare prefix matches too)."""
    if not patterns:
        return list(CASES)
    chosen = [
        case for case in CASES if any(fnmatch.fnmatch(case.id, p) or case.id.startswith(p) for p in patterns)
    ]
    if not chosen:
        raise SystemExit(f"no case matches {list(patterns)}; ids: {[case.id for case in CASES]}")
    return chosen


def select_targets(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {list(TARGETS)}")
    return [target for target in TARGETS if target in names]


def run_matrix(
    targets: Sequence[str] = TARGETS,
    cases: Sequence[Case] = CASES,
    *,
    jobs: int = 3,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Matrix:
    """Play ``cases`` on ``targets`` with both apps and compare. ``jobs`` (app, target)
    runs go on at once: most of the time is spent waiting for servers to close."""
    say = progress or (lambda message: None)
    own_dir = directory is None
    work = Path(tempfile.mkdtemp(prefix="wsreject-conformance-")) if own_dir else Path(directory)
    matrix = Matrix(list(targets), list(cases))
    try:
        started = time.monotonic()
        say("preparing the demo database (migrate + seed_demo)")
        prov = provision(work)
        say(f"  done in {time.monotonic() - started:.1f} s")
        inprocess: dict[str, dict[str, Observation]] | None = None

        def do_inprocess() -> None:
            nonlocal inprocess
            begun = time.monotonic()
            inprocess = run_inprocess(cases, prov)
            matrix.seconds[IN_PROCESS] = time.monotonic() - begun
            say(f"{IN_PROCESS}: done in {matrix.seconds[IN_PROCESS]:.1f} s")

        def do_server(kind: str, app: str) -> None:
            run = run_server(kind, app, cases, prov)
            matrix.server_runs[(kind, app)] = run
            say(f"{kind} / {app}: done in {run.seconds:.1f} s")

        jobs_list: list[Callable[[], None]] = []
        if IN_PROCESS in targets:
            jobs_list.append(do_inprocess)
        # granian takes longest (kept-alive connections, dying cases): start it first.
        kinds = sorted((t for t in targets if t != IN_PROCESS), key=lambda t: t != "granian")
        for kind in kinds:
            for app in APPS:
                jobs_list.append(lambda kind=kind, app=app: do_server(kind, app))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(job) for job in jobs_list]:
                future.result()

        for target in targets:
            for case in cases:
                if target == IN_PROCESS:
                    assert inprocess is not None
                    ref, demo = inprocess["reference"][case.id], inprocess["demo"][case.id]
                else:
                    ref = matrix.server_runs[(target, "reference")].observations[case.id]
                    demo = matrix.server_runs[(target, "demo")].observations[case.id]
                matrix.cells[(target, case.id)] = Cell.build(case.id, target, ref, demo)
        matrix.seconds["total"] = time.monotonic() - started
        return matrix
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


# --- command line -------------------------------------------------------------------------------


def _split(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:  # the in-process worker's former entry point
        worker_main(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tests.conformance.runner",
        description="Replay every conformance case against the FastAPI reference and the Django demo, "
        "in process and on real servers, and print the side-by-side table.",
    )
    parser.add_argument("--servers", action="append", metavar="KIND[,KIND]", help=f"targets to run (default: all): {', '.join(TARGETS)}")
    parser.add_argument("--cases", action="append", metavar="ID[,ID]", help="case ids, prefixes or globs (default: all)")
    parser.add_argument("--markdown", metavar="PATH", help=f"also write the markdown report (the docs: {DOCS_COMMAND})")
    parser.add_argument("--jobs", type=int, default=3, help="(app, server) runs at once (default: 3)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the raw response of every failure")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    targets = select_targets(_split(args.servers))
    cases = select_cases(_split(args.cases))
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    matrix = run_matrix(targets, cases, jobs=args.jobs, progress=progress)
    print(render_text(matrix, verbose=args.verbose))
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_markdown(matrix))
        print(f"\nwrote {path}", file=sys.stderr)
    if progress:
        progress(f"total {matrix.seconds.get('total', 0):.1f} s")
    return 0 if matrix.ok and not matrix.stale_differences() else 1


if __name__ == "__main__":
    sys.exit(main())
