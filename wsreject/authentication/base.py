"""The authenticator contract: how a handshake's credential becomes a user.

An authenticator looks at the handshake in two steps, in the spirit of DRF's
``BaseAuthentication``:

``get_credential(scope)``
    Runs on the event loop, never blocks: return what this authenticator would
    read (a token, a cookie value ...), or None when the handshake carries
    nothing of its kind ("not mine"). The first authenticators of the list that
    answer something are the candidates, in order.

``authenticate(scope, credential)``
    May block (database, cache) and may be ``async def``; wsreject runs a
    synchronous one in a worker thread. Return the user; return None for "not
    mine after all" (the next candidate is asked, as DRF does); raise
    :class:`AuthenticationFailed` (or :class:`CredentialExpired`) for a
    credential that is invalid — the client gets ``401`` with the detail and,
    for bearer schemes, an RFC 6750 ``error="invalid_token"`` challenge. DRF's
    ``AuthenticationFailed`` / ``NotAuthenticated`` and SimpleJWT's
    ``InvalidToken`` / ``TokenError`` are understood the same way. An inactive
    user is refused like an invalid credential. Any other exception is a bug:
    a 500, logged with its traceback (or a 503 when a dependency is down).

``authenticate_without_io(scope, credential)`` (optional)
    The same answer from process-local data only, on the event loop; raise
    :class:`~wsreject.offload.NeedsIO` when that is not enough (the default).

``configuration_problems()`` (optional)
    What the authenticator needs and the project lacks (an app in
    ``INSTALLED_APPS``, a setting), as ``(problem, fix)`` pairs: ``manage.py
    check`` reports each as ``wsreject.E030``, before a handshake can fail on it.
"""

from __future__ import annotations

import re
from typing import Any

from ..offload import NeedsIO
from ..scope import header_values
from ..types import Scope

__all__ = [
    "AUTHORIZATION_KEY",
    "INVALID_CREDENTIALS",
    "NOT_AUTHENTICATED",
    "TOKEN_EXPIRED",
    "AuthenticationFailed",
    "BaseAuthenticator",
    "CredentialExpired",
    "authorization",
    "bearer_challenge",
    "parse_authorization",
]

NOT_AUTHENTICATED = "Not authenticated"
INVALID_CREDENTIALS = "Invalid credentials"
TOKEN_EXPIRED = "Token expired"

# RFC 9110 §11.4 credentials with an RFC 7235 token68 (what bearer tokens are).
_AUTHORIZATION = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([A-Za-z0-9\-._~+/]+=*)$")


class AuthenticationFailed(Exception):
    """A credential was presented and refused: ``401`` with ``detail``."""

    default_detail = INVALID_CREDENTIALS
    error = "invalid_token"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = str(detail) if detail is not None else self.default_detail
        super().__init__(self.detail)


class CredentialExpired(AuthenticationFailed):
    """The credential was valid once and has expired: ``401 "Token expired"``."""

    default_detail = TOKEN_EXPIRED


#: Where :class:`~wsreject.authentication.CredentialsMiddleware` keeps the parsed header
#: (``(scheme, token)`` or None) for the authenticators it asks.
AUTHORIZATION_KEY = "wsreject.authorization"


def authorization(scope: Scope) -> tuple[str, str] | None:
    """``(scheme, token68)`` of the request's one ``Authorization`` header, or None.

    Several ``Authorization`` headers, non-ASCII bytes or another shape count
    as no credential at all (never as a refused one).
    """
    if AUTHORIZATION_KEY in scope:
        parsed: tuple[str, str] | None = scope[AUTHORIZATION_KEY]
        return parsed
    return parse_authorization(scope)


def parse_authorization(scope: Scope) -> tuple[str, str] | None:
    """:func:`authorization`, read from the headers."""
    values = header_values(scope, b"authorization")
    if len(values) != 1:
        return None
    try:
        match = _AUTHORIZATION.match(values[0].decode("ascii"))
    except UnicodeDecodeError:
        return None
    return (match.group(1), match.group(2)) if match else None


def bearer_challenge(scheme: str, failure: AuthenticationFailed | None) -> str:
    """The ``WWW-Authenticate`` value: bare ``scheme``, or with RFC 6750 error attributes."""
    if failure is None:
        return scheme
    description = failure.detail.replace("\\", "\\\\").replace('"', '\\"')
    return f'{scheme} error="{failure.error}", error_description="{description}"'


class BaseAuthenticator:
    """Recognise a credential in the handshake and turn it into a user (see the module docstring)."""

    #: The scheme of the ``WWW-Authenticate`` challenge when this authenticator's
    #: credential is refused (None: the default ``Bearer`` challenge, no error attributes).
    scheme: str | None = "Bearer"

    #: True when presenting the credential spends it (a ticket): an open connection's access is
    #: then decided again for the user it was opened as, not by presenting the credential again.
    single_use: bool = False

    def get_credential(self, scope: Scope) -> Any:
        """What this authenticator reads from the handshake, or None. Never blocks."""
        return None

    def authenticate(self, scope: Scope, credential: Any) -> Any:
        """The user for ``credential``, None for "not mine", or raise :class:`AuthenticationFailed`."""
        raise NotImplementedError

    def authenticate_without_io(self, scope: Scope, credential: Any) -> Any:
        """:meth:`authenticate` from process-local data only; :class:`NeedsIO` when it cannot."""
        raise NeedsIO

    def challenge(self, failure: AuthenticationFailed | None) -> str | None:
        """``WWW-Authenticate`` for a refusal of this authenticator's credential."""
        return bearer_challenge(self.scheme, failure) if self.scheme else None

    def configuration_problems(self) -> list[tuple[str, str]]:
        """``(problem, fix)`` for each thing this authenticator needs and the project lacks."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
