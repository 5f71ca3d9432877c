"""Comparing the two apps' answers to one case on one target, and the whole matrix.

Only what must differ is normalised: ``date`` and ``server`` headers are dropped, a
``retry-after`` of whole seconds >= 1 becomes ``<seconds>`` (``sec-websocket-accept`` is
already ``<valid>``/``<invalid>`` in an observation). Everything else is compared
exactly. Header *order* across different names is not significant in HTTP: it is
reported but never fails; the order of the values of one repeated header is compared.
Every difference is either listed in ``differences.py`` or a failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tests.conformance.cases import Case
from tests.conformance.differences import DIFFERENCES, Difference
from tests.conformance.observe import Observation, ServerRun
from wsreject.probe.h2 import CONNECTION_SPECIFIC

DROPPED_HEADERS = ("date", "server")
_SECONDS = re.compile(r"[1-9][0-9]*")
_ALT_SVC_PORT = re.compile(r':[0-9]+"')


def normalise_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """For comparison: drop ``date``/``server``; a ``retry-after`` of whole seconds >= 1
    becomes ``<seconds>`` (the time left in a window differs between two runs), the port in
    an ``alt-svc`` ``<port>``."""
    result = []
    for name, value in headers:
        if name in DROPPED_HEADERS:
            continue
        if name == "retry-after" and _SECONDS.fullmatch(value):
            value = "<seconds>"
        elif name == "alt-svc":  # hypercorn with --quic-bind names its UDP port, one per run
            value = _ALT_SVC_PORT.sub(':<port>"', value)
        result.append((name, value))
    return result


def _attempt_outcomes(attempts: Sequence[str]) -> list[str]:
    """``["101 accepted ...", "429 denied (raw)"]`` -> ``["200", "429"]``: what each attempt got."""
    return [attempt.split()[0].replace("101", "200") for attempt in attempts]


# Not compared across protocols: what HTTP/2 and HTTP/3 forbid or do not need, and the
# ``alt-svc`` hypercorn adds wherever it listens for QUIC (the HTTP/3 run only).
_NOT_CARRIED = frozenset({*CONNECTION_SPECIFIC, "sec-websocket-accept", "alt-svc"})


def as_http2(observation: Observation) -> Observation:
    """An HTTP/1.1 observation as HTTP/2 or HTTP/3 carries the same answer (RFC 8441, RFC 9220,
    RFC 9113 §8.2.2, §8.3.2): 101 is 200, no reason phrase, no connection-specific header and
    no ``sec-websocket-accept``; attempts by their status. An HTTP/2 or HTTP/3 observation is
    only reduced to the same form."""
    headers = [(name, value) for name, value in observation.headers if name not in _NOT_CARRIED]
    return replace(
        observation,
        status=200 if observation.status == 101 else observation.status,
        reason="" if observation.reason is not None else None,
        headers=headers,
        attempts=_attempt_outcomes(observation.attempts),
    )


def compare_transports(http1: Observation, http2: Observation) -> list[Diff]:
    """The fields in which one app's answer over HTTP/2 differs from its answer over HTTP/1.1
    on the same server, beyond what HTTP/2 itself changes (:func:`as_http2`); ``Diff.reference``
    holds the HTTP/1.1 side, ``Diff.demo`` the HTTP/2 side."""
    return compare(as_http2(http1), as_http2(http2))[0]


# --- comparing two observations ----------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """One field in which the two apps' answers differ (after normalisation)."""

    field: str  # outcome, status, reason, header:<name>, body, connection, extra, after, messages, attempts
    reference: str
    demo: str


def _show(value: Any, width: int = 120) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = repr(text) if isinstance(value, (bytes, str)) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _grouped(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    return grouped


def compare(reference: Observation, demo: Observation) -> tuple[list[Diff], bool]:
    """(the fields that differ, whether only the order of differently-named headers differs).

    When the outcomes differ (one app answered, the other raised) only ``outcome`` is
    reported: the rest would be noise.
    """
    if reference.outcome != demo.outcome:
        return [Diff("outcome", reference.summary(80), demo.summary(80))], False
    diffs: list[Diff] = []
    for name in ("status", "reason"):
        ref_value, demo_value = getattr(reference, name), getattr(demo, name)
        if ref_value != demo_value:
            diffs.append(Diff(name, _show(ref_value), _show(demo_value)))
    ref_lines, demo_lines = normalise_headers(reference.headers), normalise_headers(demo.headers)
    ref_headers, demo_headers = _grouped(ref_lines), _grouped(demo_lines)
    for name in dict.fromkeys([*ref_headers, *demo_headers]):
        ref_values, demo_values = ref_headers.get(name, []), demo_headers.get(name, [])
        if ref_values != demo_values:
            diffs.append(Diff(f"header:{name}", _show(ref_values or None), _show(demo_values or None)))
    order_differs = not diffs and [n for n, _ in ref_lines] != [n for n, _ in demo_lines]
    pairs = (
        ("body", reference.body, demo.body),
        ("connection", reference.closed, demo.closed),
        ("extra", reference.extra, demo.extra),
        ("after", reference.after, demo.after),
        ("messages", reference.messages, demo.messages),
        ("attempts", reference.attempts, demo.attempts),
    )
    for name, ref_value, demo_value in pairs:
        if ref_value != demo_value:
            diffs.append(Diff(name, _show(ref_value), _show(demo_value)))
    return diffs, order_differs


def documentation_for(case_id: str, target: str, diff_field: str, differences: Sequence[Difference] = DIFFERENCES) -> Difference | None:
    for entry in differences:
        if entry.case == case_id and entry.target in (target, "*") and diff_field in entry.fields:
            return entry
    return None


@dataclass
class Cell:
    """Both apps on one case and one target."""

    case_id: str
    target: str
    reference: Observation
    demo: Observation
    diffs: list[Diff] = field(default_factory=list)
    order_differs: bool = False
    documented: list[tuple[Diff, Difference]] = field(default_factory=list)
    undocumented: list[Diff] = field(default_factory=list)

    @classmethod
    def build(cls, case_id: str, target: str, reference: Observation, demo: Observation, differences: Sequence[Difference] = DIFFERENCES) -> Cell:
        cell = cls(case_id, target, reference, demo)
        cell.diffs, cell.order_differs = compare(reference, demo)
        for diff in cell.diffs:
            entry = documentation_for(case_id, target, diff.field, differences)
            if entry is None:
                cell.undocumented.append(diff)
            else:
                cell.documented.append((diff, entry))
        return cell

    @property
    def verdict(self) -> str:
        """``agree``, ``deliberate`` (every difference documented) or ``differs``."""
        if self.undocumented:
            return "differs"
        return "deliberate" if self.diffs else "agree"

    @property
    def unexpected(self) -> bool:
        return bool(self.reference.problems or self.demo.problems)

    @property
    def mark(self) -> str:
        mark = {"agree": "~" if self.order_differs else "=", "deliberate": "D", "differs": "X"}[self.verdict]
        return mark + ("!" if self.unexpected else "")


# --- the matrix ------------------------------------------------------------------------------


@dataclass
class Matrix:
    targets: list[str]
    cases: list[Case]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (target, case id)
    server_runs: dict[tuple[str, str], ServerRun] = field(default_factory=dict)  # (kind, app)
    seconds: dict[str, float] = field(default_factory=dict)

    def cell(self, target: str, case_id: str) -> Cell:
        return self.cells[(target, case_id)]

    def target_cells(self, target: str) -> list[Cell]:
        return [self.cells[(target, case.id)] for case in self.cases]

    def counts(self, target: str) -> dict[str, int]:
        cells = self.target_cells(target)
        return {
            "cases": len(cells),
            "agree": sum(c.verdict == "agree" for c in cells),
            "order": sum(c.verdict == "agree" and c.order_differs for c in cells),
            "deliberate": sum(c.verdict == "deliberate" for c in cells),
            "differs": sum(c.verdict == "differs" for c in cells),
            "unexpected_reference": sum(bool(c.reference.problems) for c in cells),
            "unexpected_demo": sum(bool(c.demo.problems) for c in cells),
        }

    @property
    def ok(self) -> bool:
        return all(c.verdict != "differs" and not c.unexpected for c in self.cells.values())

    def stale_differences(self, differences: Sequence[Difference] = DIFFERENCES) -> list[str]:
        """Entries of ``differences.py`` that this run shows to be wrong: a listed field that
        does not differ on a target the entry names (only targets and cases that ran count)."""
        stale = []
        case_ids = {case.id for case in self.cases}
        for entry in differences:
            if entry.case not in case_ids:
                continue
            targets = [t for t in self.targets if entry.target in (t, "*")]
            if not targets:
                continue
            for diff_field in entry.fields:
                seen = any(diff_field in {d.field for d in self.cell(t, entry.case).diffs} for t in targets)
                if not seen:
                    stale.append(f"{entry.case} on {entry.target}: {diff_field!r} does not differ")
        return stale
