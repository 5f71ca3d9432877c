"""``wsreject-daphne`` / ``python -m wsreject.daphne``: the ``daphne`` command line,
serving WebSocket denial responses.

It takes exactly Daphne's options, e.g.::

    python -m wsreject.daphne -b 0.0.0.0 -p 8000 project.asgi:application
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface as DaphneCommandLineInterface

from .server import DenialServer


class CommandLineInterface(DaphneCommandLineInterface):
    description = "Django HTTP/WebSocket server (Daphne with WebSocket denial responses)"
    server_class = DenialServer

    def __init__(self) -> None:
        super().__init__()
        self.parser.prog = "wsreject-daphne"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)
