"""Budget, seeds and figures of the fuzz run, and the runner every property test uses.

The environment variables are documented in ``tests/fuzz/conftest.py``.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


#: Examples per family and target with the fixed seed, and with the random seed.
FIXED_EXAMPLES = _int("WSREJECT_FUZZ_EXAMPLES", 1150 if ON_CI else 50)
RANDOM_EXAMPLES = _int("WSREJECT_FUZZ_RANDOM_EXAMPLES", 100 if ON_CI else 15)
FIXED_SEED = _int("WSREJECT_FUZZ_SEED", 20261109)
RANDOM_SEED = _int("WSREJECT_FUZZ_RANDOM_SEED", random.SystemRandom().randrange(2**32))

PHASES = {"fixed": (FIXED_SEED, FIXED_EXAMPLES), "random": (RANDOM_SEED, RANDOM_EXAMPLES)}

PROPERTIES = {
    "1-no-accept-beyond-canonical": "never an accept the canonical request (or the model) would deny",
    "2-no-5xx-from-input": "never a 5xx caused by client input",
    "3-valid-denials": "every JSON denial is valid (content-type, JSON with detail, content-length, no control bytes)",
    "4-no-exception-text": "no exception text on the wire (DEBUG off)",
}


@dataclass
class Run:
    examples: int = 0
    handshakes: int = 0
    seconds: float = 0.0
    seed: int = 0


@dataclass
class Figures:
    runs: dict[tuple[str, str, str], Run] = field(default_factory=lambda: defaultdict(Run))
    checks: Counter[tuple[str, str]] = field(default_factory=Counter)  # (property, target)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # target -> label
    server_refusals: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def lines(self) -> list[str]:
        out = [
            f"fixed seed {FIXED_SEED} ({FIXED_EXAMPLES} examples per family and target), "
            f"random seed {RANDOM_SEED} ({RANDOM_EXAMPLES}); CI={'yes' if ON_CI else 'no'}",
            f"reproduce the random run: WSREJECT_FUZZ_RANDOM_SEED={RANDOM_SEED}",
            "",
            f"{'family':<12} {'target':<26} {'phase':<7} {'examples':>8} {'handshakes':>10} {'seconds':>8}",
        ]
        total = Run()
        for (family, target, phase), run in sorted(self.runs.items()):
            out.append(f"{family:<12} {target:<26} {phase:<7} {run.examples:>8} {run.handshakes:>10} {run.seconds:>8.1f}")
            total.examples += run.examples
            total.handshakes += run.handshakes
            total.seconds += run.seconds
        out.append(f"{'total':<12} {'':<26} {'':<7} {total.examples:>8} {total.handshakes:>10} {total.seconds:>8.1f}")
        fixed = sum(run.examples for (_, _, phase), run in self.runs.items() if phase == "fixed")
        out.append(f"examples with the fixed seed: {fixed}")
        out.append("")
        targets = sorted({target for _, target in self.checks})
        out.append("examples checked, per property and target:")
        for prop in PROPERTIES:
            counts = ", ".join(f"{t} {self.checks[(prop, t)]}" for t in targets)
            out.append(f"  {prop}: {counts}")
        out.append("")
        out.append("outcomes by status (101 = accepted, 'close 44xx' = close-code denial):")
        for target, counter in sorted(self.outcomes.items()):
            shown = ", ".join(f"{label} x{n}" for label, n in sorted(counter.items()))
            out.append(f"  {target}: {shown}")
        if self.server_refusals:
            out.append("answered by the server itself (not the application):")
            for target, counter in sorted(self.server_refusals.items()):
                shown = "; ".join(f"{label} x{n}" for label, n in sorted(counter.items()))
                out.append(f"  {target}: {shown}")
        return out


FIGURES = Figures()


def run_property(family: str, target: str, phase: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], int]) -> None:
    """Run ``check`` (which returns how many handshakes it made) on examples of ``strategy``,
    with the phase's seed and budget, and record the figures."""
    seed_value, examples = PHASES[phase]
    run = FIGURES.runs[(family, target, phase)]
    run.seed = seed_value

    @seed(seed_value)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=True,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
    @given(strategy)
    def examples_of(request: Any) -> None:
        run.examples += 1
        run.handshakes += check(request)

    started = time.perf_counter()
    try:
        examples_of()
    finally:
        run.seconds += time.perf_counter() - started
