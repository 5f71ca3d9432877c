"""``manage.py runserver`` on Daphne, serving WebSocket denial responses.

Django runs the ``runserver`` of the first installed app that has one, so list
``"wsreject"`` before ``"daphne"`` (itself before ``django.contrib.staticfiles``) in
``INSTALLED_APPS``; check ``wsreject.W010`` reports the wrong order. Without Daphne
installed it refuses to start and says how to install it (``wsreject.E014``).

Every denial is printed as one line, like the HTTP request lines::

    WebSocket DENY  401 /ws/private/ [127.0.0.1:53412] Not authenticated

unless the ``wsreject`` logger writes denials somewhere itself (the README's
``LOGGING``): its line is then the one line per denial. The banner names wsreject's
server.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import CommandError

__all__: list[str] = []

try:
    from daphne.management.commands.runserver import Command as DaphneRunserverCommand
except ImportError:  # daphne is an optional dependency ("wsreject[daphne]")
    from django.core.management.commands.runserver import Command as DjangoRunserverCommand

    class Command(DjangoRunserverCommand):
        help = "Needs Daphne: pip install 'wsreject[daphne]'."

        def handle(self, *args: Any, **options: Any) -> None:
            raise CommandError(
                "wsreject.E014: wsreject's runserver serves WebSockets on Daphne, which is not installed. "
                "Install it with: pip install 'wsreject[daphne]' (or serve the ASGI application with uvicorn, "
                "hypercorn or granian)."
            )

else:
    from wsreject.daphne.server import DenialServer

    #: Daphne's banner words this command adds wsreject's name to.
    DAPHNE_BANNER = "development server at "

    class BannerNamingWsreject:
        """``self.stdout`` of the command, naming wsreject's server in Daphne's banner."""

        def __init__(self, output: Any) -> None:
            self.output = output

        def write(self, message: str = "", *args: Any, **kwargs: Any) -> None:
            from wsreject import __version__

            named = f"development server (wsreject {__version__}: WebSocket denials as HTTP responses) at "
            self.output.write(message.replace(DAPHNE_BANNER, named, 1), *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.output, name)

    def wsreject_logs_denials() -> bool:
        """Whether the ``wsreject`` logger writes each denial to a handler of its own."""
        logger = logging.getLogger("wsreject")
        return logger.isEnabledFor(logging.INFO) and logger.hasHandlers()

    class Command(DaphneRunserverCommand):  # type: ignore[no-redef]  # the other branch defines it
        help = "Starts a Daphne development server whose WebSocket handshakes can be denied with HTTP responses."
        server_cls = DenialServer

        def inner_run(self, *args: Any, **options: Any) -> Any:
            if options.get("use_asgi", True):
                self.stdout = BannerNamingWsreject(self.stdout)  # type: ignore[has-type]
            return super().inner_run(*args, **options)

        def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
            """Daphne's request lines, plus one line per denial with its status and detail
            (none when the ``wsreject`` logger already writes the denial)."""
            if protocol == "websocket" and action == "rejected" and details.get("status"):
                if wsreject_logs_denials():
                    return
                message = (
                    f"WebSocket DENY  {details.get('status')} {details.get('path')} "
                    f"[{details.get('client') or '-'}] {details.get('detail') or ''}\n"
                )
                style = self.style.WARNING if int(details.get("status") or 0) < 500 else self.style.ERROR
                self.stderr.write(style(message), ending="")
                return
            super().log_action(protocol, action, details)
