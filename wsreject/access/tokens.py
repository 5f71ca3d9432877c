"""Issue and check bearer tokens (``WSREJECT["TOKEN_AUTHENTICATOR"]`` defaults to :func:`authenticate`)."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from django.utils import timezone

if TYPE_CHECKING:
    from .models import AccessToken


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret() -> tuple[str, str, str]:
    """A fresh token: (secret, its SHA-256 digest, its first characters for display)."""
    secret = secrets.token_urlsafe(32)
    return secret, digest(secret), secret[:8]


def issue_token(user, name: str = "", expires=None) -> tuple[AccessToken, str]:
    """Create a token for ``user``; return the stored row and the secret (shown only now)."""
    from .models import AccessToken

    secret, token_digest, prefix = new_secret()
    row = AccessToken.objects.create(user=user, name=name, digest=token_digest, prefix=prefix, expires=expires)
    return row, secret


def authenticate(token: str):
    """The active user owning ``token``, or None. One query (token joined to its user)."""
    from .models import AccessToken

    try:
        row = AccessToken.objects.select_related("user").get(digest=digest(token))
    except AccessToken.DoesNotExist:
        return None
    if row.expires is not None and row.expires <= timezone.now():
        return None
    user = row.user
    return user if user.is_active else None
