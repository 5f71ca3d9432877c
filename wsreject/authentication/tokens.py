"""wsreject's bearer tokens: issued in the admin (or with :func:`issue_token`), checked without a query when forged.

A token looks like ``wsr_`` + 40 random letters and digits + a 22-character
MAC: HMAC-SHA256 of the random part, keyed with ``SECRET_KEY`` (and, while
rotating, ``SECRET_KEY_FALLBACKS``). A forged, mistyped or truncated token is
refused from the token alone, on the event loop, without touching the database
— a flood of random tokens costs what a flood of credential-less handshakes
costs. A token with a valid MAC is looked up by its SHA-256 (the only thing the
database keeps); its owner is cached under the user's version, so revoking the
token (deleting it), deactivating the user or changing their permissions takes
effect at the next handshake (see :mod:`wsreject.cache.versions` for other
processes).

Tokens issued before this format (``wsreject`` 0.1) carry no MAC and are no
longer accepted: issue new ones (the admin lists them as "legacy"). Rotating
``SECRET_KEY`` without keeping the old key in ``SECRET_KEY_FALLBACKS``
invalidates every token, as it does sessions.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import string
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from ..cache.users import Owner, cached_owner, cached_user
from ..models import AccessToken
from ..types import Scope
from .base import AuthenticationFailed, BaseAuthenticator, CredentialExpired, authorization

__all__ = [
    "MAC_LENGTH",
    "PREFIX",
    "SECRET_LENGTH",
    "AccessTokenAuthenticator",
    "authenticate",
    "digest",
    "is_legacy",
    "issue_token",
    "new_secret",
    "token_owner",
    "well_formed",
]

PREFIX = "wsr_"
SECRET_LENGTH = 40
MAC_LENGTH = 22
_ALPHABET = string.ascii_letters + string.digits
_FORMAT = re.compile(rf"^{PREFIX}([A-Za-z0-9]{{{SECRET_LENGTH}}})([A-Za-z0-9]{{{MAC_LENGTH}}})$")
_KEY_SALT = "wsreject.authentication.tokens"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


@functools.lru_cache(maxsize=8)
def _mac_key(secret_key: str) -> bytes:
    """The HMAC key derived from ``secret_key``, as Django's ``salted_hmac`` derives it."""
    return hashlib.sha256((_KEY_SALT + secret_key).encode("utf-8")).digest()


def _mac(secret_part: str, key: str) -> str:
    raw = hmac.new(_mac_key(key), secret_part.encode("ascii"), hashlib.sha256).digest()[:16]
    return _base62(int.from_bytes(raw, "big"), MAC_LENGTH)


def well_formed(token: str) -> bool:
    """Whether ``token`` was issued by this site (format and MAC), without any I/O."""
    return _well_formed(token, settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())))


@functools.lru_cache(maxsize=4096)
def _well_formed(token: str, secret_key: str, fallbacks: tuple[str, ...]) -> bool:
    match = _FORMAT.match(token)
    if match is None:
        return False
    secret_part, mac = match.groups()
    return any(hmac.compare_digest(mac, _mac(secret_part, key)) for key in (secret_key, *fallbacks))


def new_secret() -> tuple[str, str, str]:
    """A fresh token: (secret, its SHA-256 digest, its first characters for display)."""
    secret_part = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    token = PREFIX + secret_part + _mac(secret_part, settings.SECRET_KEY)
    return token, digest(token), token[:8]


def issue_token(user: Any, name: str = "", expires: datetime | None = None) -> tuple[AccessToken, str]:
    """Create a token for ``user``; return the stored row and the secret (shown only now)."""
    secret, token_digest, prefix = new_secret()
    row = AccessToken.objects.create(user=user, name=name, digest=token_digest, prefix=prefix, expires=expires)
    return row, secret


def is_legacy(row: AccessToken) -> bool:
    """A token issued before the MAC format: no longer accepted."""
    return not row.prefix.startswith(PREFIX)


def _owner_key(token_digest: str) -> str:
    return f"wsreject:token:{token_digest}"


def _load_owner(token_digest: str) -> Owner | None:
    row = AccessToken.objects.filter(digest=token_digest).values_list("user_id", "expires").first()
    if row is None:
        return None
    pk, expires_at = row
    return pk, (expires_at.timestamp() if expires_at is not None else None), None


def token_owner(token_digest: str) -> tuple[Any, float | None] | None:
    """``(user pk, expiry timestamp or None)`` of the token with this digest, or None.

    Cached per token and stamped with its user's version (revoking a token bumps it).
    """
    owner = cached_owner(_owner_key(token_digest), lambda: _load_owner(token_digest))
    return None if owner is None else (owner[0], owner[1])


def authenticate(token: str) -> Any:
    """The active user owning ``token``; raise :class:`AuthenticationFailed` (or
    :class:`CredentialExpired`) when there is none. Forged tokens cost no I/O."""
    if not well_formed(token):
        raise AuthenticationFailed()
    owner = token_owner(digest(token))
    if owner is None:
        raise AuthenticationFailed()
    pk, expires = owner
    if expires is not None and expires <= timezone.now().timestamp():
        raise CredentialExpired()
    user = cached_user(pk)
    if user is None:
        raise AuthenticationFailed()
    return user


class AccessTokenAuthenticator(BaseAuthenticator):
    """``Authorization: Bearer wsr_...``: tokens issued in the admin or with :func:`issue_token`."""

    def get_credential(self, scope: Scope) -> str | None:
        found = authorization(scope)
        if found is None or found[0].lower() != "bearer" or not found[1].startswith(PREFIX):
            return None
        return found[1]

    def authenticate(self, scope: Scope, credential: str) -> Any:
        return authenticate(credential)

    def authenticate_without_io(self, scope: Scope, credential: str) -> Any:
        return authenticate(credential)  # the caches raise NeedsIO when they cannot answer
