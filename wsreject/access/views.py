"""``POST`` a request here to get a single-use WebSocket ticket (see :mod:`wsreject.authentication.tickets`).

:func:`ws_ticket` is a plain Django view for projects that sign browsers in with
the session (CSRF-protected, like every ``POST``); with DRF,
:class:`~wsreject.access.drf.WebSocketTicketView` authenticates with the
project's DRF authentication classes instead (JWT, tokens, session).

The response is ``{"ticket": "wst_...", "expires_in": 30}``; the ticket is bound
to the requesting user, to the request's ``Origin`` when it has one, and to the
``path`` given in the body (JSON or form), if any.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ..authentication.tickets import issue_ticket

__all__ = ["ticket_request", "ws_ticket"]


def ticket_request(request: HttpRequest, data: Any) -> dict[str, Any]:
    """Issue a ticket for ``request.user``; ``data`` may name the ``path`` it is for."""
    path = data.get("path") if isinstance(data, dict) else None
    if path is not None and (not isinstance(path, str) or not path.startswith("/") or len(path) > 2000):
        raise ValueError("path must be an absolute path such as /ws/private/")
    ticket, ttl = issue_ticket(request.user, origin=request.headers.get("Origin"), path=path)
    return {"ticket": ticket, "expires_in": ttl}


def _body(request: HttpRequest) -> Any:
    if request.content_type == "application/json":
        try:
            return json.loads(request.body or b"{}")
        except ValueError:
            raise ValueError("the body is not valid JSON") from None
    return request.POST


@never_cache
@require_POST
def ws_ticket(request: HttpRequest) -> JsonResponse:
    """A ticket for the signed-in (session) user: ``401`` for anyone else."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    try:
        return JsonResponse(ticket_request(request, _body(request)))
    except ValueError as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
