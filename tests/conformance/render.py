"""Reports of a conformance matrix: the side-by-side table for a terminal, and
``docs/conformance.md`` (deterministic, so the suite can check that it is current)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tests.conformance.cases import CASES
from tests.conformance.compare import Cell, Matrix, documentation_for, normalise_headers
from tests.conformance.differences import DIFFERENCES
from tests.conformance.targets import IN_PROCESS, SHORT_TARGET, TARGETS, target_version

DOCS_COMMAND = "python -m tests.conformance.runner --markdown docs/conformance.md"


# --- reports -------------------------------------------------------------------------------------

LEGEND = (
    "`=` same answer · `~` same answer, headers in another order (not significant in HTTP) · "
    "`D` differs as documented in tests/conformance/differences.py · `X` undocumented difference (a failure) · "
    "`!` an app's answer deviates from the case's expectation on that server (a failure)"
)


def _answer_target(matrix: Matrix) -> str:
    return IN_PROCESS if IN_PROCESS in matrix.targets else matrix.targets[0]


def _targets_text(matrix: Matrix, targets: Sequence[str]) -> str:
    return "every target" if list(targets) == list(matrix.targets) and len(targets) > 1 else ", ".join(targets)


def _group(matrix: Matrix, cells: Iterable[Cell], key: Callable[[Cell], Any]) -> list[tuple[Cell, str]]:
    """Cells with the same case and the same ``key`` once, with the targets they occur on."""
    groups: dict[tuple[str, Any], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.case_id, key(cell)), []).append(cell)
    order = {case.id: index for index, case in enumerate(matrix.cases)}
    result = []
    for members in groups.values():
        members.sort(key=lambda c: matrix.targets.index(c.target))
        result.append((members[0], _targets_text(matrix, [c.target for c in members])))
    result.sort(key=lambda item: (order[item[0].case_id], matrix.targets.index(item[0].target)))
    return result


def _header_orders(cell: Cell) -> tuple[str, str]:
    return (
        ", ".join(n for n, _ in normalise_headers(cell.reference.headers)),
        ", ".join(n for n, _ in normalise_headers(cell.demo.headers)),
    )


def _grouped_problems(matrix: Matrix) -> list[tuple[tuple[str, str, str], str, Cell]]:
    """((case id, app, problem), the targets it occurs on, the first such cell)."""
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for case in matrix.cases:
        for target in matrix.targets:
            cell = matrix.cell(target, case.id)
            for app, obs in (("reference", cell.reference), ("demo", cell.demo)):
                for problem in obs.problems:
                    groups.setdefault((case.id, app, problem), []).append(cell)
    return [(key, _targets_text(matrix, [c.target for c in cells]), cells[0]) for key, cells in groups.items()]


def render_text(matrix: Matrix, *, verbose: bool = False) -> str:
    """The side-by-side table for a terminal, then every difference and every failure."""
    answers_on = _answer_target(matrix)
    id_width = max(len(case.id) for case in matrix.cases)
    answer_width = 40
    columns = [SHORT_TARGET[t] for t in matrix.targets]
    head = f"{'case':<{id_width}}  {'reference (' + answers_on + ')':<{answer_width}}  {'demo (' + answers_on + ')':<{answer_width}}  "
    head += "  ".join(columns)
    lines = [head, "-" * len(head)]
    for case in matrix.cases:
        cell = matrix.cell(answers_on, case.id)
        row = f"{case.id:<{id_width}}  {cell.reference.summary(answer_width):<{answer_width}}  {cell.demo.summary(answer_width):<{answer_width}}  "
        row += "  ".join(f"{matrix.cell(t, case.id).mark:^{len(SHORT_TARGET[t])}}" for t in matrix.targets)
        lines.append(row)
    lines.append("")
    lines.append(LEGEND.replace("`", ""))
    lines.append("")
    lines.append("Agreement per target (both apps, same request, normalised: date, server, retry-after, sec-websocket-accept, alt-svc port)")
    lines.append(f"  {'target':<26} {'version':<52} agree  (order)  deliberate  UNDOCUMENTED  unexpected ref/demo")
    for target in matrix.targets:
        c = matrix.counts(target)
        lines.append(
            f"  {target:<26} {target_version(target):<52} {c['agree']:>3}/{c['cases']:<3} ({c['order']:>3})  "
            f"{c['deliberate']:>10}  {c['differs']:>12}  {c['unexpected_reference']:>7}/{c['unexpected_demo']}"
        )
    differing = _group(matrix, [c for c in matrix.cells.values() if c.diffs], lambda c: tuple(sorted((d.field, d.reference, d.demo) for d in c.diffs)))
    if differing:
        lines.append("")
        lines.append("Differences, side by side")
        for cell, targets in differing:
            lines.append(f"  {cell.case_id} on {targets}:")
            for diff in cell.diffs:
                entry = documentation_for(cell.case_id, cell.target, diff.field)
                tag = "deliberate" if entry else "UNDOCUMENTED"
                lines.append(f"    [{tag}] {diff.field}")
                lines.append(f"        reference: {diff.reference}")
                lines.append(f"        demo:      {diff.demo}")
    ordered = _group(matrix, [c for c in matrix.cells.values() if c.order_differs], _header_orders)
    if ordered:
        lines.append("")
        lines.append("Header order differs (reported, not a failure)")
        for cell, targets in ordered:
            ref, demo = _header_orders(cell)
            lines.append(f"  {cell.case_id} on {targets}:\n    reference: {ref}\n    demo:      {demo}")
    problems = _grouped_problems(matrix)
    if problems:
        lines.append("")
        lines.append("Answers that deviate from the case's expectation on that target (FAILURES)")
        for (case_id, app, problem), targets, cell in problems:
            lines.append(f"  {case_id}, {app}, on {targets}: {problem}")
            obs = cell.reference if app == "reference" else cell.demo
            if verbose and obs.raw:
                lines += ["      " + line for line in obs.raw.splitlines()]
    stale = matrix.stale_differences()
    if stale:
        lines.append("")
        lines.append("Stale entries in differences.py (FAILURES)")
        lines += [f"  {entry}" for entry in stale]
    lines.append("")
    lines.append("OK: every difference is documented" if matrix.ok and not stale else "FAILED: see above")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(matrix: Matrix) -> str:
    """``docs/conformance.md``: deterministic (no timings), so CI can check it is current."""
    full = len(matrix.cases) == len(CASES) and list(matrix.targets) == list(TARGETS)
    out = [
        "# Conformance: the Django demo against the FastAPI reference",
        "",
        (
            f"Generated by `{DOCS_COMMAND}`; do not edit by hand "
            "(`tests/conformance/test_conformance.py` fails when this file is out of date)."
        ),
        "",
        (
            "Every case of [`tests/conformance/cases.py`](../tests/conformance/cases.py) is played against the FastAPI "
            "reference ([`reference_fastapi.py`](../tests/conformance/reference_fastapi.py)) and the Django demo "
            "(`project.asgi`), in process (the ASGI application called directly, with the denial extension "
            "advertised) and over the wire on each server, with the same request and the same bearer tokens; "
            "`hypercorn-h2` and `hypercorn-h3` are hypercorn over HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220), where "
            "an accept is a `200` to an extended CONNECT. "
            "The answers are compared exactly after dropping `date` and `server` and abstracting the values that "
            "must differ (`retry-after` as whole seconds ≥ 1, `sec-websocket-accept` as valid or not, the port in "
            "`alt-svc`). Header order "
            "across different names is reported but not significant; the order of a repeated header's values is."
        ),
        "",
    ]
    if not full:
        out += ["**Partial run** (not every case or target): regenerate with the command above.", ""]
    out += [
        "## Agreement per server",
        "",
        "| target | cases | agree | of which header order differs | deliberate differences | undocumented | unexpected (reference / demo) |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in matrix.targets:
        c = matrix.counts(target)
        out.append(
            f"| {target} | {c['cases']} | {c['agree']} | {c['order']} | "
            f"{c['deliberate']} | {c['differs']} | {c['unexpected_reference']} / {c['unexpected_demo']} |"
        )
    out += ["", "Measured with: " + "; ".join(f"{t} ({target_version(t)})" for t in matrix.targets)]
    out += ["", "## Deliberate differences", ""]
    out += [
        (
            "Listed in [`tests/conformance/differences.py`](../tests/conformance/differences.py); each is asserted "
            "(a listed difference that stops occurring fails the suite, as does any difference not listed)."
        ),
        "",
        "| case | target | what differs | reference (FastAPI) | demo (wsreject) | why |",
        "|---|---|---|---|---|---|",
    ]
    case_ids = {case.id for case in matrix.cases}
    previous_why = None
    for entry in DIFFERENCES:
        if entry.case in case_ids:
            why = "as above" if entry.why == previous_why else _md(entry.why)
            previous_why = entry.why
            out.append(
                f"| {entry.case} | {entry.target} | {', '.join(f'`{f}`' for f in entry.fields)} | "
                f"{_md(entry.reference)} | {_md(entry.demo)} | {why} |"
            )
    undocumented = _group(matrix, [c for c in matrix.cells.values() if c.undocumented], lambda c: tuple(sorted((d.field, d.reference, d.demo) for d in c.undocumented)))
    if undocumented:
        out += ["", "## Undocumented differences (failures)", "", "| case | targets | field | reference | demo |", "|---|---|---|---|---|"]
        for cell, targets in undocumented:
            for diff in cell.undocumented:
                out.append(f"| {cell.case_id} | {targets} | `{diff.field}` | `{_md(diff.reference)}` | `{_md(diff.demo)}` |")
    problems = _grouped_problems(matrix)
    if problems:
        out += ["", "## Answers deviating from the case table (failures)", "", "| case | app | targets | problem |", "|---|---|---|---|"]
        for (case_id, app, problem), targets, _cell in problems:
            out.append(f"| {case_id} | {app} | {targets} | {_md(problem)} |")
    out += ["", "## Every case on every target", "", LEGEND, ""]
    answers_on = _answer_target(matrix)
    out.append(f"| case | reference ({answers_on}) | demo ({answers_on}) | " + " | ".join(matrix.targets) + " |")
    out.append("|---|---|---|" + "---|" * len(matrix.targets))
    for case in matrix.cases:
        cell = matrix.cell(answers_on, case.id)
        marks = " | ".join(f"`{matrix.cell(t, case.id).mark}`" for t in matrix.targets)
        out.append(f"| {case.id} | `{_md(cell.reference.summary(60))}` | `{_md(cell.demo.summary(60))}` | {marks} |")
    ordered = _group(matrix, [c for c in matrix.cells.values() if c.order_differs], _header_orders)
    if ordered:
        out += ["", "## Header order (reported, not significant)", "", "| case | targets | reference | demo |", "|---|---|---|---|"]
        for cell, targets in ordered:
            ref, demo = _header_orders(cell)
            out.append(f"| {cell.case_id} | {targets} | {ref} | {demo} |")
    out += [
        "",
        (
            "Server behaviour that differs from the scenario for *both* apps (a server's own answer, e.g. "
            "granian keeping the connection open) is not a difference between the apps; it is measured and "
            "asserted per server and version in `SERVER_QUIRKS` ([`tests/support/quirks.py`](../tests/support/quirks.py)) "
            "and listed in the README's server table. After a server upgrade, `./dev upgrade` "
            "(`python -m tests.conformance.upgrade`) reports which quirks disappeared and which deviations appeared."
        ),
        "",
    ]
    return "\n".join(out)
