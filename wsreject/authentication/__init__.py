"""Authentication of handshakes: an ordered list of authenticators, the first that recognises
its credential decides (``WSREJECT["AUTHENTICATORS"]``).

Built in: :class:`SessionAuthenticator` (Django's session cookie),
:class:`~wsreject.authentication.tokens.AccessTokenAuthenticator` (wsreject's own bearer
tokens), :class:`~wsreject.authentication.tickets.TicketAuthenticator` (single-use
tickets for browsers); with DRF installed :class:`~wsreject.authentication.drf.DRFTokenAuthenticator`
(``Authorization: Token <key>``) and :class:`~wsreject.authentication.drf.DRFAuthenticator`
(any DRF authentication class); with SimpleJWT
:class:`~wsreject.authentication.simplejwt.SimpleJWTAuthenticator`. Write your own
by subclassing :class:`BaseAuthenticator`.
"""

from .base import (
    INVALID_CREDENTIALS,
    NOT_AUTHENTICATED,
    TOKEN_EXPIRED,
    AuthenticationFailed,
    BaseAuthenticator,
    CredentialExpired,
    authorization,
)
from .credentials import (
    AuthState,
    CredentialsMiddleware,
    aresolve_user,
    auth_state,
    is_authenticated,
    refused_without_credentials,
    unauthenticated,
)
from .session import SessionAuthenticator

__all__ = [
    "INVALID_CREDENTIALS",
    "NOT_AUTHENTICATED",
    "TOKEN_EXPIRED",
    "AuthState",
    "AuthenticationFailed",
    "BaseAuthenticator",
    "CredentialExpired",
    "CredentialsMiddleware",
    "SessionAuthenticator",
    "aresolve_user",
    "auth_state",
    "authorization",
    "is_authenticated",
    "refused_without_credentials",
    "unauthenticated",
]
