"""``manage.py runserver`` on Daphne, serving WebSocket denial responses.

Django runs the ``runserver`` of the first installed app that has one, so list
``"wsreject"`` before ``"daphne"`` (itself before ``django.contrib.staticfiles``) in
``INSTALLED_APPS``; check ``wsreject.W010`` reports the wrong order. Without Daphne
installed it refuses to start and says how to install it (``wsreject.E014``).

Every denial is printed as one line, like the HTTP request lines::

    WebSocket DENY  401 /ws/private/ [127.0.0.1:53412] Not authenticated
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

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

    class Command(DaphneRunserverCommand):  # type: ignore[no-redef]  # the other branch defines it
        help = "Starts a Daphne development server whose WebSocket handshakes can be denied with HTTP responses."
        server_cls = DenialServer

        def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
            """Daphne's request lines, plus one line per denial with its status and detail."""
            if protocol == "websocket" and action == "rejected" and details.get("status"):
                message = (
                    f"WebSocket DENY  {details.get('status')} {details.get('path')} "
                    f"[{details.get('client') or '-'}] {details.get('detail') or ''}\n"
                )
                style = self.style.WARNING if int(details.get("status") or 0) < 500 else self.style.ERROR
                self.stderr.write(style(message), ending="")
                return
            super().log_action(protocol, action, details)
