"""Why is this user admitted or refused here? One decision, check by check.

:func:`explain` runs :func:`~wsreject.decision.decide` for a given user (not
authenticated: ``decide(user=...)``) on a path, with a trace on
(:mod:`wsreject.trace`), and returns an :class:`Explanation`: the endpoint
reached, each check with its result, and the outcome. Nothing is counted
(throttles peek) and no consumer runs: a denial that only ``connect()`` raises
is not seen. ``manage.py wsreject_explain`` prints it; the admin's "Explain a
decision" page shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync

from .decision import Decision, decide
from .denial import DenyHandshake
from .trace import Step, tracing

__all__ = ["Explanation", "explain", "header_bytes", "outcome_text", "result_text"]


@dataclass(frozen=True)
class Explanation:
    path: str
    user: Any
    decision: Decision
    steps: tuple[Step, ...]

    @property
    def refused_by(self) -> str | None:
        """The check whose refusal is the outcome (None when admitted)."""
        if self.decision.admitted:
            return None
        for step in reversed(self.steps):
            if not step.passed:
                return step.check
        return "routing: no route matches this path" if self.decision.endpoint is None else "the application"

    @property
    def endpoint_lines(self) -> list[tuple[str, str]]:
        """(label, value) rows describing the endpoint reached."""
        hit = self.decision.endpoint
        if hit is None:
            return [("Endpoint", "none: no route matches")]
        consumer = hit.consumer_class
        arguments = [repr(arg) for arg in hit.args] + [f"{key}={value!r}" for key, value in hit.kwargs.items()]
        return [
            ("Endpoint", hit.template + (f"  (route {hit.name!r})" if hit.name else "")),
            ("Consumer", f"{consumer.__module__}.{consumer.__qualname__}" if consumer else repr(hit.application)),
            ("Arguments", ", ".join(arguments) or "none"),
        ]


def result_text(refusal: BaseException | None) -> str:
    """A check's result in words: ``passed``, ``refused 403 Forbidden`` or ``error RuntimeError``."""
    if refusal is None:
        return "passed"
    if isinstance(refusal, DenyHandshake):
        detail = getattr(refusal, "detail", None)
        return f"refused {refusal.status_code}" + (f" {detail}" if detail else "")
    return f"error {type(refusal).__name__}"  # the message stays in the logs: it may hold secrets


def outcome_text(explanation: Explanation) -> str:
    decision = explanation.decision
    if decision.admitted:
        return "admitted (101)"
    denial = decision.denial
    detail = getattr(denial, "detail", None)
    said = f" {detail!r}" if detail else ""
    return f"denied {decision.status}{said}, refused by {explanation.refused_by}"


def header_bytes(headers: Sequence[tuple[str, str]], origin: str | None = None) -> list[tuple[bytes, bytes]]:
    """The scope's headers (``origin`` last); ValueError for a value HTTP cannot carry (not Latin-1)."""
    pairs = [*headers, *([("Origin", origin)] if origin is not None else [])]
    try:
        return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    except UnicodeEncodeError:
        raise ValueError("a header value must be Latin-1 text (HTTP carries nothing else)") from None


def explain(path: str, user: Any, *, headers: Sequence[tuple[str, str]] = (), origin: str | None = None) -> Explanation:
    """Decide ``path`` for ``user`` (synchronous: call it from a command or a view)."""
    scope = {"path": path, "headers": header_bytes(headers, origin)}
    with tracing() as steps:
        decision = async_to_sync(decide)(scope, user=user)
    return Explanation(path=path, user=user, decision=decision, steps=tuple(steps))
