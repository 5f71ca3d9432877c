"""Django's session cookie, as browsers send it with the handshake."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.contrib.auth import get_user

from ..scope import Scope
from .base import BaseAuthenticator, authorization
from .credentials import session_key, session_store


class SessionAuthenticator(BaseAuthenticator):
    """The user of the session cookie (Django's ``get_user`` verifies the session hash).

    A cookie whose session is gone or belongs to nobody is "not mine": the
    handshake is anonymous ("Not authenticated"), as an expired login is for
    Django views. The cookie is ambient — a browser sends it whatever the page —
    so it steps aside when the handshake carries an explicit ``Authorization:
    Bearer`` or ``Token`` credential (an invalid token is never rescued by a
    cookie), and ``OriginMiddleware`` must stay in front of it (cross-site
    WebSocket hijacking).
    """

    scheme = None
    #: Authorization schemes that take precedence over the cookie.
    explicit_schemes = frozenset({"bearer", "token"})

    def get_credential(self, scope: Scope) -> str | None:
        presented = authorization(scope)
        if presented is not None and presented[0].lower() in self.explicit_schemes:
            return None
        return session_key(scope)

    def authenticate(self, scope: Scope, credential: str) -> Any:
        session = scope.get("session") or session_store(scope)
        user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        return user if user.is_authenticated else None
