"""Property-based tests over handshake inputs (issue 9, item 8).

Environment variables (CI sets ``CI=true``):

``WSREJECT_FUZZ_EXAMPLES``
    examples per family (spellings, credentials, headers) and target with the fixed seed;
    default 1150 on CI (3 families in process + 3 on each of 2 servers: 10 350 examples), 50
    locally.
``WSREJECT_FUZZ_RANDOM_EXAMPLES``
    the same with a random seed; default 100 on CI, 15 locally.
``WSREJECT_FUZZ_SEED``
    the fixed seed (default 20261109).
``WSREJECT_FUZZ_RANDOM_SEED``
    the random run's seed; default a new one per session, printed at the end so a failure
    can be replayed.

At the end of the session the figures are printed: examples and handshakes per family,
target and phase, examples checked per property and target, outcomes by status per target,
what each server answered itself, and both seeds.
"""

from __future__ import annotations

import pytest

from .harness import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.runs:
        return
    terminalreporter.section("wsreject fuzz figures")
    for line in FIGURES.lines():
        terminalreporter.write_line(line)
