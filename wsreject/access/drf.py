"""The ticket view for DRF projects: authenticated by ``DEFAULT_AUTHENTICATION_CLASSES``.

::

    path("api/ws-ticket/", WebSocketTicketView.as_view()),

Any client DRF authenticates (a JWT, a DRF token, a session with its CSRF
token) gets ``{"ticket": ..., "expires_in": ...}``; anyone else DRF's ``401``
or ``403``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .views import ticket_request

__all__ = ["WebSocketTicketView"]


class WebSocketTicketView(APIView):
    """``POST`` → a single-use ticket for ``?ticket=`` on a WebSocket."""

    permission_classes = [IsAuthenticated]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            data = ticket_request(request, request.data)
        except ValueError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        response = Response(data)
        response["Cache-Control"] = "no-store"
        return response
