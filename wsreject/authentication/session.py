"""Django's session cookie, as browsers send it with the handshake."""

from __future__ import annotations

import time
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user
from django.utils.crypto import constant_time_compare

from ..cache.users import Owner, cached_owner, cached_user, forget_owner, session_owner_key
from ..offload import require_io
from ..types import Scope
from .base import BaseAuthenticator, authorization
from .credentials import session_key, session_store

__all__ = ["CACHEABLE_ENGINES", "SessionAuthenticator"]

#: Session engines whose deletions send ``post_delete`` (logout, ``clearsessions``), so a
#: session's owner may be cached: wsreject forgets it when the session row goes.
CACHEABLE_ENGINES = frozenset({"django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"})


class SessionAuthenticator(BaseAuthenticator):
    """The user of the session cookie (Django's ``get_user`` verifies the session hash).

    A cookie whose session is gone or belongs to nobody is "not mine": the
    handshake is anonymous ("Not authenticated"), as an expired login is for
    Django views. The cookie is ambient — a browser sends it whatever the page —
    so it steps aside when the handshake carries an explicit ``Authorization:
    Bearer`` or ``Token`` credential (an invalid token is never rescued by a
    cookie), and ``OriginMiddleware`` must stay in front of it (cross-site
    WebSocket hijacking).

    With the database session engines, whose session the user is is cached
    under the user's version (a password change, a deactivation retire it) and
    forgotten when the session is deleted (logout): a warm handshake reads
    neither the session nor the user from the database.
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
        if settings.SESSION_ENGINE not in CACHEABLE_ENGINES:
            require_io()
            return self.django_user(scope)
        key = session_owner_key(credential)
        owner = cached_owner(key, lambda: self.owner(scope))
        if owner is None:
            return None
        pk, expires, session_hash = owner
        user = cached_user(pk)
        current = user is not None and user.is_active and (expires is None or expires > time.time())
        if current and session_hash is not None and hasattr(user, "get_session_auth_hash"):
            current = constant_time_compare(session_hash, user.get_session_auth_hash())
        if current:
            return user
        # Expired, rotated or changed since it was cached: ask Django again (it may extend,
        # re-hash or flush the session), and remember nothing.
        forget_owner(key)
        require_io()
        return self.django_user(scope)

    authenticate_without_io = authenticate  # the caches raise NeedsIO when they cannot answer

    def configuration_problems(self) -> list[tuple[str, str]]:
        problems = []
        if not apps.is_installed("django.contrib.sessions"):
            problems.append(
                (
                    "SessionAuthenticator reads Django's session cookie, but 'django.contrib.sessions' is not in "
                    "INSTALLED_APPS: no handshake is ever signed in by its session.",
                    "Add 'django.contrib.sessions' to INSTALLED_APPS (and run migrate), or remove SessionAuthenticator "
                    "from WSREJECT['AUTHENTICATORS'].",
                )
            )
        try:
            import_module(settings.SESSION_ENGINE)
        except ImportError as exc:
            problems.append((f"SESSION_ENGINE {settings.SESSION_ENGINE!r} cannot be imported: {exc}", "Fix SESSION_ENGINE."))
        return problems

    def django_user(self, scope: Scope) -> Any:
        session = scope.get("session") or session_store(scope)
        user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        return user if user.is_authenticated else None

    def owner(self, scope: Scope) -> Owner | None:
        """Whose session this is, as Django's ``get_user`` decides it (session hash verified)."""
        session = scope.get("session") or session_store(scope)
        user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        if not user.is_authenticated:
            return None
        return user.pk, session.get_expiry_date().timestamp(), session.get(HASH_SESSION_KEY)
