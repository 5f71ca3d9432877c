"""SimpleJWT access tokens in ``Authorization: Bearer <jwt>`` (``pip install "wsreject[simplejwt]"``).

A JWT is recognised by its shape (three base64url parts), so wsreject's own
bearer tokens and JWTs can share the ``Bearer`` scheme. The token's signature
and claims are checked with SimpleJWT's own token classes
(``SIMPLE_JWT["AUTH_TOKEN_CLASSES"]``), and its user loaded as SimpleJWT's
``JWTAuthentication`` loads it (active users only, revoked-by-password-change
tokens refused when so configured). An expired token is ``401 "Token
expired"``; a forged or malformed one ``401 "Invalid credentials"``; both with
``WWW-Authenticate: Bearer error="invalid_token", error_description="..."``.

The signature check needs no I/O, so a token whose user is in a process-local
cache is decided on the event loop.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from rest_framework_simplejwt import settings as jwt_settings
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings

from ..cache.users import cached_user
from ..types import Scope
from .base import AuthenticationFailed, BaseAuthenticator, CredentialExpired, authorization

__all__ = ["SimpleJWTAuthenticator", "header_types"]

_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def header_types() -> set[str]:
    """``SIMPLE_JWT["AUTH_HEADER_TYPES"]`` (a string or a sequence), lower-cased: schemes are
    case-insensitive (RFC 9110 §11.1)."""
    types = api_settings.AUTH_HEADER_TYPES
    return {scheme.lower() for scheme in ((types,) if isinstance(types, str) else types)}


class SimpleJWTAuthenticator(BaseAuthenticator):
    """Access tokens issued by ``djangorestframework-simplejwt``."""

    def __init__(self, authentication_class: Any = JWTAuthentication) -> None:
        self.authentication = authentication_class() if isinstance(authentication_class, type) else authentication_class

    def get_credential(self, scope: Scope) -> str | None:
        found = authorization(scope)
        if found is None or not _JWT.match(found[1]):
            return None
        if found[0].lower() not in header_types():
            return None
        return found[1]

    def validated_token(self, raw: str) -> Any:
        """The token, checked by every configured token class in turn (no I/O)."""
        expired = False
        for token_class in api_settings.AUTH_TOKEN_CLASSES:
            try:
                return token_class(raw.encode("ascii"))
            except ExpiredTokenError:
                expired = True
            except TokenError:
                pass
        raise CredentialExpired() if expired else AuthenticationFailed()

    def uses_user_cache(self) -> bool:
        """Whether users may come from wsreject's user cache: SimpleJWT's own lookup by primary key."""
        return (
            type(self.authentication).get_user is JWTAuthentication.get_user
            and api_settings.USER_ID_FIELD in ("id", "pk")
            and not api_settings.CHECK_REVOKE_TOKEN
        )

    def authenticate(self, scope: Scope, credential: str) -> Any:
        token = self.validated_token(credential)
        if not self.uses_user_cache():
            return self.authentication.get_user(token)
        user = cached_user(token.get(api_settings.USER_ID_CLAIM))
        if user is None:
            raise AuthenticationFailed()
        return user

    def configuration_problems(self) -> list[tuple[str, str]]:
        """``SIMPLE_JWT``'s token classes import and its ``USER_ID_FIELD`` is a field of the user model."""
        current = jwt_settings.api_settings  # SimpleJWT rebinds it when SIMPLE_JWT changes (tests)
        try:
            current.AUTH_TOKEN_CLASSES  # noqa: B018 - SimpleJWT imports them on first access
        except ImportError as exc:
            return [(f"SIMPLE_JWT['AUTH_TOKEN_CLASSES'] cannot be imported: {exc}", "Fix SIMPLE_JWT['AUTH_TOKEN_CLASSES'].")]
        user_model, field = get_user_model(), current.USER_ID_FIELD
        if "__" in field:  # a lookup through a relation: only a query can tell
            return []
        try:
            user_model._meta.get_field(field)
        except FieldDoesNotExist:
            return [
                (
                    f"SIMPLE_JWT['USER_ID_FIELD'] is {field!r}, which is not a field of "
                    f"{user_model._meta.label}: no token would ever find its user.",
                    "Set SIMPLE_JWT['USER_ID_FIELD'] to a unique field of the user model (the default is 'id').",
                )
            ]
        return []

    def authenticate_without_io(self, scope: Scope, credential: str) -> Any:
        if not self.uses_user_cache():
            return super().authenticate_without_io(scope, credential)
        return self.authenticate(scope, credential)  # cached_user raises NeedsIO on a miss
