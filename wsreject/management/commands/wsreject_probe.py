"""``manage.py wsreject_probe URL``: one WebSocket handshake against any server, reported.

Exit status: 0 accepted, 1 denied (an HTTP response, or close-code mode: accept, a
``{"detail": ...}`` frame and a close with 4000–4999), 2 anything else (bad arguments,
no connection, a timeout, TLS, a malformed answer). Needs no database. ``--http2`` makes the
handshake an RFC 8441 extended CONNECT over HTTP/2 (``wsreject.probe.h2``, the ``h2`` package).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandParser

from wsreject.probe import ProbeFailure, UpgradeRequest, UsageError, parse_url, probe
from wsreject.probe.client import DEFAULT_TIMEOUT, DEFAULT_WAIT
from wsreject.probe.h2 import describe_h2, probe_h2, require_h2
from wsreject.probe.report import (
    render_failure_json,
    render_json,
    render_request,
    render_text,
)
from wsreject.probe.request import (
    check_subprotocol,
    check_value,
    parse_cookie,
    parse_header,
)

__all__ = ["FAILURE", "Command"]

T = TypeVar("T")

FAILURE = 2


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: a :class:`UsageError` becomes a usage error (exit 2)."""

    def convert(value: str) -> T:
        try:
            return parse(value)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise UsageError(f"not a number of seconds: {value!r}") from None
        if not (seconds >= 0 if allow_zero else seconds > 0) or seconds == float("inf"):
            raise UsageError(f"{value!r}: seconds must be finite and {'at least 0' if allow_zero else 'positive'}")
        return seconds

    return parse


class Command(BaseCommand):
    help = (
        "Perform one WebSocket handshake against URL (ws://, wss://, http://, https://) and report "
        "the answer: exit 0 when accepted, 1 when denied (HTTP or close-code mode), 2 on any other failure."
    )
    # It talks to a remote server: the local project's checks and database do not matter.
    requires_system_checks = ()

    exit_code = 0

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", type=_argument(parse_url), help="ws://host[:port]/path?query (or wss://, http://, https://)")
        parser.add_argument(
            "-H", "--header", dest="headers", action="append", default=[], type=_argument(parse_header),
            metavar="'NAME: VALUE'", help="send this header (repeatable, sent in order)",
        )  # fmt: skip
        parser.add_argument("--origin", type=_argument(lambda value: check_value("origin", value)), help="send Origin: ORIGIN")
        parser.add_argument(
            "--subprotocol", dest="subprotocols", action="append", default=[], type=_argument(check_subprotocol),
            metavar="NAME", help="offer this subprotocol (repeatable, offered in order)",
        )  # fmt: skip
        parser.add_argument(
            "--cookie", dest="cookies", action="append", default=[], type=_argument(parse_cookie),
            metavar="NAME=VALUE", help="send this cookie (repeatable, one Cookie header)",
        )  # fmt: skip
        parser.add_argument(
            "--timeout", type=_argument(_seconds(allow_zero=False)), default=DEFAULT_TIMEOUT, metavar="SECONDS",
            help=f"for connecting and reading the answer (default {DEFAULT_TIMEOUT:g})",
        )  # fmt: skip
        parser.add_argument(
            "--wait", type=_argument(_seconds(allow_zero=True)), default=DEFAULT_WAIT, metavar="SECONDS",
            help=f"after an accept, listen this long for a close-code denial (default {DEFAULT_WAIT:g})",
        )  # fmt: skip
        parser.add_argument(
            "--close-code", action="store_true",
            help="expect close-code mode: after an accept, listen up to --timeout instead of --wait",
        )  # fmt: skip
        parser.add_argument(
            "--http2", action="store_true",
            help="speak HTTP/2 (RFC 8441 extended CONNECT): prior knowledge for ws://, ALPN h2 for wss://; "
            "needs the h2 package (pip install 'wsreject[http2]')",
        )  # fmt: skip
        parser.add_argument("-k", "--insecure", action="store_true", help="wss://: do not verify the certificate")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    def run_from_argv(self, argv: list[str]) -> None:
        super().run_from_argv(argv)
        if self.exit_code:
            sys.exit(self.exit_code)

    def handle(self, *args: Any, **options: Any) -> None:
        """Probe; report on stdout (failures on stderr too); leave the exit status in ``exit_code``.

        ``-v 0``: only the report's first line; ``-v 2``: the request head too (on stderr, masked).
        """
        request = UpgradeRequest(
            options["url"],
            headers=options["headers"],
            subprotocols=options["subprotocols"],
            origin=options["origin"],
            cookies=options["cookies"],
        )
        http2: bool = options["http2"]
        try:
            if http2:
                require_h2()
                described = describe_h2(request)
            else:
                described = request.describe()
        except UsageError as exc:
            self.stderr.write(f"wsreject_probe: {exc}")
            self.exit_code = FAILURE
            return
        if options["verbosity"] >= 2:
            self.stderr.write(render_request(described), style_func=lambda text: text)
        timeout: float = options["timeout"]
        try:
            outcome = (probe_h2 if http2 else probe)(
                request,
                timeout=timeout,
                wait=timeout if options["close_code"] else options["wait"],
                insecure=options["insecure"],
            )
        except ProbeFailure as failure:
            if options["json"]:
                self.stdout.write(render_failure_json(request.target.url, str(failure), failure.head, described))
            self.stderr.write(f"wsreject_probe: {failure}")
            self.exit_code = FAILURE
            return
        if options["json"]:
            self.stdout.write(render_json(outcome, described))
        else:
            report = render_text(outcome)
            self.stdout.write(report if options["verbosity"] >= 1 else report.splitlines()[0])
        self.exit_code = outcome.exit_code
