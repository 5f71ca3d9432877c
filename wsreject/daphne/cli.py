"""``wsreject-daphne`` / ``python -m wsreject.daphne``: the ``daphne`` command line,
serving WebSocket denial responses.

It takes Daphne's options, e.g.::

    python -m wsreject.daphne -b 0.0.0.0 -p 8000 project.asgi:application

plus two of its own:

* ``--proxy-count N`` (with ``--proxy-headers``): the client is the ``X-Forwarded-For``
  entry ``N`` places from the right, the one the outermost trusted proxy appended
  (default 1: one proxy, e.g. nginx, in front). Never the leftmost, which the client
  writes itself.
* ``--max-denial-body-size BYTES``: the largest denial body buffered (default 1 MiB);
  a larger one is answered 500 and logged with this option's name.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from daphne.cli import CommandLineInterface as DaphneCommandLineInterface

from .protocol import DEFAULT_MAX_DENIAL_BODY_SIZE
from .server import DenialServer

__all__ = ["CommandLineInterface", "byte_count", "main", "positive_int"]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def byte_count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


class CommandLineInterface(DaphneCommandLineInterface):
    description = "Django HTTP/WebSocket server (Daphne with WebSocket denial responses)"
    server_class: Any = DenialServer

    def __init__(self) -> None:
        super().__init__()
        self.parser.prog = "wsreject-daphne"
        self.parser.add_argument(
            "--proxy-count",
            type=positive_int,
            default=1,
            help="With --proxy-headers: how many trusted proxies append to X-Forwarded-For; the client "
            "is the entry this many places from the right (default: 1)",
        )
        self.parser.add_argument(
            "--max-denial-body-size",
            type=byte_count,
            default=DEFAULT_MAX_DENIAL_BODY_SIZE,
            help=f"Largest WebSocket denial body in bytes; a larger one is answered 500 (default: {DEFAULT_MAX_DENIAL_BODY_SIZE})",
        )

    def run(self, args: list[str]) -> None:
        """Daphne's ``run`` with this server's own options passed to the server."""
        options = self.parser.parse_args(args)
        self.server_class = functools.partial(
            DenialServer, proxy_count=options.proxy_count, max_denial_body_size=options.max_denial_body_size
        )
        super().run(args)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)
