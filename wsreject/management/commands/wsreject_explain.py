"""``manage.py wsreject_explain --user NAME PATH``: why that user is admitted or refused there.

Runs the decision pipeline (:func:`wsreject.decision.decide`) for the user — not
authenticated: the user is given — on ``PATH``, and prints the endpoint reached,
each check with its result and the outcome. Nothing is counted (throttles peek)
and no consumer runs. Exit status: 0 admitted, 1 denied, 2 error (unknown user,
bad header or path).
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from wsreject.explain import Explanation, explain, header_bytes, outcome_text, result_text
from wsreject.probe import UsageError
from wsreject.probe.request import check_value, parse_header

__all__ = ["Command", "render"]

ADMITTED, DENIED, FAILURE = 0, 1, 2


def render(explanation: Explanation) -> str:
    """The explanation as text, one check a line."""
    user = explanation.user
    lines = [f"Path:      {explanation.path}", f"User:      {user.get_username()}" + ("" if user.is_active else " (inactive)")]
    lines += [f"{label + ':':<10} {value}" for label, value in explanation.endpoint_lines]
    lines.append("Checks:")
    width = max((len(step.check) for step in explanation.steps), default=0)
    for step in explanation.steps:
        note = f"  ({step.note})" if step.note else ""
        lines.append(f"  {step.check:<{width}}  {result_text(step.refusal)}{note}")
    if not explanation.steps:
        lines.append("  none ran")
    lines.append(f"Outcome:   {outcome_text(explanation)}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Explain the WebSocket handshake decision for a user on a path: the endpoint reached, each check "
        "with its result, and the outcome. Exit 0 admitted, 1 denied, 2 error."
    )

    exit_code = ADMITTED

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the WebSocket path, e.g. /ws/rooms/lobby/")
        parser.add_argument("--user", required=True, help="the username to decide for (not authenticated: given)")
        parser.add_argument(
            "-H", "--header", dest="headers", action="append", default=[], metavar="'NAME: VALUE'",
            help="a request header the checks may read (repeatable)",
        )  # fmt: skip
        parser.add_argument("--origin", help="send Origin: ORIGIN")

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except SystemExit as exc:  # argparse's usage errors
            sys.exit(FAILURE if exc.code else 0)
        if self.exit_code:
            sys.exit(self.exit_code)

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        if not path.startswith("/"):
            raise CommandError(f"the path must start with '/': {path!r}", returncode=FAILURE)
        try:
            headers = [parse_header(option) for option in options["headers"]]
            origin = None if options["origin"] is None else check_value("origin", options["origin"])
            header_bytes(headers, origin)
        except (UsageError, ValueError) as exc:
            raise CommandError(f"bad header: {exc}", returncode=FAILURE) from None
        User = get_user_model()
        try:
            user = User._default_manager.get_by_natural_key(options["user"])
        except User.DoesNotExist:
            raise CommandError(f"no user {options['user']!r}", returncode=FAILURE) from None
        explanation = explain(path, user, headers=headers, origin=origin)
        self.stdout.write(render(explanation))
        self.exit_code = ADMITTED if explanation.decision.admitted else DENIED
